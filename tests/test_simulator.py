"""The simulated Resource Manager, exercised through the real SDK clients (no patching)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.constants import ListViewType
from azure.core.exceptions import DecodeError, HttpResponseError, ResourceNotFoundError

from evidence.azure.clients import ELIGIBILITY_API, AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.sim.tenant import tenant_from_dict
from evidence.azure.simulator import (
    Fault,
    SimulatedAzure,
    SimulatorMiss,
    Tenant,
    TenantError,
    Throttle,
    VirtualTime,
    load_tenant,
)
from evidence.clock import parse_timestamp
from evidence.domain import Workspace

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso" / "tenant.toml"
WINDOW = "eventTimestamp ge '2026-07-01T00:00:00Z' and eventTimestamp le '2026-09-28T00:00:00Z'"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant(SAMPLE)


def clients_for(sim: SimulatedAzure) -> AzureClients:
    return AzureClients(StaticCredential(), sim)


def ws(tenant: Tenant, name: str) -> Workspace:
    return Workspace(tenant.subscription_id, tenant.resource_group, name)


# -- Azure ML -------------------------------------------------------------------------------------
def test_models_list_all_versions_including_archived_across_pages(tenant: Tenant) -> None:
    sim = SimulatedAzure(tenant)
    ml = clients_for(sim).ml(ws(tenant, "mlw-credit-prod"))
    containers = sorted(c.name for c in ml.models.list())
    assert containers == ["churn", "credit-risk"]
    versions = {v.version: v for v in ml.models.list(name="credit-risk", list_view_type=ListViewType.ALL)}
    assert sorted(versions) == ["1", "2", "3", "4"]
    assert versions["1"].stage == "Archived"
    assert versions["3"].tags["approval_ticket"] == "MRM-1251"
    assert versions["3"].job_name == "credit-risk-train-20260708"
    assert versions["3"].creation_context.created_by_type == "Application"
    # Page size 1 for containers and 2 for versions: both lists followed nextLink.
    urls = [r.url for r in sim.requests]
    assert sum("/models?" in u for u in urls) == 2
    assert any("listViewType=All" in u and "skipToken" in u for u in urls)
    assert sim.unmatched == []


def test_active_only_hides_archived_versions(tenant: Tenant) -> None:
    ml = clients_for(SimulatedAzure(tenant)).ml(ws(tenant, "mlw-fraud-prod"))
    assert sorted(v.version for v in ml.models.list(name="fraud-detector")) == ["2", "3"]


def test_endpoints_and_deployments_convert_with_traffic_and_model_ids(tenant: Tenant) -> None:
    ml = clients_for(SimulatedAzure(tenant)).ml(ws(tenant, "mlw-credit-prod"))
    (endpoint,) = list(ml.online_endpoints.list())
    assert endpoint.traffic == {"blue": 90, "green": 10}
    assert endpoint.mirror_traffic == {"shadow": 20}
    deployments = {d.name: d for d in ml.online_deployments.list(endpoint.name)}
    assert sorted(deployments) == ["blue", "green", "shadow"]
    assert deployments["green"].model == tenant.model_version_id("mlw-credit-prod", "credit-risk:4")
    assert deployments["blue"].instance_count == 3
    # get() makes the hidden second call to list deployments; both are served.
    assert ml.online_endpoints.get("credit-risk-endpoint").traffic["blue"] == 90
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("no-such-endpoint")


def test_unknown_workspace_is_an_arm_404(tenant: Tenant) -> None:
    ml = clients_for(SimulatedAzure(tenant)).ml(ws(tenant, "mlw-missing"))
    with pytest.raises(ResourceNotFoundError) as err:
        list(ml.models.list())
    assert "mlw-missing" in str(err.value)


# -- Authorization --------------------------------------------------------------------------------
def test_role_assignments_at_scope_include_inherited_ones(tenant: Tenant) -> None:
    auth = clients_for(SimulatedAzure(tenant)).authorization(tenant.subscription_id)
    scope = tenant.workspace_id("mlw-credit-prod")
    found = list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))
    scopes = {ra.scope for ra in found}
    assert scopes == {
        tenant.management_group_id,
        tenant.subscription_scope,
        tenant.resource_group_id,
        scope,
    }
    # The other workspace's assignments are neither at nor above this scope.
    assert not any("mlw-fraud-prod" in ra.scope for ra in found)
    names = {auth.role_definitions.get_by_id(ra.role_definition_id).role_name for ra in found}
    assert names == {"Owner", "Reader", "Contributor", "AzureML Data Scientist"}
    orphan = [ra for ra in found if ra.principal_type == "Unknown"]
    assert len(orphan) == 1
    # Without a filter, assignments below the scope are listed too.
    below = list(auth.role_assignments.list_for_scope(tenant.resource_group_id))
    assert any("mlw-fraud-prod" in ra.scope for ra in below)


def test_role_definition_get_at_scope_and_unknown_guid(tenant: Tenant) -> None:
    auth = clients_for(SimulatedAzure(tenant)).authorization(tenant.subscription_id)
    owner = auth.role_definitions.get(tenant.workspace_id("mlw-credit-prod"), "8e3af657-a8ff-443c-a75c-2fe8c4bcb635")
    assert owner.role_name == "Owner"
    assert owner.role_type == "BuiltInRole"
    with pytest.raises(HttpResponseError) as err:
        auth.role_definitions.get(tenant.subscription_scope, "00000000-0000-0000-0000-000000000000")
    assert err.value.status_code == 404


def test_deny_and_pim_and_pim_forbidden(tenant: Tenant) -> None:
    scope = tenant.workspace_id("mlw-fraud-prod")
    clients = clients_for(SimulatedAzure(tenant))
    auth = clients.authorization(tenant.subscription_id)
    deny = list(auth.deny_assignments.list_for_scope(scope, filter="atScope()"))
    assert [d.scope for d in deny] == [tenant.resource_group_id]
    pim = clients.authorization(tenant.subscription_id, ELIGIBILITY_API)  # PIM's own API version
    eligible = list(pim.role_eligibility_schedule_instances.list_for_scope(scope))
    assert [e.principal_id for e in eligible] == [tenant.principal("carol@contoso.com").id]

    sim = SimulatedAzure(tenant, faults=[Fault.forbidden("roleEligibilityScheduleInstances")])
    auth = clients_for(sim).authorization(tenant.subscription_id, ELIGIBILITY_API)
    with pytest.raises(HttpResponseError) as err:
        list(auth.role_eligibility_schedule_instances.list_for_scope(scope))
    assert err.value.status_code == 403
    assert err.value.error is not None and err.value.error.code == "AuthorizationFailed"


def test_tenant_forbidden_patterns_answer_403(tenant: Tenant) -> None:
    from dataclasses import replace

    sim = SimulatedAzure(replace(tenant, forbidden=("roleEligibilityScheduleInstances",)))
    auth = clients_for(sim).authorization(tenant.subscription_id, ELIGIBILITY_API)
    with pytest.raises(HttpResponseError) as err:
        list(auth.role_eligibility_schedule_instances.list_for_scope(tenant.subscription_scope))
    assert "roleEligibilityScheduleInstances/read" in str(err.value)


# -- Activity Log ---------------------------------------------------------------------------------
def test_activity_log_filter_paging_and_order(tenant: Tenant) -> None:
    sim = SimulatedAzure(tenant, page_sizes={"activity_log": 50})
    monitor = clients_for(sim).monitor(tenant.subscription_id)
    events = list(monitor.activity_logs.list(filter=f"{WINDOW} and resourceGroupName eq 'rg-ml-prod'"))
    assert len(events) > 200
    assert sum(1 for r in sim.requests if "eventtypes" in r.url) == -(-len(events) // 50)
    stamps = [e.event_timestamp for e in events]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert all(e.resource_group_name == "rg-ml-prod" for e in events)
    assert min(stamps) >= parse_timestamp("2026-07-01T00:00:00Z")
    # Started + Succeeded share a correlation id.
    deploy = [e for e in events if e.resource_id.endswith("/deployments/shadow")]
    assert sorted(e.status.value for e in deploy) == ["Started", "Succeeded"]
    assert len({e.correlation_id for e in deploy}) == 1
    assert {e.caller for e in deploy} == {"alice@contoso.com"}


def test_role_assignment_write_carries_requestbody_json_string(tenant: Tenant) -> None:
    monitor = clients_for(SimulatedAzure(tenant)).monitor(tenant.subscription_id)
    events = list(monitor.activity_logs.list(filter=f"{WINDOW} and resourceProvider eq 'Microsoft.Authorization'"))
    writes = [e for e in events if e.operation_name.value == "Microsoft.Authorization/roleAssignments/write"]
    started = [e for e in writes if e.status.value == "Started"]
    bodies = [json.loads(e.properties["requestbody"]) for e in started]
    bob = tenant.principal("bob@contoso.com").id
    assert any(b["Properties"]["PrincipalId"] == bob for b in bodies)
    # The planted unlogged assignment (dave) has no event.
    dave = tenant.principal("dave@contoso.com").id
    assert not any(b["Properties"]["PrincipalId"] == dave for b in bodies)
    assert any(e.operation_name.value.endswith("roleAssignments/delete") for e in events)


def test_activity_log_other_resource_group_and_bad_filters(tenant: Tenant) -> None:
    monitor = clients_for(SimulatedAzure(tenant)).monitor(tenant.subscription_id)
    other = list(monitor.activity_logs.list(filter=f"{WINDOW} and resourceGroupName eq 'rg-data-platform'"))
    assert [e.operation_name.value for e in other] == ["Microsoft.Storage/storageAccounts/write"] * 2
    for bad in (f"{WINDOW} and operationName eq 'x'", "resourceGroupName eq 'rg-ml-prod'"):
        with pytest.raises(HttpResponseError) as err:
            list(monitor.activity_logs.list(filter=bad))
        assert err.value.status_code == 400


def test_activity_log_keeps_90_days(tenant: Tenant) -> None:
    monitor = clients_for(SimulatedAzure(tenant)).monitor(tenant.subscription_id)
    events = list(
        monitor.activity_logs.list(
            filter="eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp le '2026-09-28T00:00:00Z'"
        )
    )
    assert min(e.event_timestamp for e in events) >= parse_timestamp("2026-06-30T06:00:00Z")


# -- metrics --------------------------------------------------------------------------------------
def _endpoint_metrics(tenant: Tenant, sim: SimulatedAzure, **kwargs: Any) -> Any:
    monitor = clients_for(sim).monitor(tenant.subscription_id)
    eid = tenant.workspace_id("mlw-credit-prod") + "/onlineEndpoints/credit-risk-endpoint"
    return monitor.metrics.list(eid, timespan="2026-09-01T00:00:00Z/2026-09-08T00:00:00Z", **kwargs)


def test_metrics_split_by_dimensions_and_interval(tenant: Tenant) -> None:
    sim = SimulatedAzure(tenant)
    result = _endpoint_metrics(
        tenant,
        sim,
        interval="P1D",
        metricnames="RequestsPerMinute",
        aggregation="Average,Total",
        filter="deployment eq '*' and statusCodeClass eq '*'",
    )
    assert result.interval == "P1D"
    (metric,) = result.value
    assert metric.unit == "Count"
    combos = {tuple((m.name.value, m.value) for m in ts.metadatavalues) for ts in metric.timeseries}
    assert len(combos) == 6  # blue/green x 2xx/4xx/5xx
    assert all(len(ts.data) == 7 for ts in metric.timeseries)
    point = metric.timeseries[0].data[0]
    assert point.average is not None and point.total is not None and point.maximum is None
    hourly = _endpoint_metrics(tenant, sim, interval="PT1H", metricnames="RequestLatency_P99")
    assert len(hourly.value[0].timeseries[0].data) == 7 * 24
    # Deterministic: the same request gives the same bytes.
    assert sim.requests[0].url != sim.requests[1].url
    again = _endpoint_metrics(tenant, SimulatedAzure(tenant), interval="PT1H", metricnames="RequestLatency_P99")
    assert again.as_dict() == hourly.as_dict()


def test_metrics_unknown_metric_is_400(tenant: Tenant) -> None:
    with pytest.raises(HttpResponseError) as err:
        _endpoint_metrics(tenant, SimulatedAzure(tenant), interval="PT1H", metricnames="NoSuchMetric")
    assert err.value.status_code == 400
    assert "NoSuchMetric" in str(err.value)


def test_deployment_metrics(tenant: Tenant) -> None:
    monitor = clients_for(SimulatedAzure(tenant)).monitor(tenant.subscription_id)
    did = tenant.workspace_id("mlw-fraud-prod") + "/onlineEndpoints/fraud-endpoint/deployments/main"
    result = monitor.metrics.list(
        did,
        timespan="2026-09-01T00:00:00Z/2026-09-02T00:00:00Z",
        interval="PT6H",
        metricnames="DeploymentCapacity,CpuUtilizationPercentage",
        aggregation="Maximum",
    )
    capacity = result.value[0].timeseries[0].data
    assert [p.maximum for p in capacity] == [2.5] * 4  # 2 instances, maximum = 1.25 x average


# -- throttle, faults, misses ---------------------------------------------------------------------
def test_throttle_headers_then_429_then_recovers_through_sdk_retry(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(
        tenant, throttle=Throttle(capacity=3, refill_per_second=0.5), clock=clock.now, sleep=clock.sleep
    )
    auth = clients_for(sim).authorization(tenant.subscription_id)
    for _ in range(4):
        auth.role_definitions.get(tenant.subscription_scope, "acdd72a7-3385-48ef-bd42-f606fba81ae7")
    statuses = [r.status for r in sim.requests]
    assert statuses == [200, 200, 200, 429, 200]
    assert clock.sleeps == [2.0]  # azure-core honoured Retry-After through transport.sleep


def test_remaining_reads_header_counts_down(tenant: Tenant) -> None:
    from azure.core.pipeline.transport import HttpRequest

    clock = VirtualTime()
    sim = SimulatedAzure(tenant, throttle=Throttle(), clock=clock.now, sleep=clock.sleep)
    url = f"https://management.azure.com{tenant.subscription_scope}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01"
    first = sim.send(HttpRequest("GET", url))
    second = sim.send(HttpRequest("GET", url))
    assert first.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert second.headers["x-ms-ratelimit-remaining-subscription-reads"] == "248"
    # Request ids are deterministic per URL and occurrence.
    again = SimulatedAzure(tenant).send(HttpRequest("GET", url))
    assert again.headers["x-ms-request-id"] == first.headers["x-ms-request-id"] != second.headers["x-ms-request-id"]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.not_found("/models\\?"), ResourceNotFoundError),
        (Fault.html("/models\\?"), ValueError),  # azure-ai-ml lets a raw JSONDecodeError out
        (Fault.truncated_json("/models\\?"), (DecodeError, ValueError)),
        (Fault.server_error("/models\\?"), HttpResponseError),
    ],
)
def test_faults_reach_the_sdk(tenant: Tenant, fault: Fault, expected: Any) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(tenant, faults=[fault], clock=clock.now, sleep=clock.sleep)
    with pytest.raises(expected):
        list(clients_for(sim).ml(ws(tenant, "mlw-credit-prod")).models.list())
    assert fault.used >= 1


def test_fault_times_then_normal_answer(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(tenant, clock=clock.now, sleep=clock.sleep)
    sim.inject(Fault.throttled("roleAssignments", retry_after=7, times=1))
    auth = clients_for(sim).authorization(tenant.subscription_id)
    assert list(auth.role_assignments.list_for_scope(tenant.workspace_id("mlw-fraud-prod"), filter="atScope()"))
    assert clock.sleeps == [7.0]


def test_unmatched_urls_are_404_and_logged_or_raise_when_strict(tenant: Tenant) -> None:
    from azure.core.pipeline.transport import HttpRequest

    url = "https://management.azure.com/subscriptions/x/providers/Microsoft.Nope/things?api-version=1"
    sim = SimulatedAzure(tenant)
    response = sim.send(HttpRequest("GET", url))
    assert response.status_code == 404
    assert json.loads(response.text())["error"]["code"] == "NotFound"
    assert sim.unmatched == [f"GET {url}"]
    with pytest.raises(SimulatorMiss, match=r"Microsoft\.Nope"):
        SimulatedAzure(tenant, strict=True).send(HttpRequest("GET", url))


def test_latency_goes_through_injected_sleep(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(tenant, latency=0.1, clock=clock.now, sleep=clock.sleep)
    list(clients_for(sim).ml(ws(tenant, "mlw-fraud-prod")).online_endpoints.list())
    assert clock.sleeps == [0.1]


# -- tenant description ---------------------------------------------------------------------------
def test_tenant_description_cross_references_are_checked() -> None:
    base: dict[str, Any] = {
        "tenant": {
            "tenant_id": "t",
            "subscription_id": "s",
            "resource_group": "rg",
            "now": "2026-09-28T06:00:00Z",
        },
        "principals": [{"id": "p", "name": "a@x", "type": "User"}],
        "role_assignments": [
            {
                "id": "r",
                "scope": "subscription",
                "principal": "ghost@x",
                "role": "Owner",
                "created_on": "2026-01-01T00:00:00Z",
                "created_by": "a@x",
            }
        ],
    }
    with pytest.raises(TenantError, match="ghost@x"):
        tenant_from_dict(base)
    base["role_assignments"][0]["principal"] = "a@x"
    base["role_assignments"][0]["role"] = "Emperor"
    with pytest.raises(TenantError, match="Emperor"):
        tenant_from_dict(base)
