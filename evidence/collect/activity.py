"""The Activity Log for the window: who changed models, endpoints, deployments and access, and when.

Two reads per subscription, because the Activity Log ``$filter`` grammar allows exactly one
predicate beside the time range (``resourceGroupName``, ``resourceUri``, ``resourceProvider`` or
``correlationId``; azure-limits §3.2):

* ``resourceGroupName eq '<rg>'`` for each resource group holding a workspace in scope: every
  Azure ML operation on the workspaces, their models, endpoints and deployments, and role
  assignment changes at the resource group or below;
* ``resourceProvider eq 'Microsoft.Authorization'`` once per subscription: role assignment and
  PIM changes at *subscription* scope, which a workspace inherits but a resource-group filter
  never returns.

Each registry in scope (``[scope] registries``) adds the read of its own resource group: model
registrations and changes in a registry are logged there, not where the workspaces are. Its
resource group is known only from the registry's discovery answer, so that part asks for it
first (kept as evidence too) and skips the read when a workspace's resource group read covers it.

The server cannot filter on operation name, so every page is kept raw and ``normalise`` picks
the events that matter (``KEPT_OPERATIONS``).

Retention: Azure keeps the Activity Log for 90 days. The part of a window older than that is
read from a Log Analytics workspace receiving the Activity Log (``AzureActivity``) when one is
configured; otherwise a gap names the part that is not covered and why.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar

from evidence.clock import isoformat
from evidence.collect.interface import Collector, CollectSession, Part, RawResponse, Record, run_parts
from evidence.collect.models import registry_scope
from evidence.collect.normalise import timestamp, workspace_of
from evidence.domain import Gap

#: "Activity log events are retained in Azure for 90 days and then deleted" (azure-limits §3.1).
ACTIVITY_LOG_RETENTION = timedelta(days=90)
#: The longest time range one Activity Log read covers in the product (``default_collectors``).
SLICE = timedelta(days=15)

_EVENTS_PATH = r"/subscriptions/[^/]+/providers/Microsoft\.Insights/eventtypes/management/values/?"
_LOGS_PATH = r"(?:/v1)?/workspaces/[^/]+/query/?"

#: Operation name prefixes kept (case-insensitive). Everything under the Azure ML provider
#: (workspaces, models, versions, endpoints, deployments, registries), and access changes:
#: role assignments and the PIM schedule requests and policies (azure-limits §3.4).
KEPT_OPERATIONS: tuple[str, ...] = (
    "microsoft.machinelearningservices/",
    "microsoft.authorization/roleassignments/",
    "microsoft.authorization/roleeligibilityschedulerequests/",
    "microsoft.authorization/roleassignmentschedulerequests/",
    "microsoft.authorization/rolemanagementpolicies/",
    "microsoft.authorization/roledefinitions/",
    "microsoft.authorization/denyassignments/",
)


def utc_z(moment: datetime) -> str:
    """Seconds-precision UTC with ``Z``: the one form used in filters, queries and gap texts."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_slices(start: datetime, end: datetime, length: timedelta = SLICE) -> list[tuple[datetime, datetime]]:
    """The window cut into equal slices of at most ``length`` (whole seconds), read concurrently.

    A filter's pages can only be fetched one after another (each ``nextLink`` comes with the page
    before it); a busy resource group logs 50,000 events in 90 days, 250 pages of about 200 events,
    which at a round trip each takes longer than the subscription's whole read budget allows
    (issue 7). Slices page in parallel. Both ends of the filter are inclusive, so an event exactly on
    a boundary is returned twice; ``normalise`` keeps each event once.
    """
    total = int((end - start).total_seconds())
    count = max(1, -(-total // max(1, int(length.total_seconds()))))
    bounds = [start + timedelta(seconds=(total * i) // count) for i in range(count)] + [end]
    return list(itertools.pairwise(bounds))


def time_filter(start: datetime, end: datetime) -> str:
    return f"eventTimestamp ge '{utc_z(start)}' and eventTimestamp le '{utc_z(end)}'"


def _odata_literal(value: str) -> str:
    return value.replace("'", "''")


def _kql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ActivityLogCollector(Collector):
    name: ClassVar[str] = "activity_log"
    record_kinds: ClassVar[tuple[str, ...]] = ("activity_events",)

    def __init__(self, log_analytics_workspace: str | None = None, *, slice_length: timedelta | None = None) -> None:
        #: The Log Analytics workspace (its workspace ID, a GUID) that receives the Activity Log.
        self.log_analytics_workspace = log_analytics_workspace
        #: Read the window in slices of at most this length, concurrently (None: one read per
        #: filter). ``default_collectors`` uses ``SLICE``; see ``time_slices``.
        self.slice_length = slice_length

    def collect(self, session: CollectSession) -> None:
        run_parts(self.parts(session), session)

    def parts(self, session: CollectSession) -> Sequence[Part]:
        """The part of the window older than retention, then one part per filter and subscription.

        The retention cutoff is read once here, so every part agrees on where the window splits.
        """
        window = session.window
        cutoff = session.clock.now() - ACTIVITY_LOG_RETENTION
        retained_start = max(window.start, cutoff)
        parts: list[Part] = []
        expired: tuple[datetime, datetime] | None = None
        if window.start < cutoff:
            expired = (window.start, min(cutoff, window.end))
            parts.append(Part(partial(self._collect_expired, start=expired[0], end=expired[1]), label="before 90 days"))
        groups: dict[str, set[str]] = {}
        for workspace in session.scope.workspaces:
            groups.setdefault(workspace.subscription_id, set()).add(workspace.resource_group)
        covered = frozenset((s.lower(), g.lower()) for s, found in groups.items() for g in found)
        slices: list[str] = []
        if retained_start < window.end:  # else the whole window is older than the Activity Log keeps
            if self.slice_length is None:
                slices = [time_filter(retained_start, window.end)]
            else:
                bounds = time_slices(retained_start, window.end, self.slice_length)
                slices = [time_filter(start, end) for start, end in bounds]
        for subscription in sorted(groups) if slices else ():
            reads = [
                (
                    f"/subscriptions/{subscription}/resourceGroups/{group}",
                    f"resourceGroupName eq '{_odata_literal(group)}'",
                    group,
                )
                for group in sorted(groups[subscription], key=str.lower)
            ]
            reads.append(
                (
                    f"/subscriptions/{subscription}/providers/Microsoft.Authorization",
                    "resourceProvider eq 'Microsoft.Authorization'",
                    "Microsoft.Authorization",
                )
            )
            for scope, predicate, label in reads:
                for when in slices:
                    parts.append(
                        Part(
                            partial(
                                self._list_events,
                                subscription=subscription,
                                scope=scope,
                                filter=f"{when} and {predicate}",
                            ),
                            subscription=subscription,
                            label=label,
                            start_early=True,  # tens of pages one after another: the long pole
                        )
                    )
        for registry in sorted(set(session.scope.registries)):
            parts.append(
                Part(
                    partial(
                        self._list_registry_events,
                        registry=registry,
                        slices=tuple(slices),
                        covered=covered,
                        expired=expired,
                    ),
                    label=registry_scope(registry),
                )
            )
        return parts

    def _list_registry_events(
        self,
        session: CollectSession,
        registry: str,
        slices: Sequence[str],
        covered: frozenset[tuple[str, str]],
        expired: tuple[datetime, datetime] | None,
    ) -> None:
        """A registry's resource group, found through its discovery answer, then read slice by slice.

        The part of the window older than 90 days is read from Log Analytics for that resource
        group too, when one is configured (without one, ``_collect_expired``'s gap covers it).
        """
        found: list[tuple[str, str]] = []  # stays empty when discovery fails (the gap says why)
        with session.attempt(registry_scope(registry)):
            found.append(session.clients.registry_location(registry))
        if not found:
            return
        subscription, group = found[0]
        if (subscription.lower(), group.lower()) in covered:
            return
        if expired is not None and self.log_analytics_workspace:
            start, end = expired
            query = (
                "AzureActivity"
                f" | where TimeGenerated >= datetime({utc_z(start)}) and TimeGenerated <= datetime({utc_z(end)})"
                f" | where SubscriptionId =~ {_kql_literal(subscription)} and ResourceGroup =~ {_kql_literal(group)}"
                " | sort by TimeGenerated asc, EventDataId asc"
            )
            self._collect_log_analytics(session, self.log_analytics_workspace, start, end, query=query)
        for when in slices:
            self._list_events(
                session,
                subscription=subscription,
                scope=f"/subscriptions/{subscription}/resourceGroups/{group}",
                filter=f"{when} and resourceGroupName eq '{_odata_literal(group)}'",
            )

    def _collect_expired(self, session: CollectSession, start: datetime, end: datetime) -> None:
        if self.log_analytics_workspace:
            self._collect_log_analytics(session, self.log_analytics_workspace, start, end)
            return
        session.gaps.append(
            Gap(
                collector=self.name,
                scope=", ".join(f"/subscriptions/{s}" for s in session.scope.subscriptions),
                status=None,
                error_code="RetentionExceeded",
                message=(
                    f"Activity Log retains 90 days: {utc_z(start)} to {utc_z(end)} "
                    "is not covered; configure a Log Analytics workspace that receives the Activity Log"
                ),
                at=isoformat(session.clock.now()),
            )
        )

    def _list_events(self, session: CollectSession, subscription: str, scope: str, filter: str) -> None:
        monitor = session.clients.monitor(subscription)
        with session.attempt(scope):
            for _ in activity_log_pages(monitor, filter):
                pass  # the tap keeps each raw page; normalise reads them

    def _collect_log_analytics(
        self, session: CollectSession, workspace_id: str, start: datetime, end: datetime, query: str | None = None
    ) -> None:
        from azure.monitor.query import LogsQueryStatus

        query = query or azure_activity_query(session, start, end)
        scope = f"log-analytics:{workspace_id}"
        with session.attempt(scope):
            result = session.clients.logs().query_workspace(workspace_id, query, timespan=(start, end))
            # A partial failure is not an exception: it comes back with a status (feasibility §2g).
            if result.status != LogsQueryStatus.SUCCESS:
                error = getattr(result, "partial_error", None)
                details = "; ".join(
                    f"{d.get('code')}: {d.get('message')}"
                    for d in getattr(error, "details", None) or ()
                    if isinstance(d, Mapping)  # the SDK's JSON models are Mappings, not dicts
                )
                session.gaps.append(
                    Gap(
                        collector=self.name,
                        scope=scope,
                        status=None,
                        error_code=str(getattr(error, "code", None) or "PartialResult"),
                        message=(
                            f"Log Analytics returned partial results for {utc_z(start)} to {utc_z(end)}: "
                            f"{getattr(error, 'message', None) or 'no detail given'}"
                            + (f" ({details})" if details else "")
                        ),
                        at=isoformat(session.clock.now()),
                    )
                )

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        rows: list[Record] = []
        for response in responses:
            if not isinstance(response.body, dict):
                continue
            if response.ok and response.path_matches(_EVENTS_PATH):
                rows.extend(_event_row(e) for e in response.body.get("value") or () if isinstance(e, dict))
            elif response.path_matches(_LOGS_PATH):
                # Partial results carry an "error" next to the tables; the rows present are real.
                rows.extend(_azure_activity_row(r) for r in _log_rows(response.body))
        kept = {}
        for row in rows:
            if _keep(row):
                # Each event appears once even when two filters (resource group, provider) or the
                # Activity Log and Log Analytics both returned it.
                kept[str(row["event_id"]).lower()] = row
        events = sorted(kept.values(), key=lambda r: (r["timestamp"] or "", r["event_id"]))
        return {"activity_events": events}


def activity_log_pages(monitor: Any, filter: str) -> Iterator[dict[str, Any]]:
    """Every page of ``activity_logs.list(filter=...)`` that is a JSON object, as parsed JSON.

    The same requests the SDK operation makes (its own request builder, client pipeline,
    credential, retries and transport, and its error mapping), without turning each event into an
    ``EventData`` object: at 150,000 events that was most of a collection run's CPU (issue 7), and
    the objects were thrown away (records are normalised from the stored raw pages). Each page is
    parsed once: the request asks the pipeline not to decode the body (``stream=True``; the tap
    reads every body in full regardless), and ``page_json`` takes the raw store's parse of the
    same bytes when the store made one (``collect.store.parse_json``), else parses it itself.
    Parsing a 200-event page twice, or three times, was a sizeable share of the client's CPU on
    the large profile. A page that is not a JSON object ends the paging, as before.

    Uses the operation's ``_client``/``_config`` (azure-mgmt-monitor 6.x generated code); if they
    move, the ``AttributeError`` becomes an ``UnexpectedResponseShape`` gap, never silence.
    """
    import sys

    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ResourceNotModifiedError,
        map_error,
    )
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    from evidence.collect.paging import page_json

    operations = monitor.activity_logs
    client = operations._client
    build_list_request = sys.modules[type(operations).__module__].build_list_request
    request = build_list_request(subscription_id=operations._config.subscription_id, filter=filter)
    request.url = client.format_url(request.url)
    # The operation's own error map (azure-mgmt-monitor ActivityLogsOperations.list).
    error_map = {
        401: ClientAuthenticationError,
        404: ResourceNotFoundError,
        409: ResourceExistsError,
        304: ResourceNotModifiedError,
    }
    seen: set[str] = set()
    while True:
        # stream=True only tells ContentDecodePolicy not to parse the page (the tap has read the
        # whole body either way): page_json parses it once, or takes the store's parse of it.
        pipeline_response = client.send_request(request, stream=True, _return_pipeline_response=True)
        response = pipeline_response.http_response
        if response.status_code != 200:
            map_error(status_code=response.status_code, response=response, error_map=error_map)
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        try:
            page = page_json(pipeline_response)
        except ValueError as err:
            # The gap every other collector gets for the same body: ContentDecodePolicy (which no
            # longer parses this page, stream=True) raises DecodeError with the response for a
            # body labelled JSON; a body labelled otherwise (an HTML page) fails later, without it.
            if "json" in response.headers.get("content-type", "").lower():
                raise DecodeError(message=f"JSON is invalid: {err}", response=response, error=err) from err
            raise
        except TypeError:
            return  # valid JSON but not an object: no nextLink to follow (the tap kept the page)
        yield page
        link = page.get("nextLink")
        if not link:
            return
        if link in seen:
            # As in paging.raw_pages: the list may be incomplete, so it is a gap, not a quiet stop.
            raise TypeError(f"the service returned the same nextLink again after {len(seen) + 1} pages: {link}")
        seen.add(link)
        request = HttpRequest("GET", client.format_url(link))


def azure_activity_query(session: CollectSession, start: datetime, end: datetime) -> str:
    """The KQL for the ``AzureActivity`` part of a window: same events the two REST filters read."""
    subscriptions = ", ".join(_kql_literal(s) for s in session.scope.subscriptions)
    groups = ", ".join(_kql_literal(g) for g in sorted({w.resource_group for w in session.scope.workspaces}))
    return (
        "AzureActivity"
        f" | where TimeGenerated >= datetime({utc_z(start)}) and TimeGenerated <= datetime({utc_z(end)})"
        f" | where SubscriptionId in~ ({subscriptions})"
        f" | where ResourceProviderValue =~ 'Microsoft.Authorization' or ResourceGroup in~ ({groups})"
        " | sort by TimeGenerated asc, EventDataId asc"
    )


# ------------------------------------------------------------------------------------- filtering
def _keep(row: Record) -> bool:
    operation = str(row.get("operation") or "").lower()
    if not operation.startswith(KEPT_OPERATIONS):
        return False
    if operation.startswith("microsoft.machinelearningservices/"):
        return True
    # An access change matters when it can reach a workspace: made at a management group,
    # subscription or resource group, or on an Azure ML resource. A role assignment on a storage
    # account or a VM does not touch any workspace.
    target = str(row.get("request_scope") or row.get("resource_id") or "")
    return _can_reach_workspace(target)


def _can_reach_workspace(arm_id: str) -> bool:
    parts = [p for p in arm_id.lower().split("/") if p]
    if not parts:
        return True  # no scope known: keep it rather than drop access evidence
    if parts[0] == "providers" and len(parts) >= 2 and parts[1] == "microsoft.management":
        return True
    if parts[0] != "subscriptions":
        return False
    # Strip any trailing /providers/Microsoft.Authorization/<kind>/<name> from event resource IDs.
    if "microsoft.authorization" in parts:
        index = parts.index("microsoft.authorization")
        parts = parts[: index - 1] if index >= 1 and parts[index - 1] == "providers" else parts
    if len(parts) <= 4:
        return True  # subscription or resource group
    return "microsoft.machinelearningservices" in parts


# ------------------------------------------------------------------------------------- rows
def _value(field: Any) -> Any:
    """Activity Log localisable strings are ``{"value": ..., "localizedValue": ...}``."""
    return field.get("value") if isinstance(field, dict) else field


def _localized(field: Any) -> Any:
    return field.get("localizedValue") if isinstance(field, dict) else None


def _json_object(value: Any) -> dict[str, Any] | None:
    """A dict from a JSON string or a dict; None for anything else (never raises)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _get_ci(mapping: Mapping[str, Any] | None, key: str) -> Any:
    if not mapping:
        return None
    lowered = key.lower()
    for k, v in mapping.items():
        if str(k).lower() == lowered:
            return v
    return None


def caller_type(claims: Mapping[str, Any] | None) -> str | None:
    """User, ServicePrincipal or ManagedIdentity from the token claims, when they say so."""
    if not claims:
        return None
    if _get_ci(claims, "xms_mirid"):
        return "ManagedIdentity"
    idtyp = str(_get_ci(claims, "idtyp") or "").lower()
    if idtyp == "app":
        return "ServicePrincipal"
    if idtyp == "user":
        return "User"
    upn_claims = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn", "puid")
    if any(_get_ci(claims, c) for c in upn_claims):
        return "User"
    if _get_ci(claims, "appid") or _get_ci(claims, "azp"):
        return "ServicePrincipal"
    return None


def _request_fields(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """Role assignment fields from ``requestbody`` (a JSON string), else ``responseBody``."""
    out: dict[str, Any] = {
        "request_principal_id": None,
        "request_principal_type": None,
        "request_role_definition_id": None,
        "request_scope": None,
        "request_condition": None,
    }
    for key in ("requestbody", "responseBody"):
        body = _json_object(_get_ci(properties, key))
        if body is None:
            continue
        inner = _json_object(_get_ci(body, "properties")) or body
        values = {
            "request_principal_id": _get_ci(inner, "principalId"),
            "request_principal_type": _get_ci(inner, "principalType"),
            "request_role_definition_id": _get_ci(inner, "roleDefinitionId"),
            "request_scope": _get_ci(inner, "scope"),
            "request_condition": _get_ci(inner, "condition"),
        }
        for name, value in values.items():
            if out[name] is None and isinstance(value, str) and value:
                out[name] = value
    return out


#: Row fields with few distinct values across a log (a 90-day log repeats the same operations,
#: callers and resource groups 150,000 times).
_SHARED_FIELDS = (
    "operation",
    "operation_name_localized",
    "status",
    "sub_status",
    "caller",
    "caller_type",
    "caller_ip",
    "resource_group",
    "subscription_id",
    "level",
    "category",
    "event_name",
    "workspace_id",
)


def _shared(row: Record) -> Record:
    """One string object per distinct value of the repetitive fields (same values, less memory).

    A parser makes a new string for every occurrence; at 151,260 events the copies of these
    fields were about 175 MB of the records the pipeline holds (benchmarks/README.md).
    """
    for name in _SHARED_FIELDS:
        value = row.get(name)
        if type(value) is str:
            row[name] = sys.intern(value)
    return row


def _event_row(event: dict[str, Any]) -> Record:
    claims = _json_object(event.get("claims"))
    properties = _json_object(event.get("properties"))
    row: Record = {
        "event_id": str(event.get("eventDataId") or event.get("id") or ""),
        "timestamp": timestamp(event.get("eventTimestamp")),
        "submission_timestamp": timestamp(event.get("submissionTimestamp")),
        "operation": _value(event.get("operationName")),
        "operation_name_localized": _localized(event.get("operationName")),
        "status": _value(event.get("status")),
        "sub_status": _value(event.get("subStatus")),
        "caller": event.get("caller"),
        "caller_type": caller_type(claims),
        "caller_ip": (event.get("httpRequest") or {}).get("clientIpAddress"),
        "resource_id": event.get("resourceId"),
        "resource_group": event.get("resourceGroupName"),
        "subscription_id": event.get("subscriptionId"),
        "correlation_id": event.get("correlationId"),
        "operation_id": event.get("operationId"),
        "level": event.get("level"),
        "category": _value(event.get("category")),
        "event_name": _value(event.get("eventName")),
        "source": "activity_log",
    }
    row["workspace_id"] = workspace_of(str(row["resource_id"] or ""))
    row.update(_request_fields(properties))
    return _shared(row)


def _log_rows(body: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Rows of a Log Analytics query response (``tables[].columns/rows``) as column->value dicts."""
    for table in body.get("tables") or ():
        if not isinstance(table, dict):
            continue
        columns = [str(c.get("name")) if isinstance(c, dict) else str(c) for c in table.get("columns") or ()]
        for values in table.get("rows") or ():
            if isinstance(values, list):
                yield dict(zip(columns, values, strict=False))


def _azure_activity_row(row: Mapping[str, Any]) -> Record:
    claims = _json_object(row.get("Claims_d")) or _json_object(row.get("Claims"))
    properties = _json_object(row.get("Properties_d")) or _json_object(row.get("Properties"))
    resource_id = row.get("_ResourceId") or row.get("ResourceId")
    out: Record = {
        "event_id": str(row.get("EventDataId") or ""),
        "timestamp": timestamp(row.get("TimeGenerated")),
        "submission_timestamp": timestamp(row.get("EventSubmissionTimestamp")),
        "operation": row.get("OperationNameValue"),
        "operation_name_localized": row.get("OperationName"),
        "status": row.get("ActivityStatusValue"),
        "sub_status": row.get("ActivitySubstatusValue") or None,
        "caller": row.get("Caller"),
        "caller_type": caller_type(claims),
        "caller_ip": row.get("CallerIpAddress") or None,
        "resource_id": resource_id,
        "resource_group": row.get("ResourceGroup"),
        "subscription_id": row.get("SubscriptionId"),
        "correlation_id": row.get("CorrelationId"),
        "operation_id": row.get("OperationId"),
        "level": row.get("Level"),
        "category": row.get("CategoryValue"),
        "event_name": None,
        "source": "log_analytics",
    }
    out["workspace_id"] = workspace_of(str(resource_id or ""))
    out.update(_request_fields(properties))
    return _shared(out)
