"""Role assignments, deny assignments and PIM eligibility, through the real authorization SDK.

Bodies follow the azure-rest-api-specs examples for RoleAssignments_ListForScope (2022-04-01),
RoleDefinitions_GetById, DenyAssignments_ListForScope and RoleEligibilityScheduleInstances_ListForScope
(2020-10-01); IDs are made up.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.interface import Collector, CollectSession, RawResponse, Record
from evidence.collect.rbac import RoleAssignmentsCollector
from evidence.collect.store import load_raw, write_raw
from evidence.domain import Gap, Provenance, Scope, Window, Workspace

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-ml"
PROD = Workspace(SUB, RG, "ws-prod")
DEV = Workspace(SUB, RG, "ws-dev")
ARM = "https://management.azure.com"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
SUB_ID = f"/subscriptions/{SUB}"
MG_ID = "/providers/Microsoft.Management/managementGroups/mg-root"
CLOCK = FixedClock(datetime(2026, 10, 1, 6, tzinfo=UTC))
WINDOW = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
JSON = {"Content-Type": "application/json; charset=utf-8"}

DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER = "11111111-1111-1111-1111-111111111111"
SP = "22222222-2222-2222-2222-222222222222"
GROUP = "33333333-3333-3333-3333-333333333333"


def role_def_id(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def ra_url(ws: Workspace, extra: str = "") -> str:
    path = f"{ARM}{ws.arm_id}/providers/Microsoft.Authorization/roleAssignments"
    return f"{path}?$filter=atScope()&api-version=2022-04-01{extra}"


def deny_url(ws: Workspace) -> str:
    path = f"{ARM}{ws.arm_id}/providers/Microsoft.Authorization/denyAssignments"
    return f"{path}?$filter=atScope()&api-version=2022-04-01"


def pim_url(ws: Workspace) -> str:
    return (
        f"{ARM}{ws.arm_id}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances"
        "?$filter=atScope()&api-version=2020-10-01"
    )


def def_url(guid: str) -> str:
    return f"{ARM}{role_def_id(guid)}?api-version=2022-04-01"


def entry(url: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Entry:
    return Entry(
        request_uri=url, request_method="GET", status_code=status, response_body=body, response_headers=headers or JSON
    )


def assignment(scope: str, name: str, role: str, principal: str, ptype: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": role_def_id(role),
            "principalId": principal,
            "principalType": ptype,
            "scope": scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": "2026-01-02T03:04:05.1234567Z",
            "updatedOn": "2026-01-02T03:04:05.1234567Z",
            "createdBy": "44444444-4444-4444-4444-444444444444",
            "updatedBy": "44444444-4444-4444-4444-444444444444",
            "delegatedManagedIdentityResourceId": None,
            "description": None,
            **extra,
        },
    }


def definition(guid: str, role_name: str, role_type: str = "BuiltInRole") -> dict[str, Any]:
    return {
        "id": role_def_id(guid),
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role_name,
            "type": role_type,
            "description": f"{role_name} role",
            "assignableScopes": ["/"],
            "permissions": [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2021-11-11T20:13:47.8628684Z",
        },
    }


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


DIRECT = assignment(
    PROD.arm_id,
    "ra-direct",
    DATA_SCIENTIST,
    USER,
    "User",
    condition="@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'models'",
    conditionVersion="2.0",
    description="data scientists",
)
AT_RG = assignment(RG_ID, "ra-rg", CONTRIBUTOR, SP, "ServicePrincipal")
AT_SUB = assignment(SUB_ID, "ra-sub", OWNER, GROUP, "Group")
AT_MG = assignment(MG_ID, "ra-mg", READER, USER, "User")

DENY = {
    "id": f"{RG_ID}/providers/Microsoft.Authorization/denyAssignments/da-1",
    "name": "da-1",
    "type": "Microsoft.Authorization/denyAssignments",
    "properties": {
        "denyAssignmentName": "Deny deletes by deployment stack",
        "description": "Created by deployment stack ds-ml",
        "permissions": [{"actions": ["*/delete"], "notActions": [], "dataActions": [], "notDataActions": []}],
        "scope": RG_ID,
        "doNotApplyToChildScopes": False,
        "principals": [
            {"id": "00000000-0000-0000-0000-000000000000", "type": "SystemDefined", "displayName": "Everyone"}
        ],
        "excludePrincipals": [{"id": SP, "type": "ServicePrincipal", "displayName": "deploy-sp"}],
        "isSystemProtected": True,
    },
}

ELIGIBLE = {
    "id": f"{DEV.arm_id}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/rei-1",
    "name": "rei-1",
    "type": "Microsoft.Authorization/roleEligibilityScheduleInstances",
    "properties": {
        "scope": RG_ID,
        "roleDefinitionId": role_def_id(OWNER),
        "principalId": USER,
        "principalType": "User",
        "roleEligibilityScheduleId": f"{RG_ID}/providers/Microsoft.Authorization/roleEligibilitySchedules/res-1",
        "status": "Provisioned",
        "startDateTime": "2026-06-01T00:00:00Z",
        "endDateTime": "2027-06-01T00:00:00Z",
        "memberType": "Inherited",
        "createdOn": "2026-05-31T10:00:00Z",
        "expandedProperties": {
            "principal": {"id": USER, "displayName": "Alice", "email": "alice@contoso.com", "type": "User"},
            "roleDefinition": {"id": role_def_id(OWNER), "displayName": "Owner", "type": "BuiltInRole"},
            "scope": {"id": RG_ID, "displayName": RG, "type": "resourcegroup"},
        },
    },
}


Run = tuple[dict[str, list[Record]], list[Gap], ReplayTransport]


def run(
    collector: Collector,
    entries: list[Entry],
    tmp_path: Path,
    *,
    scope: Scope,
    window: Window = WINDOW,
    clock: FixedClock = CLOCK,
) -> Run:
    """Collect through the real SDK pipelines, store raw as the package does, normalise from disk."""
    transport = ReplayTransport(entries)
    tap = EvidenceTap(transport, clock)
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap), scope=scope, window=window, clock=clock, collector=collector.name
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    raw = load_raw(tmp_path, provenance)
    records = dict(collector.normalise(raw.get(collector.name, [])))
    return records, session.gaps, transport


def full_cassette() -> list[Entry]:
    page_two = ra_url(PROD, "&$skiptoken=page2")
    return [
        entry(ra_url(PROD), {"value": [DIRECT, AT_RG], "nextLink": page_two}),
        entry(page_two, {"value": [AT_SUB, AT_MG]}),
        entry(deny_url(PROD), {"value": [DENY]}),
        entry(
            pim_url(PROD),
            error(
                "AuthorizationFailed",
                "The client does not have authorization to perform "
                "action 'Microsoft.Authorization/roleEligibilityScheduleInstances/read'.",
            ),
            403,
        ),
        entry(ra_url(DEV), {"value": [AT_RG, AT_SUB]}),
        entry(deny_url(DEV), {"value": []}),
        entry(pim_url(DEV), {"value": [ELIGIBLE]}),
        entry(def_url(DATA_SCIENTIST), definition(DATA_SCIENTIST, "AzureML Data Scientist")),
        entry(def_url(CONTRIBUTOR), definition(CONTRIBUTOR, "Contributor")),
        entry(def_url(OWNER), definition(OWNER, "Owner")),
        entry(
            def_url(READER),
            error("RoleDefinitionDoesNotExist", f"The specified role definition with ID '{READER}' does not exist."),
            404,
        ),
    ]


def test_assignments_at_and_above_each_workspace_with_role_names(tmp_path: Path) -> None:
    records, gaps, _ = run(RoleAssignmentsCollector(), full_cassette(), tmp_path, scope=Scope(workspaces=(PROD, DEV)))
    rows = records["role_assignments"]
    by_ws: dict[str, list[Record]] = {}
    for row in rows:
        by_ws.setdefault(row["workspace_id"], []).append(row)
    # Both pages, sorted by assignment ID: management group, subscription, resource group, workspace.
    assert [r["assignment_id"].rsplit("/", 1)[-1] for r in by_ws[PROD.arm_id]] == [
        "ra-mg",
        "ra-sub",
        "ra-rg",
        "ra-direct",
    ]
    # The resource-group assignment is inherited by both workspaces: one row per workspace.
    assert sorted(r["workspace_id"] for r in rows if r["assignment_id"].endswith("/ra-rg")) == sorted(
        [PROD.arm_id, DEV.arm_id]
    )
    direct = next(r for r in rows if r["assignment_id"].endswith("/ra-direct"))
    assert direct == {
        "assignment_id": DIRECT["id"],
        "workspace_id": PROD.arm_id,
        "scope": PROD.arm_id,
        "inherited": False,
        "principal_id": USER,
        "principal_type": "User",
        "role_definition_id": role_def_id(DATA_SCIENTIST),
        "role_name": "AzureML Data Scientist",
        "role_type": "BuiltInRole",
        "created_on": "2026-01-02T03:04:05.123456Z",
        "created_by": "44444444-4444-4444-4444-444444444444",
        "updated_on": "2026-01-02T03:04:05.123456Z",
        "updated_by": "44444444-4444-4444-4444-444444444444",
        "condition": DIRECT["properties"]["condition"],
        "condition_version": "2.0",
        "description": "data scientists",
        "delegated_managed_identity_resource_id": None,
    }
    inherited = {r["assignment_id"].rsplit("/", 1)[-1]: r for r in by_ws[PROD.arm_id]}
    assert inherited["ra-rg"]["inherited"] and inherited["ra-rg"]["role_name"] == "Contributor"
    assert inherited["ra-sub"]["inherited"] and inherited["ra-sub"]["role_name"] == "Owner"
    assert inherited["ra-mg"]["inherited"] and inherited["ra-mg"]["scope"] == MG_ID
    # Reader's definition could not be read: no name is made up, and the gap says why.
    assert inherited["ra-mg"]["role_name"] is None
    reader_gap = next(g for g in gaps if g.scope == role_def_id(READER))
    assert (reader_gap.status, reader_gap.error_code) == (404, "RoleDefinitionDoesNotExist")


def test_rows_are_sorted_and_deterministic(tmp_path: Path) -> None:
    first, _, _ = run(RoleAssignmentsCollector(), full_cassette(), tmp_path / "a", scope=Scope(workspaces=(PROD, DEV)))
    second, _, _ = run(RoleAssignmentsCollector(), full_cassette(), tmp_path / "b", scope=Scope(workspaces=(DEV, PROD)))
    assert first == second
    keys = [(r["workspace_id"].lower(), r["assignment_id"].lower()) for r in first["role_assignments"]]
    assert keys == sorted(keys)


def test_one_role_definition_request_per_distinct_id(tmp_path: Path) -> None:
    _, _, transport = run(RoleAssignmentsCollector(), full_cassette(), tmp_path, scope=Scope(workspaces=(PROD, DEV)))
    paths = Counter(urlsplit(s.url).path for s in transport.served if "/roleDefinitions/" in s.url)
    # Owner is used by two assignments and one PIM eligibility, Contributor by two workspaces.
    assert paths == Counter({f"{role_def_id(g)}": 1 for g in (DATA_SCIENTIST, CONTRIBUTOR, OWNER, READER)})


def test_filters_sent_are_at_scope_and_paging_follows_next_link(tmp_path: Path) -> None:
    _, _, transport = run(RoleAssignmentsCollector(), full_cassette(), tmp_path, scope=Scope(workspaces=(PROD,)))
    lists = [s.url for s in transport.served if "/roleDefinitions/" not in s.url]
    for url in lists:
        assert dict(parse_qsl(urlsplit(url).query))["$filter"] == "atScope()"
    assert sum("/roleAssignments" in u for u in lists) == 2  # both pages
    assert any("skiptoken=page2" in u for u in lists)
    assert transport.unused() == [i for i, e in enumerate(full_cassette()) if DEV.name in e.request_uri]


def test_a_next_link_that_loops_is_a_gap_and_the_pages_read_are_kept(tmp_path: Path) -> None:
    # A service that keeps handing back the same nextLink would make the SDK ask forever; stopping
    # quietly would pass an incomplete list off as complete, so it is a gap.
    page_two = ra_url(PROD, "&$skiptoken=page2")
    entries = [
        entry(ra_url(PROD), {"value": [DIRECT], "nextLink": page_two}),
        entry(page_two, {"value": [AT_RG], "nextLink": page_two}),
        entry(deny_url(PROD), {"value": []}),
        entry(pim_url(PROD), {"value": []}),
        entry(def_url(DATA_SCIENTIST), definition(DATA_SCIENTIST, "AzureML Data Scientist")),
        entry(def_url(CONTRIBUTOR), definition(CONTRIBUTOR, "Contributor")),
    ]
    records, gaps, transport = run(RoleAssignmentsCollector(), entries, tmp_path, scope=Scope(workspaces=(PROD,)))
    [gap] = gaps
    assert gap.error_code == "UnexpectedResponseShape"
    assert "same nextLink" in gap.message
    assert sum("skiptoken=page2" in s.url for s in transport.served) == 1
    assert {r["assignment_id"] for r in records["role_assignments"]} == {DIRECT["id"], AT_RG["id"]}


def test_pim_403_is_a_gap_and_the_rest_is_still_collected(tmp_path: Path) -> None:
    records, gaps, _ = run(RoleAssignmentsCollector(), full_cassette(), tmp_path, scope=Scope(workspaces=(PROD, DEV)))
    pim = [g for g in gaps if g.scope.endswith("/roleEligibilityScheduleInstances")]
    assert [(g.scope, g.status, g.error_code) for g in pim] == [
        (
            f"{PROD.arm_id}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances",
            403,
            "AuthorizationFailed",
        )
    ]
    assert pim[0].collector == "role_assignments"
    assert pim[0].at == "2026-10-01T06:00:00Z"
    assert len(gaps) == 2  # PIM on ws-prod, Reader's definition
    eligible = records["role_eligibility"]
    assert len(eligible) == 1
    assert eligible[0] == {
        "eligibility_id": ELIGIBLE["id"],
        "workspace_id": DEV.arm_id,
        "scope": RG_ID,
        "inherited": True,
        "principal_id": USER,
        "principal_type": "User",
        "principal_name": "Alice",
        "role_definition_id": role_def_id(OWNER),
        "role_name": "Owner",
        "member_type": "Inherited",
        "status": "Provisioned",
        "start": "2026-06-01T00:00:00Z",
        "end": "2027-06-01T00:00:00Z",
        "condition": None,
        "condition_version": None,
        "created_on": "2026-05-31T10:00:00Z",
        "schedule_id": ELIGIBLE["properties"]["roleEligibilityScheduleId"],
    }


def test_deny_assignments(tmp_path: Path) -> None:
    records, _, _ = run(RoleAssignmentsCollector(), full_cassette(), tmp_path, scope=Scope(workspaces=(PROD, DEV)))
    [deny] = records["deny_assignments"]
    assert deny["workspace_id"] == PROD.arm_id
    assert deny["inherited"] is True
    assert deny["is_system_protected"] is True
    assert deny["permissions"] == [
        {"actions": ["*/delete"], "not_actions": [], "data_actions": [], "not_data_actions": []}
    ]
    assert deny["exclude_principals"] == [{"id": SP, "type": "ServicePrincipal", "display_name": "deploy-sp"}]


def _raw(url: str, body: Any, status: int = 200) -> RawResponse:
    prov = Provenance(
        collector="role_assignments",
        method="GET",
        url=url,
        api_version="2022-04-01",
        status=status,
        request_id=None,
        received_at="2026-10-01T06:00:00Z",
        file=None,
    )
    return RawResponse(provenance=prov, body=body)


def test_normalise_is_pure_and_ignores_failed_and_foreign_responses() -> None:
    collector = RoleAssignmentsCollector()
    responses = [
        _raw(ra_url(PROD), {"value": [DIRECT]}),
        _raw(ra_url(PROD), {"value": [DIRECT]}),  # a page served twice is one row
        _raw(deny_url(PROD), error("AuthorizationFailed", "no"), 403),
        _raw(f"{ARM}{PROD.arm_id}/onlineEndpoints?api-version=x", {"value": [DIRECT]}),
        _raw(ra_url(DEV), "<html>not json</html>"),
        # A built-in role's definition read under another subscription still names it (same GUID).
        _raw(
            f"{ARM}/subscriptions/other/providers/Microsoft.Authorization/roleDefinitions/{DATA_SCIENTIST}"
            "?api-version=2022-04-01",
            definition(DATA_SCIENTIST, "AzureML Data Scientist")
            | {"id": f"/subscriptions/other/providers/Microsoft.Authorization/roleDefinitions/{DATA_SCIENTIST}"},
        ),
    ]
    records = collector.normalise(responses)
    assert [r["assignment_id"] for r in records["role_assignments"]] == [DIRECT["id"]]
    assert records["role_assignments"][0]["role_name"] == "AzureML Data Scientist"
    assert records["deny_assignments"] == [] and records["role_eligibility"] == []
    assert collector.normalise(responses) == records


def test_empty_scope_makes_no_requests(tmp_path: Path) -> None:
    records, gaps, transport = run(RoleAssignmentsCollector(), [], tmp_path, scope=Scope(workspaces=()))
    assert transport.served == [] and gaps == []
    assert records == {"role_assignments": [], "deny_assignments": [], "role_eligibility": []}


# ----------------------------------------------------------------------------- against SimulatedAzure
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso" / "tenant.toml"


def simulate(tmp_path: Path, *faults: Any) -> tuple[dict[str, list[Record]], list[Gap], Any]:
    from evidence.azure.simulator import SimulatedAzure, load_tenant

    tenant = load_tenant(SAMPLE)
    sim = SimulatedAzure(tenant, sleep=lambda _: None, faults=faults, strict=True)
    clock = FixedClock(tenant.now)
    scope = Scope(
        workspaces=tuple(
            Workspace(tenant.subscription_id, tenant.resource_group, n) for n in ("mlw-credit-prod", "mlw-fraud-prod")
        )
    )
    tap = EvidenceTap(sim, clock)
    collector = RoleAssignmentsCollector()
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap), scope=scope, window=WINDOW, clock=clock, collector=collector.name
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    records = dict(collector.normalise(load_raw(tmp_path, provenance).get(collector.name, [])))
    return records, session.gaps, sim


def test_simulated_tenant_inherited_assignments_and_every_role_named(tmp_path: Path) -> None:
    records, gaps, sim = simulate(tmp_path)
    assert gaps == []
    rows = records["role_assignments"]
    assert {r["workspace_id"].rsplit("/", 1)[-1] for r in rows} == {"mlw-credit-prod", "mlw-fraud-prod"}
    inherited_scopes = {r["scope"].split("/")[1] for r in rows if r["inherited"]}
    assert inherited_scopes == {"providers", "subscriptions"}  # management group, subscription, resource group
    assert all(r["role_name"] for r in rows)
    definitions = [r.url for r in sim.requests if "/roleDefinitions/" in r.url]
    assert len(definitions) == len({urlsplit(u).path.lower() for u in definitions})
    assert records["deny_assignments"] and records["role_eligibility"]


def test_simulated_tenant_without_pim_permission_is_a_gap_not_a_failure(tmp_path: Path) -> None:
    from evidence.azure.simulator import Fault

    records, gaps, _ = simulate(tmp_path, Fault.forbidden("roleEligibilityScheduleInstances"))
    assert [(g.status, g.error_code) for g in gaps] == [(403, "AuthorizationFailed")] * 2
    assert all(g.scope.endswith("/roleEligibilityScheduleInstances") for g in gaps)
    assert records["role_eligibility"] == [] and records["role_assignments"]


def test_a_pim_read_between_two_pages_of_assignments_leaves_their_api_version_alone(tmp_path: Path) -> None:
    """azure-mgmt-authorization's multi-API client puts the version of the operation group last
    touched into its shared config, and its pager reads the next page with it. Concurrent tasks
    used to share one client: a PIM read (2020-10-01) between two pages of role assignments sent
    page 2 with 2020-10-01. The replay refuses any request it was not given, so page 2 must go out
    with 2022-04-01 exactly."""
    from evidence.azure.clients import ELIGIBILITY_API
    from evidence.collect.paging import raw_pages
    from evidence.collect.rbac import AT_SCOPE

    page2 = ra_url(PROD, "&$skipToken=page2")
    entries = [
        entry(ra_url(PROD), {"value": [assignment(PROD.arm_id, "ra-1", READER, USER, "User")], "nextLink": page2}),
        entry(page2, {"value": [assignment(PROD.arm_id, "ra-2", OWNER, SP, "ServicePrincipal")]}),
        entry(pim_url(PROD), {"value": []}),
    ]
    transport = ReplayTransport(entries)
    clients = AzureClients(StaticCredential(), EvidenceTap(transport, CLOCK))
    pages = raw_pages(clients.authorization(SUB).role_assignments.list_for_scope(PROD.arm_id, filter=AT_SCOPE))
    first = next(pages)
    # What another workspace's task does meanwhile, through the same AzureClients:
    pim = clients.authorization(SUB, ELIGIBILITY_API)
    list(raw_pages(pim.role_eligibility_schedule_instances.list_for_scope(PROD.arm_id, filter=AT_SCOPE)))
    rest = list(pages)
    assert [p["value"][0]["name"] for p in [first, *rest]] == ["ra-1", "ra-2"]
    assert transport.unused() == []  # and each request was the one recorded
