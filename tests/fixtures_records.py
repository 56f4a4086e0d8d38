"""A realistic record set for the check stage, built in code: the "sample tenant" and a clean variant.

It mirrors the planted problems of the bundled sample tenant (samples/contoso/), so the same
assertions can later run against the real cassette:

(a) fraud-detector version 3 serves fraud-endpoint (deployment green) with no approval tags;
(b) bob@contoso.com holds Owner directly at the workspace scope;
(c) alice@contoso.com wrote churn-endpoint's green deployment instead of sp-mlops-release;
(d) erin's Reader assignment was created in the window without a matching Activity Log event;
(e) a Reader assignment to a principal that no longer resolves (principalType Unknown).

Everything else is in order. ``clean_records()`` fixes the five problems and nothing more.
Also present on purpose: a *failed* deployment write by bob (a failed attempt is not a change).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from evidence.check.interface import CheckContext
from evidence.config import PolicyConfig
from evidence.domain import Gap, Scope, Window, Workspace

Record = dict[str, Any]

SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-ml-prod"
WS_NAME = "mlw-contoso-prod"
WORKSPACE = Workspace(SUB, RG, WS_NAME)
WS = WORKSPACE.arm_id
WINDOW = Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
COLLECTED_AT = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)

SP_RELEASE_APPID = "5b1e0c2d-0000-4aaa-8bbb-00000000a001"  # sp-mlops-release, as the Activity Log names it
SP_RELEASE_OBJECT = "9c0d7e6f-0000-4ccc-8ddd-00000000a002"
ALICE, BOB, CAROL, DANA, ERIN, FRANK = (f"{n}@contoso.com" for n in ("alice", "bob", "carol", "dana", "erin", "frank"))
ADMIN = "it-admin@contoso.com"

OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DS_ROLE = "f6c7c914-8db3-469d-8ca1-694a8f32e121"

FRAUD_EP = f"{WS}/onlineEndpoints/fraud-endpoint"
CHURN_EP = f"{WS}/onlineEndpoints/churn-endpoint"
FRAUD_BLUE, FRAUD_GREEN = f"{FRAUD_EP}/deployments/blue", f"{FRAUD_EP}/deployments/green"
CHURN_BLUE, CHURN_GREEN = f"{CHURN_EP}/deployments/blue", f"{CHURN_EP}/deployments/green"

DEPLOYMENT_WRITE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write"
ENDPOINT_WRITE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"
ROLE_WRITE = "Microsoft.Authorization/roleAssignments/write"


def model_id(name: str, version: str) -> str:
    return f"{WS}/models/{name}/versions/{version}"


def assignment_id(n: int) -> str:
    return f"{WS}/providers/Microsoft.Authorization/roleAssignments/0000000{n}-aaaa-bbbb-cccc-000000000000"


def role_def(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def approval(by: str, day: str, ticket: str) -> dict[str, str]:
    return {"approved_by": by, "approval_date": day, "approval_ticket": ticket}


def version(name: str, number: str, created: str, tags: dict[str, str], archived: bool = False) -> Record:
    return {
        "workspace_id": WS,
        "model_name": name,
        "version": number,
        "asset_id": model_id(name, number),
        "stage": None,
        "tags": tags,
        "properties": {},
        "archived": archived,
        "model_type": "mlflow_model",
        "description": None,
        "job_name": f"train-{name}-{number}",
        "provisioning_state": "Succeeded",
        "created_at": created,
        "created_by": DANA,
        "created_by_type": "User",
        "last_modified_at": created,
        "last_modified_by": DANA,
    }


def deployment(
    endpoint: str, name: str, model: str, mname: str, mversion: str, traffic: int, created: str, by: str
) -> Record:
    return {
        "endpoint_id": endpoint,
        "endpoint_name": endpoint.rsplit("/", 1)[-1],
        "workspace_id": WS,
        "deployment_name": name,
        "deployment_id": f"{endpoint}/deployments/{name}",
        "model_asset_id": model,
        "model_name": mname,
        "model_version": mversion,
        "traffic_percent": traffic,
        "mirror_traffic_percent": 0,
        "provisioning_state": "Succeeded",
        "instance_type": "Standard_DS3_v2",
        "instance_count": 2,
        "created_at": created,
        "created_by": by,
        "last_modified_at": created,
        "last_modified_by": by,
    }


def event(
    n: str, when: str, operation: str, status: str, caller: str, resource: str, correlation: str, **extra: Any
) -> Record:
    row: Record = {
        "event_id": f"ev-{n}",
        "timestamp": when,
        "operation": operation,
        "status": status,
        "sub_status": None,
        "caller": caller,
        "caller_type": "ServicePrincipal" if caller == SP_RELEASE_APPID else "User",
        "resource_id": resource,
        "correlation_id": correlation,
        "level": "Informational",
        "category": "Administrative",
        "request_principal_id": None,
        "request_principal_type": None,
        "request_role_definition_id": None,
        "request_scope": None,
    }
    row.update(extra)
    return row


def assignment(n: int, scope: str, principal: str, ptype: str, role: str, name: str, created: str) -> Record:
    return {
        "assignment_id": assignment_id(n)
        if scope == WS
        else f"{scope}/providers/Microsoft.Authorization/roleAssignments/0000000{n}-aaaa-bbbb-cccc-000000000000",
        "workspace_id": WS,
        "scope": scope,
        "inherited": scope != WS,
        "principal_id": principal,
        "principal_type": ptype,
        "role_definition_id": role_def(role),
        "role_name": name,
        "created_on": created,
        "created_by": ADMIN,
        "updated_on": created,
        "condition": None,
        "condition_version": None,
        "description": None,
    }


def series(resource: str, metric: str, dims: dict[str, str], values: Sequence[tuple[str, float]]) -> Record:
    return {
        "resource_id": resource,
        "metric": metric,
        "aggregation": "Average",
        "unit": "Count" if metric == "RequestsPerMinute" else "Milliseconds",
        "interval": "P1D",
        "dimensions": dims,
        "points": [{"timestamp": t, "value": v} for t, v in values],
    }


def _metrics() -> list[Record]:
    rows: list[Record] = []
    spans = {
        (FRAUD_EP, "blue"): ["2026-04-10T00:00:00Z", "2026-05-01T00:00:00Z"],
        (FRAUD_EP, "green"): ["2026-05-11T00:00:00Z", "2026-06-20T00:00:00Z"],
        (CHURN_EP, "blue"): ["2026-04-20T00:00:00Z", "2026-05-15T00:00:00Z"],
        (CHURN_EP, "green"): ["2026-05-24T00:00:00Z", "2026-06-25T00:00:00Z"],
    }
    for (endpoint, name), days in spans.items():
        rows.append(
            series(
                endpoint, "RequestsPerMinute", {"deployment": name, "statusCodeClass": "2xx"}, [(d, 10.0) for d in days]
            )
        )
        rows.append(
            series(
                endpoint, "RequestsPerMinute", {"deployment": name, "statusCodeClass": "5xx"}, [(d, 0.1) for d in days]
            )
        )
        rows.append(series(endpoint, "RequestLatency_P99", {"deployment": name}, [(d, 120.0) for d in days]))
    return rows


def sample_records() -> dict[str, list[Record]]:
    """The sample tenant's records, with the five planted problems."""
    owner = {"owner": "fraud-team@contoso.com"}
    churn_owner = {"owner": "churn-team@contoso.com"}
    model_versions = [
        version(
            "churn-model", "4", "2025-11-20T10:00:00Z", {**churn_owner, **approval(CAROL, "2025-11-21", "CHG-0901")}
        ),
        version(
            "churn-model", "5", "2026-05-20T10:00:00Z", {**churn_owner, **approval(CAROL, "2026-05-21", "CHG-1010")}
        ),
        version(
            "fraud-detector",
            "1",
            "2025-10-01T10:00:00Z",
            {**owner, **approval(CAROL, "2025-10-02", "CHG-0801")},
            archived=True,
        ),
        version("fraud-detector", "2", "2026-01-02T10:00:00Z", {**owner, **approval(CAROL, "2026-01-05", "CHG-0950")}),
        version("fraud-detector", "3", "2026-05-08T10:00:00Z", dict(owner)),  # (a) no approval tags
    ]
    endpoints = [
        {
            "endpoint_id": CHURN_EP,
            "workspace_id": WS,
            "endpoint_name": "churn-endpoint",
            "auth_mode": "aad_token",
            "provisioning_state": "Succeeded",
            "traffic": {"blue": 0, "green": 100},
            "mirror_traffic": {},
            "created_at": "2025-12-01T09:00:00Z",
            "created_by": SP_RELEASE_APPID,
            "last_modified_at": "2026-05-23T09:00:00Z",
            "last_modified_by": SP_RELEASE_APPID,
        },
        {
            "endpoint_id": FRAUD_EP,
            "workspace_id": WS,
            "endpoint_name": "fraud-endpoint",
            "auth_mode": "aad_token",
            "provisioning_state": "Succeeded",
            "traffic": {"blue": 0, "green": 100},
            "mirror_traffic": {},
            "created_at": "2026-01-10T08:00:00Z",
            "created_by": SP_RELEASE_APPID,
            "last_modified_at": "2026-05-10T10:15:00Z",
            "last_modified_by": SP_RELEASE_APPID,
        },
    ]
    deployments = [
        deployment(
            CHURN_EP, "blue", "azureml:churn-model:4", "churn-model", "4", 0, "2025-12-01T09:10:00Z", SP_RELEASE_APPID
        ),
        deployment(
            CHURN_EP, "green", "azureml:churn-model:5", "churn-model", "5", 100, "2026-05-22T14:00:00Z", ALICE
        ),  # (c)
        deployment(
            FRAUD_EP,
            "blue",
            model_id("fraud-detector", "2"),
            "fraud-detector",
            "2",
            0,
            "2026-01-10T09:00:00Z",
            SP_RELEASE_APPID,
        ),
        deployment(
            FRAUD_EP,
            "green",
            "azureml:fraud-detector:3",
            "fraud-detector",
            "3",
            100,
            "2026-05-10T10:00:00Z",
            SP_RELEASE_APPID,
        ),
    ]
    sp_assignment = assignment_id(5)
    activity_events = [
        # fraud-endpoint: green created by the pipeline, then traffic moved to it.
        event("01", "2026-05-10T10:00:05Z", DEPLOYMENT_WRITE, "Started", SP_RELEASE_APPID, FRAUD_GREEN, "c-01"),
        event("02", "2026-05-10T10:00:06Z", DEPLOYMENT_WRITE, "Accepted", SP_RELEASE_APPID, FRAUD_GREEN, "c-01"),
        event("03", "2026-05-10T10:08:00Z", DEPLOYMENT_WRITE, "Succeeded", SP_RELEASE_APPID, FRAUD_GREEN, "c-01"),
        event("04", "2026-05-10T10:15:00Z", ENDPOINT_WRITE, "Started", SP_RELEASE_APPID, FRAUD_EP, "c-02"),
        event("05", "2026-05-10T10:16:00Z", ENDPOINT_WRITE, "Succeeded", SP_RELEASE_APPID, FRAUD_EP, "c-02"),
        # churn-endpoint: (c) alice created green herself; the pipeline moved the traffic.
        event("06", "2026-05-22T14:00:03Z", DEPLOYMENT_WRITE, "Started", ALICE, CHURN_GREEN, "c-03"),
        event("07", "2026-05-22T14:09:00Z", DEPLOYMENT_WRITE, "Succeeded", ALICE, CHURN_GREEN, "c-03"),
        event("08", "2026-05-23T09:00:00Z", ENDPOINT_WRITE, "Started", SP_RELEASE_APPID, CHURN_EP, "c-04"),
        event("09", "2026-05-23T09:01:00Z", ENDPOINT_WRITE, "Succeeded", SP_RELEASE_APPID, CHURN_EP, "c-04"),
        # A failed attempt is not a change: it must not count as a write by bob.
        event("10", "2026-06-01T12:00:00Z", DEPLOYMENT_WRITE, "Started", BOB, FRAUD_BLUE, "c-05"),
        event("11", "2026-06-01T12:00:02Z", DEPLOYMENT_WRITE, "Failed", BOB, FRAUD_BLUE, "c-05"),
        # The release pipeline's role assignment, with its event.
        event(
            "12",
            "2026-04-15T08:00:02Z",
            ROLE_WRITE,
            "Succeeded",
            ADMIN,
            sp_assignment,
            "c-06",
            request_principal_id=SP_RELEASE_OBJECT,
            request_principal_type="ServicePrincipal",
            request_role_definition_id=role_def(DS_ROLE),
            request_scope=WS,
        ),
    ]
    role_assignments = [
        assignment(
            1, f"/subscriptions/{SUB}", "grp-platform-admins-oid", "Group", OWNER_ROLE, "Owner", "2024-03-01T00:00:00Z"
        ),
        assignment(
            2, WS, "grp-data-scientists-oid", "Group", DS_ROLE, "AzureML Data Scientist", "2025-06-01T00:00:00Z"
        ),
        assignment(3, WS, "bob-oid", "User", OWNER_ROLE, "Owner", "2025-11-03T00:00:00Z"),  # (b)
        assignment(4, WS, "deleted-principal-oid", "Unknown", READER_ROLE, "Reader", "2025-09-01T00:00:00Z"),  # (e)
        assignment(
            5, WS, SP_RELEASE_OBJECT, "ServicePrincipal", DS_ROLE, "AzureML Data Scientist", "2026-04-15T08:00:00Z"
        ),
        assignment(6, WS, "erin-oid", "User", READER_ROLE, "Reader", "2026-06-02T11:00:00Z"),  # (d) no event
    ]
    role_eligibility = [
        {
            "eligibility_id": f"{WS}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/frank-owner",
            "workspace_id": WS,
            "scope": WS,
            "inherited": False,
            "principal_id": "frank-oid",
            "principal_type": "User",
            "principal_name": "Frank",
            "role_definition_id": role_def(OWNER_ROLE),
            "role_name": "Owner",
            "member_type": "Direct",
            "status": "Provisioned",
            "start": "2026-01-01T00:00:00Z",
            "end": None,
            "condition": None,
            "condition_version": None,
            "created_on": "2026-01-01T00:00:00Z",
            "schedule_id": "s1",
        },
    ]
    return {
        "model_versions": model_versions,
        "endpoints": endpoints,
        "deployments": deployments,
        "activity_events": activity_events,
        "role_assignments": role_assignments,
        "role_eligibility": role_eligibility,
        "metrics": _metrics(),
    }


def clean_records() -> dict[str, list[Record]]:
    """The sample with the five planted problems fixed, and nothing else changed."""
    records = copy.deepcopy(sample_records())
    for row in records["model_versions"]:
        if row["model_name"] == "fraud-detector" and row["version"] == "3":  # (a)
            row["tags"].update(approval(CAROL, "2026-05-09", "CHG-1003"))
    for row in records["role_assignments"]:
        if row["principal_id"] == "bob-oid":  # (b): Owner through a group
            row["principal_id"], row["principal_type"] = "grp-ml-owners-oid", "Group"
    records["role_assignments"] = [r for r in records["role_assignments"] if r["principal_type"] != "Unknown"]  # (e)
    for row in records["deployments"]:  # (c)
        if row["created_by"] == ALICE:
            row["created_by"] = row["last_modified_by"] = SP_RELEASE_APPID
    for row in records["activity_events"]:
        if row["caller"] == ALICE:
            row["caller"], row["caller_type"] = SP_RELEASE_APPID, "ServicePrincipal"
    records["activity_events"].append(  # (d)
        event(
            "13",
            "2026-06-02T11:00:01Z",
            ROLE_WRITE,
            "Succeeded",
            ADMIN,
            assignment_id(6),
            "c-07",
            request_principal_id="erin-oid",
            request_principal_type="User",
            request_role_definition_id=role_def(READER_ROLE),
            request_scope=WS,
        )
    )
    return records


def policy(**overrides: Any) -> PolicyConfig:
    values: dict[str, Any] = {"allowed_deployers": (SP_RELEASE_APPID, SP_RELEASE_OBJECT)}
    values.update(overrides)
    return PolicyConfig(**values)


def context(
    records: Mapping[str, Sequence[Record]] | None = None,
    gaps: Sequence[Gap] = (),
    policy_config: PolicyConfig | None = None,
    kind: str = "audit",
    release_model: str | None = None,
    release_version: str | None = None,
    registries: Sequence[str] = (),
) -> CheckContext:
    return CheckContext(
        records=sample_records() if records is None else records,
        gaps=tuple(gaps),
        scope=Scope((WORKSPACE,), registries=tuple(registries), organisation="Contoso"),
        window=WINDOW,
        collected_at=COLLECTED_AT,
        policy=policy_config or policy(),
        kind=kind,
        release_model=release_model,
        release_version=release_version,
    )


def gap(collector: str, scope: str = WS) -> Gap:
    return Gap(
        collector, scope, 403, "AuthorizationFailed", "the client does not have authorization", "2026-07-01T06:00:00Z"
    )
