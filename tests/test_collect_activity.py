"""Activity Log collection through the real monitor SDK: filters, paging, selection, 90-day edge,
and the Log Analytics fallback for the older part of a window.

Event bodies follow the azure-rest-api-specs example GetActivityLogsFiltered (2015-04-01) and the
role-assignment events in Learn's "View activity logs for Azure RBAC changes" (``requestbody`` is
a JSON *string*).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from azure_shapes import REG_ID, REG_RG, REG_SUB, REGISTRY, registry_discovery, registry_discovery_url

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.activity import ActivityLogCollector, caller_type, time_filter
from evidence.collect.interface import Collector, CollectSession, RawResponse, Record
from evidence.collect.store import load_raw, write_raw
from evidence.domain import Gap, Provenance, Scope, Window, Workspace

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-ml"
WS = Workspace(SUB, RG, "ws-prod")
SCOPE = Scope(workspaces=(WS,))
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
ARM = "https://management.azure.com"
EVENTS = f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
LOGS = "https://api.loganalytics.io/v1/workspaces/law-1/query"
NOW = datetime(2026, 10, 1, 6, tzinfo=UTC)
CLOCK = FixedClock(NOW)
WINDOW = Window(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
JSON = {"Content-Type": "application/json; charset=utf-8"}
ENDPOINT = f"{WS.arm_id}/onlineEndpoints/ep-credit"
USER_CLAIMS = {
    "aud": "https://management.core.windows.net/",
    "idtyp": "user",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "alice@contoso.com",
    "http://schemas.microsoft.com/identity/claims/objectidentifier": "11111111-1111-1111-1111-111111111111",
}
SP_CLAIMS = {
    "aud": "https://management.core.windows.net/",
    "idtyp": "app",
    "appid": "99999999-0000-0000-0000-0000000000a1",
}
MI_CLAIMS = {
    "appid": "99999999-0000-0000-0000-0000000000b2",
    "xms_mirid": f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer",
}


def filter_for(start: str, end: str, extra: str) -> str:
    return f"eventTimestamp ge '{start}' and eventTimestamp le '{end}' and {extra}"


def events_url(flt: str, **more: str) -> str:
    return f"{EVENTS}?{urlencode({'api-version': '2015-04-01', '$filter': flt, **more})}"


RG_FILTER = filter_for("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", f"resourceGroupName eq '{RG}'")
AUTH_FILTER = filter_for(
    "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", "resourceProvider eq 'Microsoft.Authorization'"
)


def event(
    event_id: str,
    when: str,
    operation: str,
    resource_id: str,
    *,
    status: str = "Succeeded",
    caller: str = "alice@contoso.com",
    claims: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    localized: str | None = None,
) -> dict[str, Any]:
    return {
        "authorization": {"action": operation, "scope": resource_id},
        "caller": caller,
        "channels": "Operation",
        "claims": claims if claims is not None else USER_CLAIMS,
        "correlationId": f"corr-{event_id}",
        "description": "",
        "eventDataId": event_id,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "httpRequest": {"clientRequestId": "req", "clientIpAddress": "203.0.113.7", "method": "PUT"},
        "id": f"{resource_id}/events/{event_id}/ticks/638000000000000000",
        "level": "Informational",
        "resourceGroupName": RG,
        "resourceProviderName": {"value": operation.split("/")[0], "localizedValue": operation.split("/")[0]},
        "resourceId": resource_id,
        "resourceType": {"value": "/".join(operation.split("/")[:-1]), "localizedValue": ""},
        "operationId": f"op-{event_id}",
        "operationName": {"value": operation, "localizedValue": localized or operation},
        "properties": properties or {"statusCode": "OK"},
        "status": {"value": status, "localizedValue": status},
        "subStatus": {"value": "OK" if status == "Succeeded" else "", "localizedValue": ""},
        "eventTimestamp": when,
        "submissionTimestamp": when,
        "subscriptionId": SUB,
        "tenantId": "tenant",
    }


def role_assignment_body(scope: str, principal: str = "22222222-2222-2222-2222-222222222222") -> str:
    return json.dumps(
        {
            "Id": "ra-new",
            "Properties": {
                "PrincipalId": principal,
                "PrincipalType": "ServicePrincipal",
                "RoleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
                "Scope": scope,
                "Condition": None,
            },
        }
    )


EP_STARTED = event(
    "e-1",
    "2026-09-02T10:00:00.1234567Z",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
    ENDPOINT,
    status="Started",
    localized="Create or update online endpoint",
)
EP_DONE = event(
    "e-2",
    "2026-09-02T10:00:30Z",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
    ENDPOINT,
    localized="Create or update online endpoint",
)
DEPLOY_FAILED = event(
    "e-3",
    "2026-09-03T11:00:00Z",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write",
    f"{ENDPOINT}/deployments/blue",
    status="Failed",
    caller="99999999-0000-0000-0000-0000000000a1",
    claims=SP_CLAIMS,
)
RA_AT_RG = event(
    "e-4",
    "2026-09-04T12:00:00Z",
    "Microsoft.Authorization/roleAssignments/write",
    f"{RG_ID}/providers/Microsoft.Authorization/roleAssignments/ra-new",
    status="Succeeded",
    properties={"statusCode": "Created", "requestbody": role_assignment_body(RG_ID)},
)
RA_ON_STORAGE = event(
    "e-5",
    "2026-09-04T13:00:00Z",
    "Microsoft.Authorization/roleAssignments/write",
    f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/st1/providers/Microsoft.Authorization/roleAssignments/ra-st",
    properties={"requestbody": role_assignment_body(f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/st1")},
)
STORAGE_WRITE = event(
    "e-6",
    "2026-09-05T00:00:00Z",
    "Microsoft.Storage/storageAccounts/write",
    f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/st1",
)
RA_AT_SUB = event(
    "e-7",
    "2026-09-06T00:00:00Z",
    "Microsoft.Authorization/roleAssignments/write",
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-sub",
    caller="deployer-mi",
    claims=MI_CLAIMS,
    properties={"requestbody": role_assignment_body(f"/subscriptions/{SUB}")},
)
BROKEN_BODY = event(
    "e-8",
    "2026-09-07T00:00:00Z",
    "Microsoft.Authorization/roleAssignments/delete",
    f"{RG_ID}/providers/Microsoft.Authorization/roleAssignments/ra-old",
    properties={"requestbody": '{"Id": "ra-old", "Properties": {trunc'},
)
PIM_REQUEST = event(
    "e-9",
    "2026-09-08T00:00:00Z",
    "Microsoft.Authorization/roleEligibilityScheduleRequests/write",
    f"{RG_ID}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/req-1",
)


def page(*events: dict[str, Any], next_link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"value": list(events)}
    if next_link:
        body["nextLink"] = next_link
    return body


def entry(url: str, body: Any, status: int = 200, method: str = "GET", request_body: Any = None) -> Entry:
    return Entry(
        request_uri=url,
        request_method=method,
        status_code=status,
        response_body=body,
        response_headers=JSON,
        request_body=request_body,
    )


def default_cassette() -> list[Entry]:
    second = events_url(RG_FILTER, **{"$skipToken": "page-2"})
    return [
        entry(events_url(RG_FILTER), page(EP_DONE, EP_STARTED, RA_AT_RG, next_link=second)),
        entry(second, page(DEPLOY_FAILED, RA_ON_STORAGE, STORAGE_WRITE, BROKEN_BODY, PIM_REQUEST)),
        entry(events_url(AUTH_FILTER), page(RA_AT_SUB, RA_AT_RG, RA_ON_STORAGE)),
    ]


Run = tuple[dict[str, list[Record]], list[Gap], ReplayTransport]


def run(
    collector: Collector,
    entries: list[Entry],
    tmp_path: Path,
    *,
    window: Window = WINDOW,
    clock: FixedClock = CLOCK,
    scope: Scope = SCOPE,
) -> Run:
    transport = ReplayTransport(entries)
    tap = EvidenceTap(transport, clock)
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap), scope=scope, window=window, clock=clock, collector=collector.name
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    raw = load_raw(tmp_path, provenance)
    return dict(collector.normalise(raw.get(collector.name, []))), session.gaps, transport


def sent_filters(transport: ReplayTransport) -> list[str]:
    return [dict(parse_qsl(urlsplit(s.url).query))["$filter"] for s in transport.served if "/eventtypes/" in s.url]


def test_filters_sent_are_exactly_the_documented_grammar(tmp_path: Path) -> None:
    _, gaps, transport = run(ActivityLogCollector(), default_cassette(), tmp_path)
    assert gaps == []
    assert sent_filters(transport) == [
        "eventTimestamp ge '2026-09-01T00:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z' "
        "and resourceGroupName eq 'rg-ml'",
        "eventTimestamp ge '2026-09-01T00:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z' "
        "and resourceGroupName eq 'rg-ml'",  # page two keeps the filter
        "eventTimestamp ge '2026-09-01T00:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z' "
        "and resourceProvider eq 'Microsoft.Authorization'",
    ]
    assert transport.unused() == []


def test_keeps_ml_and_access_events_sorted_and_deduplicated(tmp_path: Path) -> None:
    records, _, _ = run(ActivityLogCollector(), default_cassette(), tmp_path)
    rows = records["activity_events"]
    # Storage writes and role assignments on a storage account never touch a workspace; the
    # resource-group role assignment came back from both filters and is one row.
    assert [r["event_id"] for r in rows] == ["e-1", "e-2", "e-3", "e-4", "e-7", "e-8", "e-9"]
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    first = rows[0]
    assert first == {
        "event_id": "e-1",
        "timestamp": "2026-09-02T10:00:00.123456Z",
        "submission_timestamp": "2026-09-02T10:00:00.123456Z",
        "operation": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
        "operation_name_localized": "Create or update online endpoint",
        "status": "Started",
        "sub_status": "",
        "caller": "alice@contoso.com",
        "caller_type": "User",
        "caller_ip": "203.0.113.7",
        "resource_id": ENDPOINT,
        "resource_group": RG,
        "subscription_id": SUB,
        "correlation_id": "corr-e-1",
        "operation_id": "op-e-1",
        "level": "Informational",
        "category": "Administrative",
        "event_name": "EndRequest",
        "source": "activity_log",
        "workspace_id": WS.arm_id,
        "request_principal_id": None,
        "request_principal_type": None,
        "request_role_definition_id": None,
        "request_scope": None,
        "request_condition": None,
    }
    by_id = {r["event_id"]: r for r in rows}
    assert by_id["e-3"]["status"] == "Failed" and by_id["e-3"]["caller_type"] == "ServicePrincipal"
    assert by_id["e-7"]["caller_type"] == "ManagedIdentity"


def test_role_assignment_request_body_is_parsed_from_its_json_string(tmp_path: Path) -> None:
    records, _, _ = run(ActivityLogCollector(), default_cassette(), tmp_path)
    by_id = {r["event_id"]: r for r in records["activity_events"]}
    assert {k: v for k, v in by_id["e-4"].items() if k.startswith("request_")} == {
        "request_principal_id": "22222222-2222-2222-2222-222222222222",
        "request_principal_type": "ServicePrincipal",
        "request_role_definition_id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "request_scope": RG_ID,
        "request_condition": None,
    }
    assert by_id["e-7"]["request_scope"] == f"/subscriptions/{SUB}"
    # A truncated request body is kept as an event without request fields, never an error.
    assert by_id["e-8"]["request_principal_id"] is None
    assert by_id["e-8"]["operation"] == "Microsoft.Authorization/roleAssignments/delete"


def test_window_inside_retention_has_no_gap(tmp_path: Path) -> None:
    window = Window(NOW - timedelta(days=90), NOW - timedelta(hours=6))
    flt = time_filter(window.start, window.end)
    entries = [
        entry(events_url(f"{flt} and resourceGroupName eq '{RG}'"), page()),
        entry(events_url(f"{flt} and resourceProvider eq 'Microsoft.Authorization'"), page()),
    ]
    records, gaps, transport = run(ActivityLogCollector(), entries, tmp_path, window=window)
    assert gaps == [] and records == {"activity_events": []}
    assert transport.unused() == []


def test_window_starting_91_days_ago_gets_a_gap_naming_the_uncovered_part(tmp_path: Path) -> None:
    window = Window(datetime(2026, 7, 2, 6, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))  # now - 91 days
    flt = "eventTimestamp ge '2026-07-03T06:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z'"
    entries = [
        entry(events_url(f"{flt} and resourceGroupName eq '{RG}'"), page(EP_DONE)),
        entry(events_url(f"{flt} and resourceProvider eq 'Microsoft.Authorization'"), page()),
    ]
    records, gaps, transport = run(ActivityLogCollector(), entries, tmp_path, window=window)
    assert [(g.collector, g.scope, g.status, g.error_code, g.message, g.at) for g in gaps] == [
        (
            "activity_log",
            f"/subscriptions/{SUB}",
            None,
            "RetentionExceeded",
            "Activity Log retains 90 days: 2026-07-02T06:00:00Z to 2026-07-03T06:00:00Z is not covered; "
            "configure a Log Analytics workspace that receives the Activity Log",
            "2026-10-01T06:00:00Z",
        )
    ]
    assert transport.unused() == []  # only the retained part was asked for
    assert [r["event_id"] for r in records["activity_events"]] == ["e-2"]


def test_window_entirely_older_than_retention_asks_nothing(tmp_path: Path) -> None:
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    _, gaps, transport = run(ActivityLogCollector(), [], tmp_path, window=window)
    assert transport.served == []
    assert [g.message for g in gaps] == [
        "Activity Log retains 90 days: 2026-01-01T00:00:00Z to 2026-04-01T00:00:00Z is not covered; "
        "configure a Log Analytics workspace that receives the Activity Log"
    ]


AZURE_ACTIVITY_COLUMNS = [
    ("TenantId", "string"),
    ("SourceSystem", "string"),
    ("CallerIpAddress", "string"),
    ("CategoryValue", "string"),
    ("CorrelationId", "string"),
    ("Authorization", "string"),
    ("Authorization_d", "dynamic"),
    ("Claims", "string"),
    ("Claims_d", "dynamic"),
    ("Level", "string"),
    ("OperationNameValue", "string"),
    ("Properties", "string"),
    ("Properties_d", "dynamic"),
    ("Caller", "string"),
    ("EventDataId", "string"),
    ("EventSubmissionTimestamp", "datetime"),
    ("HTTPRequest", "string"),
    ("OperationId", "string"),
    ("ResourceGroup", "string"),
    ("ResourceProviderValue", "string"),
    ("ActivityStatusValue", "string"),
    ("ActivitySubstatusValue", "string"),
    ("Hierarchy", "string"),
    ("TimeGenerated", "datetime"),
    ("SubscriptionId", "string"),
    ("OperationName", "string"),
    ("ActivityStatus", "string"),
    ("ActivitySubstatus", "string"),
    ("Category", "string"),
    ("ResourceId", "string"),
    ("ResourceProvider", "string"),
    ("Resource", "string"),
    ("Type", "string"),
    ("_ResourceId", "string"),
]


def azure_activity_row(event_id: str, when: str, operation: str, resource_id: str, **over: Any) -> list[Any]:
    properties = over.pop("properties", {"statusCode": "OK"})
    values = {
        "TenantId": "la-tenant",
        "SourceSystem": "Azure",
        "CallerIpAddress": "198.51.100.2",
        "CategoryValue": "Administrative",
        "CorrelationId": f"corr-{event_id}",
        "Authorization": "",
        "Authorization_d": json.dumps({"action": operation, "scope": resource_id}),
        "Claims": "",
        "Claims_d": json.dumps(USER_CLAIMS),
        "Level": "Informational",
        "OperationNameValue": operation.upper(),
        "Properties": "",
        "Properties_d": json.dumps(properties),
        "Caller": "alice@contoso.com",
        "EventDataId": event_id,
        "EventSubmissionTimestamp": when,
        "HTTPRequest": "",
        "OperationId": f"op-{event_id}",
        "ResourceGroup": RG.upper(),
        "ResourceProviderValue": operation.split("/")[0].upper(),
        "ActivityStatusValue": "Success",
        "ActivitySubstatusValue": "",
        "Hierarchy": "",
        "TimeGenerated": when,
        "SubscriptionId": SUB,
        "OperationName": "Create or update online endpoint",
        "ActivityStatus": "",
        "ActivitySubstatus": "",
        "Category": "",
        "ResourceId": "",
        "ResourceProvider": "",
        "Resource": "",
        "Type": "AzureActivity",
        "_ResourceId": resource_id.lower(),
        **over,
    }
    return [values[name] for name, _ in AZURE_ACTIVITY_COLUMNS]


def logs_body(rows: list[list[Any]], error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tables": [
            {
                "name": "PrimaryResult",
                "columns": [{"name": n, "type": t} for n, t in AZURE_ACTIVITY_COLUMNS],
                "rows": rows,
            }
        ]
    }
    if error:
        body["error"] = error
    return body


OLD_WINDOW = Window(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
OLD_QUERY = (
    "AzureActivity | where TimeGenerated >= datetime(2026-06-01T00:00:00Z) and TimeGenerated <= "
    "datetime(2026-07-03T06:00:00Z) | where SubscriptionId in~ ('00000000-0000-0000-0000-0000000000aa') "
    "| where ResourceProviderValue =~ 'Microsoft.Authorization' or ResourceGroup in~ ('rg-ml') "
    "| sort by TimeGenerated asc, EventDataId asc"
)
RETAINED = "eventTimestamp ge '2026-07-03T06:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z'"


def retained_entries(*events: dict[str, Any]) -> list[Entry]:
    return [
        entry(events_url(f"{RETAINED} and resourceGroupName eq '{RG}'"), page(*events)),
        entry(events_url(f"{RETAINED} and resourceProvider eq 'Microsoft.Authorization'"), page()),
    ]


def test_older_part_is_read_from_log_analytics_when_configured(tmp_path: Path) -> None:
    old_ra = azure_activity_row(
        "la-1",
        "2026-06-15T08:00:00Z",
        "Microsoft.Authorization/roleAssignments/write",
        f"{RG_ID}/providers/Microsoft.Authorization/roleAssignments/ra-june",
        properties={"requestbody": role_assignment_body(WS.arm_id)},
        Claims_d=json.dumps(SP_CLAIMS),
    )
    old_ep = azure_activity_row(
        "la-2", "2026-06-10T08:00:00Z", "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write", ENDPOINT
    )
    storage = azure_activity_row(
        "la-3",
        "2026-06-11T08:00:00Z",
        "Microsoft.Storage/storageAccounts/write",
        f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/st1",
    )
    entries = [
        entry(
            LOGS,
            logs_body([old_ep, storage, old_ra]),
            method="POST",
            request_body={
                "query": OLD_QUERY,
                "timespan": "2026-06-01T00:00:00.000Z/2026-07-03T06:00:00.000Z",
                "workspaces": None,
            },
        ),
        *retained_entries(EP_DONE),
    ]
    records, gaps, transport = run(
        ActivityLogCollector(log_analytics_workspace="law-1"), entries, tmp_path, window=OLD_WINDOW
    )
    assert gaps == []
    assert transport.unused() == []  # the exact KQL and timespan were sent
    rows = records["activity_events"]
    assert [(r["event_id"], r["source"]) for r in rows] == [
        ("la-2", "log_analytics"),
        ("la-1", "log_analytics"),
        ("e-2", "activity_log"),
    ]
    june = rows[1]
    assert june["operation"] == "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE"
    assert june["request_scope"] == WS.arm_id and june["caller_type"] == "ServicePrincipal"
    assert june["timestamp"] == "2026-06-15T08:00:00Z"
    assert rows[0]["workspace_id"] is not None


def test_log_analytics_partial_result_is_a_gap_and_keeps_the_rows(tmp_path: Path) -> None:
    old_ep = azure_activity_row(
        "la-2", "2026-06-10T08:00:00Z", "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write", ENDPOINT
    )
    error = {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{"code": "EvaluationPartialResult", "message": "Query result set exceeded the limit"}],
    }
    entries = [entry(LOGS, logs_body([old_ep], error), method="POST"), *retained_entries()]
    records, gaps, _ = run(ActivityLogCollector(log_analytics_workspace="law-1"), entries, tmp_path, window=OLD_WINDOW)
    assert [(g.scope, g.error_code) for g in gaps] == [("log-analytics:law-1", "PartialError")]
    assert gaps[0].message == (
        "Log Analytics returned partial results for 2026-06-01T00:00:00Z to 2026-07-03T06:00:00Z: There were some "
        "errors when processing your query. (EvaluationPartialResult: Query result set exceeded the limit)"
    )
    assert [r["event_id"] for r in records["activity_events"]] == ["la-2"]


def test_log_analytics_403_is_a_gap_and_the_retained_part_is_still_read(tmp_path: Path) -> None:
    denied = {
        "error": {
            "code": "InsufficientAccessError",
            "message": "The provided credentials have insufficient access to perform the requested operation",
        }
    }
    entries = [entry(LOGS, denied, status=403, method="POST"), *retained_entries(EP_DONE)]
    records, gaps, _ = run(ActivityLogCollector(log_analytics_workspace="law-1"), entries, tmp_path, window=OLD_WINDOW)
    assert [(g.scope, g.status, g.error_code) for g in gaps] == [
        ("log-analytics:law-1", 403, "InsufficientAccessError")
    ]
    assert [r["event_id"] for r in records["activity_events"]] == ["e-2"]


def test_one_failing_resource_group_does_not_stop_the_others(tmp_path: Path) -> None:
    other = Workspace(SUB, "rg-other", "ws-2")
    denied = {"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization."}}
    other_filter = filter_for("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", "resourceGroupName eq 'rg-other'")
    entries = [
        entry(events_url(RG_FILTER), page(EP_DONE)),
        entry(events_url(other_filter), denied, status=403),
        entry(events_url(AUTH_FILTER), page()),
    ]
    records, gaps, _ = run(ActivityLogCollector(), entries, tmp_path, scope=Scope(workspaces=(WS, other)))
    assert [(g.scope, g.status, g.error_code) for g in gaps] == [
        (f"/subscriptions/{SUB}/resourceGroups/rg-other", 403, "AuthorizationFailed")
    ]
    assert [r["event_id"] for r in records["activity_events"]] == ["e-2"]


def test_a_next_link_that_loops_is_a_gap_and_the_pages_read_are_kept(tmp_path: Path) -> None:
    second = events_url(RG_FILTER, **{"$skipToken": "page-2"})
    entries = [
        entry(events_url(RG_FILTER), page(EP_DONE, next_link=second)),
        entry(second, page(DEPLOY_FAILED, next_link=second)),
        entry(events_url(AUTH_FILTER), page()),
    ]
    records, gaps, transport = run(ActivityLogCollector(), entries, tmp_path)
    [gap] = gaps
    assert (gap.error_code, gap.collector) == ("UnexpectedResponseShape", "activity_log")
    assert "same nextLink" in gap.message
    assert sum("page-2" in s.url for s in transport.served) == 1
    assert {r["event_id"] for r in records["activity_events"]} == {EP_DONE["eventDataId"], DEPLOY_FAILED["eventDataId"]}


def test_caller_type_from_claims() -> None:
    assert caller_type(USER_CLAIMS) == "User"
    assert caller_type(SP_CLAIMS) == "ServicePrincipal"
    assert caller_type(MI_CLAIMS) == "ManagedIdentity"
    assert caller_type({"appid": "x"}) == "ServicePrincipal"
    assert caller_type({"upn": "bob@contoso.com", "appid": "x"}) == "User"
    assert caller_type({}) is None and caller_type(None) is None


def test_normalise_is_pure_and_skips_errors_and_html() -> None:
    def raw(url: str, body: Any, status: int = 200) -> RawResponse:
        prov = Provenance("activity_log", "GET", url, "2015-04-01", status, None, "2026-10-01T06:00:00Z", None)
        return RawResponse(prov, body)

    responses = [
        raw(events_url(RG_FILTER), page(EP_DONE, "not-an-event")),  # type: ignore[arg-type]
        raw(events_url(RG_FILTER), {"error": {"code": "x"}}, 500),
        raw(events_url(AUTH_FILTER), "<html>gateway</html>"),
        raw(events_url(RG_FILTER), {"value": [{"eventDataId": "no-operation"}]}),
    ]
    collector = ActivityLogCollector()
    first = collector.normalise(responses)
    assert [r["event_id"] for r in first["activity_events"]] == ["e-2"]
    assert collector.normalise(responses) == first


# ----------------------------------------------------------------------------- against SimulatedAzure
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso" / "tenant.toml"


def simulate(tmp_path: Path, window: Window) -> tuple[dict[str, list[Record]], list[Gap], Any]:
    from evidence.azure.simulator import SimulatedAzure, load_tenant

    tenant = load_tenant(SAMPLE)
    sim = SimulatedAzure(tenant, sleep=lambda _: None, strict=True)
    scope = Scope(
        workspaces=tuple(
            Workspace(tenant.subscription_id, tenant.resource_group, n) for n in ("mlw-credit-prod", "mlw-fraud-prod")
        )
    )
    transport_clock = FixedClock(tenant.now)
    tap = EvidenceTap(sim, transport_clock)
    collector = ActivityLogCollector()
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap),
        scope=scope,
        window=window,
        clock=transport_clock,
        collector=collector.name,
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    records = dict(collector.normalise(load_raw(tmp_path, provenance).get(collector.name, [])))
    return records, session.gaps, sim


def test_simulated_tenant_all_pages_and_role_assignment_bodies(tmp_path: Path) -> None:
    window = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
    records, gaps, sim = simulate(tmp_path, window)
    assert gaps == []
    pages = [r.url for r in sim.requests if "/eventtypes/" in r.url]
    assert len(pages) >= 3  # more than one page for the resource group, plus the provider filter
    rows = records["activity_events"]
    assert [(r["timestamp"], r["event_id"]) for r in rows] == sorted((r["timestamp"], r["event_id"]) for r in rows)
    writes = [r for r in rows if r["operation"] == "Microsoft.Authorization/roleAssignments/write"]
    assert writes and all(r["request_principal_id"] and r["request_role_definition_id"] for r in writes)
    assert any(r["operation"].endswith("onlineEndpoints/deployments/write") for r in rows)


def test_simulated_tenant_91_days_back_is_a_gap_and_only_retained_part_is_asked(tmp_path: Path) -> None:
    # The sample's "now" is 2026-09-28T06:00:00Z; 91 days earlier is 2026-06-29T06:00:00Z.
    window = Window(datetime(2026, 6, 29, 6, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
    _, gaps, sim = simulate(tmp_path, window)
    assert [g.message for g in gaps] == [
        "Activity Log retains 90 days: 2026-06-29T06:00:00Z to 2026-06-30T06:00:00Z is not covered; "
        "configure a Log Analytics workspace that receives the Activity Log"
    ]
    first = next(r.url for r in sim.requests if "/eventtypes/" in r.url)
    assert dict(parse_qsl(urlsplit(first).query))["$filter"].startswith("eventTimestamp ge '2026-06-30T06:00:00Z'")


# ------------------------------------------------------------------------------------- registries
def registry_events_url(subscription: str, group: str) -> str:
    flt = filter_for("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", f"resourceGroupName eq '{group}'")
    query = urlencode({"api-version": "2015-04-01", "$filter": flt})
    return f"{ARM}/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values?{query}"


def test_a_registry_resource_group_is_read_after_its_discovery(tmp_path: Path) -> None:
    registered = event(
        "e-reg",
        "2026-09-10T09:00:00Z",
        "Microsoft.MachineLearningServices/registries/models/versions/write",
        f"{REG_ID}/models/credit-risk/versions/3",
        caller="99999999-0000-0000-0000-0000000000a1",
        claims=SP_CLAIMS,
    )
    entries = [
        entry(events_url(RG_FILTER), page(EP_DONE)),
        entry(events_url(AUTH_FILTER), page()),
        entry(registry_discovery_url(), registry_discovery()),
        entry(registry_events_url(REG_SUB, REG_RG), page(registered, STORAGE_WRITE)),
    ]
    scope = Scope(workspaces=(WS,), registries=(REGISTRY,))
    records, gaps, transport = run(ActivityLogCollector(), entries, tmp_path, scope=scope)
    assert gaps == [] and transport.unused() == []
    # The registry's own subscription and resource group, as its discovery answer names them.
    assert sent_filters(transport)[-1].endswith(f"resourceGroupName eq '{REG_RG}'")
    assert f"/subscriptions/{REG_SUB}/providers/Microsoft.Insights/" in transport.served[-1].url
    assert [r["event_id"] for r in records["activity_events"]] == ["e-2", "e-reg"]
    (reg,) = [r for r in records["activity_events"] if r["event_id"] == "e-reg"]
    assert reg["resource_id"] == f"{REG_ID}/models/credit-risk/versions/3"


def test_a_registry_in_a_workspace_resource_group_is_not_read_twice(tmp_path: Path) -> None:
    here = {**registry_discovery(), "subscriptionId": SUB, "resourceGroup": RG.upper()}
    entries = [
        entry(events_url(RG_FILTER), page(EP_DONE)),
        entry(events_url(AUTH_FILTER), page()),
        entry(registry_discovery_url(), here),
    ]
    scope = Scope(workspaces=(WS,), registries=(REGISTRY,))
    _, gaps, transport = run(ActivityLogCollector(), entries, tmp_path, scope=scope)
    assert gaps == [] and transport.unused() == []
    assert len(sent_filters(transport)) == 2  # the workspace read covers it


def test_a_registry_that_cannot_be_found_is_a_gap_and_the_rest_is_read(tmp_path: Path) -> None:
    missing = {"error": {"code": "NotFound", "message": f"Registry {REGISTRY} not found"}}
    entries = [
        entry(events_url(RG_FILTER), page(EP_DONE)),
        entry(events_url(AUTH_FILTER), page()),
        entry(registry_discovery_url(), missing, status=404),
    ]
    scope = Scope(workspaces=(WS,), registries=(REGISTRY,))
    records, gaps, _ = run(ActivityLogCollector(), entries, tmp_path, scope=scope)
    assert [(g.collector, g.scope, g.status) for g in gaps] == [
        ("activity_log", f"azureml://registries/{REGISTRY}", 404)
    ]
    assert [r["event_id"] for r in records["activity_events"]] == ["e-2"]


def test_a_registry_resource_group_older_than_90_days_is_read_from_log_analytics(tmp_path: Path) -> None:
    old_registration = azure_activity_row(
        "la-reg",
        "2026-06-20T08:00:00Z",
        "Microsoft.MachineLearningServices/registries/models/versions/write",
        f"{REG_ID}/models/credit-risk/versions/1",
    )
    registry_query = (
        "AzureActivity | where TimeGenerated >= datetime(2026-06-01T00:00:00Z) and TimeGenerated <= "
        f"datetime(2026-07-03T06:00:00Z) | where SubscriptionId =~ '{REG_SUB}' and ResourceGroup =~ '{REG_RG}' "
        "| sort by TimeGenerated asc, EventDataId asc"
    )
    timespan = "2026-06-01T00:00:00.000Z/2026-07-03T06:00:00.000Z"
    retained = filter_for("2026-07-03T06:00:00Z", "2026-10-01T00:00:00Z", f"resourceGroupName eq '{REG_RG}'")
    query = urlencode({"api-version": "2015-04-01", "$filter": retained})
    entries = [
        entry(
            LOGS,
            logs_body([]),
            method="POST",
            request_body={"query": OLD_QUERY, "timespan": timespan, "workspaces": None},
        ),
        *retained_entries(EP_DONE),
        entry(registry_discovery_url(), registry_discovery()),
        entry(
            LOGS,
            logs_body([old_registration]),
            method="POST",
            request_body={"query": registry_query, "timespan": timespan, "workspaces": None},
        ),
        entry(
            f"{ARM}/subscriptions/{REG_SUB}/providers/Microsoft.Insights/eventtypes/management/values?{query}", page()
        ),
    ]
    scope = Scope(workspaces=(WS,), registries=(REGISTRY,))
    collector = ActivityLogCollector(log_analytics_workspace="law-1")
    records, gaps, transport = run(collector, entries, tmp_path, window=OLD_WINDOW, scope=scope)
    assert gaps == [] and transport.unused() == []  # the registry's own KQL and filter were sent
    assert [(r["event_id"], r["source"]) for r in records["activity_events"]] == [
        ("la-reg", "log_analytics"),
        ("e-2", "activity_log"),
    ]
