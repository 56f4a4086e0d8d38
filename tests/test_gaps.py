"""Gaps, never silence: every failure kind becomes the right gap and the run goes on.

All five collectors run together (``run_collection``) through the real SDK pipelines over a
cassette in which every request succeeds; a ``FaultyReplay`` then breaks one request per
collector with the failure under test, for exactly as many attempts as azure-core's retry policy
makes. So each test also pins the retry behaviour: one attempt more or fewer and a fault would be
left over or spill into the next collector's request, and the test fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure_shapes import (
    ARM,
    DEPLOYMENTS_API,
    ENDPOINTS_API,
    MODELS_API,
    RG,
    SUB,
    WS,
    WS_ID,
    deployment,
    endpoint,
    get,
    model_container,
    model_version,
)

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import CannedResponse, ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.activity import ActivityLogCollector
from evidence.collect.endpoints import EndpointsCollector
from evidence.collect.gaps import gap_from_exception
from evidence.collect.interface import Collector, Record
from evidence.collect.metrics import MAX_SERIES, MetricsCollector
from evidence.collect.models import ModelVersionsCollector
from evidence.collect.rbac import RoleAssignmentsCollector
from evidence.collect.runner import run_collection
from evidence.collect.store import load_raw, normalise_all, write_raw
from evidence.domain import Gap, Scope, Window, Workspace
from evidence.errors import ReplayError

CLOCK = FixedClock(datetime(2026, 10, 1, 6, tzinfo=UTC))
WINDOW = Window(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
SCOPE = Scope(workspaces=(Workspace(SUB, RG, WS),))
AT = "2026-10-01T06:00:00Z"
MODEL = f"{WS_ID}/models/churn/versions/1"
READER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
TIMESPAN = "2026-09-01T00:00:00Z/2026-10-01T00:00:00Z"
EP_NS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEP_NS = f"{EP_NS}/deployments"
DEP_METRICS = "CpuUtilizationPercentage,CpuMemoryUtilizationPercentage,DeploymentCapacity"
EVENTS = f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
WHEN = "eventTimestamp ge '2026-09-01T00:00:00Z' and eventTimestamp le '2026-10-01T00:00:00Z'"


# ----------------------------------------------------------------------------- the healthy tenant
def metrics_url(resource: str, names: str, aggregation: str, namespace: str, flt: str | None = None) -> str:
    params = {
        "timespan": TIMESPAN,
        "interval": "PT6H",
        "metricnames": names,
        "aggregation": aggregation,
        "api-version": "2024-02-01",
        "metricnamespace": namespace,
    }
    if flt:
        params |= {"$filter": flt, "top": str(MAX_SERIES)}
    return f"{ARM}{resource}/providers/Microsoft.Insights/metrics?{urlencode(params)}"


def events_url(predicate: str) -> str:
    return f"{EVENTS}?{urlencode({'api-version': '2015-04-01', '$filter': f'{WHEN} and {predicate}'})}"


def metrics_body(resource: str, name: str) -> dict[str, Any]:
    return {
        "timespan": TIMESPAN,
        "interval": "PT6H",
        "value": [
            {
                "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name},
                "unit": "Count",
                "errorCode": "Success",
                "timeseries": [{"metadatavalues": [], "data": [{"timeStamp": "2026-09-01T00:00:00Z", "average": 1.0}]}],
            }
        ],
    }


def event(event_id: str, operation: str, resource_id: str) -> dict[str, Any]:
    return {
        "caller": "alice@contoso.com",
        "claims": {"idtyp": "user"},
        "correlationId": f"c-{event_id}",
        "eventDataId": event_id,
        "eventTimestamp": "2026-09-10T00:00:00Z",
        "level": "Informational",
        "operationName": {"value": operation, "localizedValue": operation},
        "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
        "resourceId": resource_id,
        "category": {"value": "Administrative"},
        "properties": {},
    }


def healthy_tenant() -> list[Entry]:
    ep_a, ep_b = f"{WS_ID}/onlineEndpoints/ep-a", f"{WS_ID}/onlineEndpoints/ep-b"
    models = f"{ARM}{WS_ID}/models?api-version={MODELS_API}&listViewType=All"
    authz = f"{ARM}{WS_ID}/providers/Microsoft.Authorization"
    rpm_filter = "deployment eq '*' and statusCodeClass eq '*'"
    entries = [
        # model_versions
        get(models, {"value": [model_container("credit-risk", "1"), model_container("churn", "1")]}),
        get(
            f"{ARM}{WS_ID}/models/credit-risk/versions?api-version={MODELS_API}&listViewType=All",
            {"value": [model_version("credit-risk", "1", tags={}, stage="Production")]},
        ),
        get(
            f"{ARM}{WS_ID}/models/churn/versions?api-version={MODELS_API}&listViewType=All",
            {"value": [model_version("churn", "1", tags={}, stage="Production")]},
        ),
        # endpoints (listed again by metrics: the replay serves a used success again)
        get(
            f"{ARM}{WS_ID}/onlineEndpoints?api-version={ENDPOINTS_API}",
            {"value": [endpoint("ep-a", {"blue": 100}), endpoint("ep-b", {"green": 100})]},
        ),
        get(f"{ARM}{ep_a}/deployments?api-version={DEPLOYMENTS_API}", {"value": [deployment("ep-a", "blue", MODEL)]}),
        get(f"{ARM}{ep_b}/deployments?api-version={DEPLOYMENTS_API}", {"value": [deployment("ep-b", "green", MODEL)]}),
        # role_assignments
        get(
            f"{authz}/roleAssignments?$filter=atScope()&api-version=2022-04-01",
            {
                "value": [
                    {
                        "id": f"{WS_ID}/providers/Microsoft.Authorization/roleAssignments/ra-1",
                        "name": "ra-1",
                        "properties": {
                            "roleDefinitionId": READER,
                            "principalId": "p-1",
                            "principalType": "User",
                            "scope": WS_ID,
                        },
                    }
                ]
            },
        ),
        get(
            f"{authz}/denyAssignments?$filter=atScope()&api-version=2022-04-01",
            {
                "value": [
                    {
                        "id": f"{WS_ID}/providers/Microsoft.Authorization/denyAssignments/da-1",
                        "name": "da-1",
                        "properties": {
                            "denyAssignmentName": "stack",
                            "scope": WS_ID,
                            "permissions": [],
                            "principals": [],
                        },
                    }
                ]
            },
        ),
        get(f"{authz}/roleEligibilityScheduleInstances?$filter=atScope()&api-version=2020-10-01", {"value": []}),
        get(
            f"{ARM}{READER}?api-version=2022-04-01",
            {"id": READER, "name": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "properties": {"roleName": "Reader"}},
        ),
        # activity_log
        get(
            events_url(f"resourceGroupName eq '{RG}'"),
            {"value": [event("e-ml", "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write", ep_a)]},
        ),
        get(
            events_url("resourceProvider eq 'Microsoft.Authorization'"),
            {
                "value": [
                    event(
                        "e-ra",
                        "Microsoft.Authorization/roleAssignments/write",
                        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-9",
                    )
                ]
            },
        ),
    ]
    # metrics
    for ep in (ep_a, ep_b):
        entries.append(
            get(
                metrics_url(ep, "RequestsPerMinute", "Average", EP_NS, rpm_filter),
                metrics_body(ep, "RequestsPerMinute"),
            )
        )
        entries.append(
            get(
                metrics_url(ep, "RequestLatency_P50,RequestLatency_P99", "Average", EP_NS, "deployment eq '*'"),
                metrics_body(ep, "RequestLatency_P50"),
            )
        )
    for dep in (f"{ep_a}/deployments/blue", f"{ep_b}/deployments/green"):
        entries.append(
            get(metrics_url(dep, DEP_METRICS, "Average,Maximum", DEP_NS), metrics_body(dep, "CpuUtilizationPercentage"))
        )
    return entries


# ----------------------------------------------------------------------------- failure injection
@dataclass
class Failure:
    """How one failure kind looks on the wire, how often azure-core tries, and the gap it must give."""

    attempts: int
    respond: Callable[[Any], CannedResponse]
    status: int | None
    error_code: str | None
    message: str | None  # None: not compared (SDK-specific wording)


def http(status: int, body: Any, headers: dict[str, str] | None = None) -> Callable[[Any], CannedResponse]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    content_type = "text/html" if isinstance(body, str) and body.startswith("<") else "application/json"
    return lambda request: CannedResponse(request, status, {"Content-Type": content_type, **(headers or {})}, data)


def raising(exc: Exception) -> Callable[[Any], CannedResponse]:
    def respond(request: Any) -> CannedResponse:
        raise exc

    return respond


ARM_403 = {
    "error": {
        "code": "AuthorizationFailed",
        "message": "The client 'sp-evidence' with object id 'o-1' does "
        "not have authorization to perform action 'read' over scope 'x' or the scope is invalid.",
    }
}
ARM_404 = {
    "error": {"code": "ResourceNotFound", "message": "The Resource 'x' under resource group 'rg' was not found."}
}
ARM_429 = {"error": {"code": "TooManyRequests", "message": "The request is being throttled."}}
ARM_500 = {"error": {"code": "InternalServerError", "message": "Encountered internal server error."}}
HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>gateway</body></html>"

FAILURES: dict[str, Failure] = {
    "403": Failure(1, http(403, ARM_403), 403, "AuthorizationFailed", ARM_403["error"]["message"]),
    "404": Failure(1, http(404, ARM_404), 404, "ResourceNotFound", ARM_404["error"]["message"]),
    # Retry-After is honoured three times (feasibility §4); replay sleeps are instant.
    "429 after retries": Failure(
        4, http(429, ARM_429, {"Retry-After": "7"}), 429, "TooManyRequests", "The request is being throttled."
    ),
    "500 after retries": Failure(
        4, http(500, ARM_500), 500, "InternalServerError", "Encountered internal server error."
    ),
    "read timeout": Failure(
        4,
        raising(
            ServiceResponseError(
                "HTTPSConnectionPool(host='management.azure.com', port=443): Read timed out. (read timeout=300)"
            )
        ),
        None,
        "Timeout",
        "HTTPSConnectionPool(host='management.azure.com', port=443): Read timed out. (read timeout=300)",
    ),
    "connection refused": Failure(
        4,
        raising(
            ServiceRequestError(
                "<urllib3.connection.HTTPSConnection object>: Failed to establish a new connection: [Errno 111] "
                "Connection refused"
            )
        ),
        None,
        "ConnectionError",
        None,
    ),
    # A truncated body raises DecodeError, which keeps the status.
    "malformed JSON": Failure(1, http(200, '{"value": [{"id": "/subscriptions/'), 200, "MalformedResponse", None),
    # An HTML page with 200 fails in the deserializer (DeserializationError or json.JSONDecodeError),
    # which carries no response: the status is not known to the gap (the raw file still has it).
    "HTML body": Failure(1, http(200, HTML), None, "MalformedResponse", None),
    # A gateway's HTML error page is retried like any 502, and has no ARM error code to report.
    "HTML 502 after retries": Failure(4, http(502, HTML), 502, None, None),
}


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _path(url: str) -> str:
    return unquote(urlsplit(url).path).lower()


#: One request per collector to break, and the gap scope it must be reported under.
TARGETS: dict[str, tuple[Callable[[str], bool], str]] = {
    "model_versions": (lambda u: _path(u).endswith("/models/credit-risk/versions"), f"{WS_ID}/models/credit-risk"),
    "endpoints": (
        lambda u: _path(u).endswith("/onlineendpoints/ep-a/deployments"),
        f"{WS_ID}/onlineEndpoints/ep-a/deployments",
    ),
    "role_assignments": (
        lambda u: _path(u).endswith("/providers/microsoft.authorization/roleassignments"),
        f"{WS_ID}/providers/Microsoft.Authorization/roleAssignments",
    ),
    "activity_log": (
        lambda u: "resourceGroupName" in _query(u).get("$filter", ""),
        f"/subscriptions/{SUB}/resourceGroups/{RG}",
    ),
    "metrics": (
        lambda u: (
            _path(u).endswith("/onlineendpoints/ep-a/providers/microsoft.insights/metrics")
            and _query(u).get("metricnames") == "RequestsPerMinute"
        ),
        f"{WS_ID}/onlineEndpoints/ep-a/providers/Microsoft.Insights/metrics",
    ),
}


class FaultyReplay(ReplayTransport):
    """Replay, except that requests matching a fault get the failure instead, ``remaining`` times."""

    def __init__(self, entries: list[Entry], faults: list[tuple[Callable[[str], bool], Failure]]) -> None:
        super().__init__(entries)
        self.remaining = [failure.attempts for _, failure in faults]
        self.faults = faults
        self.hits: list[str] = []

    def send(self, request: Any, **kwargs: Any) -> CannedResponse:
        url = str(request.url)
        for index, (matches, failure) in enumerate(self.faults):
            if self.remaining[index] and matches(url):
                self.remaining[index] -= 1
                self.hits.append(url)
                return failure.respond(request)
        return super().send(request, **kwargs)


def collectors() -> list[Collector]:
    return [
        ModelVersionsCollector(),
        EndpointsCollector(),
        RoleAssignmentsCollector(),
        ActivityLogCollector(),
        MetricsCollector(),
    ]


def collect(transport: ReplayTransport, tmp_path: Path) -> tuple[dict[str, list[Record]], tuple[Gap, ...]]:
    tap = EvidenceTap(transport, CLOCK)
    chosen = collectors()
    run = run_collection(
        clients=AzureClients(StaticCredential(), tap),
        tap=tap,
        scope=SCOPE,
        window=WINDOW,
        clock=CLOCK,
        collectors=chosen,
    )
    provenance, _ = write_raw(run.exchanges, tmp_path)
    return normalise_all(chosen, load_raw(tmp_path, provenance)), run.gaps


def test_healthy_tenant_has_no_gaps(tmp_path: Path) -> None:
    replay = ReplayTransport(healthy_tenant())
    records, gaps = collect(replay, tmp_path)
    assert gaps == ()
    assert replay.unused() == []
    assert {kind: len(rows) for kind, rows in records.items()} == {
        "model_versions": 2,
        "endpoints": 2,
        "deployments": 2,
        "role_assignments": 1,
        "deny_assignments": 1,
        "role_eligibility": 0,
        "activity_events": 2,
        "metrics": 8,
    }


@pytest.mark.parametrize("kind", list(FAILURES))
def test_each_failure_kind_becomes_the_right_gap_in_every_collector(kind: str, tmp_path: Path) -> None:
    failure = FAILURES[kind]
    replay = FaultyReplay(healthy_tenant(), [(matches, failure) for matches, _ in TARGETS.values()])
    records, gaps = collect(replay, tmp_path)

    # Every fault was used exactly as often as azure-core tries, and nothing else failed.
    assert replay.remaining == [0] * len(TARGETS)
    assert [(g.collector, g.scope) for g in gaps] == [(name, scope) for name, (_, scope) in TARGETS.items()]
    for gap in gaps:
        assert (gap.collector, gap.status, gap.error_code) == (gap.collector, failure.status, failure.error_code)
        assert gap.at == AT
        assert gap.message and "\n" not in gap.message and "Traceback" not in gap.message
        if failure.message is not None:
            assert gap.message == failure.message
    if kind.startswith("429"):
        assert replay.sleeps == [7.0] * 3 * len(TARGETS)

    # ... and the run went on: what the failure did not touch is still collected.
    assert [r["model_name"] for r in records["model_versions"]] == ["churn"]
    assert [r["deployment_name"] for r in records["deployments"]] == ["green"]
    assert records["role_assignments"] == [] and len(records["deny_assignments"]) == 1
    assert [r["event_id"] for r in records["activity_events"]] == ["e-ra"]
    series = {(r["resource_id"].removeprefix(f"{WS_ID}/onlineEndpoints/"), r["metric"]) for r in records["metrics"]}
    assert ("ep-b", "RequestsPerMinute") in series and ("ep-a", "RequestLatency_P50") in series
    assert not any(
        r["resource_id"].endswith("/ep-a") and r["metric"] == "RequestsPerMinute" for r in records["metrics"]
    )


def test_a_replay_miss_is_not_a_gap_but_stops_the_run(tmp_path: Path) -> None:
    # A recording that cannot answer says nothing about the tenant: it must not pass as a gap.
    with pytest.raises(ReplayError):
        collect(ReplayTransport(healthy_tenant()[:1]), tmp_path)


def test_gap_from_exception_on_foreign_exceptions() -> None:
    assert gap_from_exception("c", "s", KeyError("properties"), at=AT) == Gap(
        "c", "s", None, "UnexpectedResponseShape", "the SDK could not read the response: KeyError: 'properties'", AT
    )
    assert gap_from_exception("c", "s", RuntimeError("bug"), at=AT) is None  # a bug is not a gap
