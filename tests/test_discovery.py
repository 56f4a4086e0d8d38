"""Resource Graph discovery through the real ``azure-mgmt-resourcegraph`` client (no patching)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from azure.mgmt.resourcegraph import ResourceGraphClient

from evidence.azure.cassette import Entry
from evidence.azure.credentials import StaticCredential
from evidence.azure.limiter import ThrottledTransport
from evidence.azure.replay import ReplayTransport
from evidence.azure.simulator import VirtualTime
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock, parse_timestamp
from evidence.collect.discovery import (
    SUBSCRIPTION_BATCH,
    WORKSPACES_QUERY,
    DiscoveryError,
    ResourceGraphDiscovery,
    ancestor_scopes,
    discover_workspaces,
    role_assignments_query,
)
from evidence.domain import Workspace
from tests.resource_graph_sim import ResourceGraphResponder

ML = "Microsoft.MachineLearningServices"
ARG_URL = "https://management.azure.com/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01"


def _ws_row(sub: str, rg: str, name: str) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{ML}/workspaces/{name}",
        "name": name,
        "resourceGroup": rg,
        "subscriptionId": sub,
        "location": "westeurope",
    }


WORKSPACE_ROWS = [_ws_row(f"sub-{s}", f"rg-{s}", f"mlw-{s}-{w:02d}") for s in (2, 0, 1) for w in range(5)]


def _rows_for(query: str, subscriptions: Sequence[str], groups: Sequence[str]) -> list[dict[str, Any]]:
    if query.startswith("resources") and "workspaces'" in query:
        rows = [r for r in WORKSPACE_ROWS if not subscriptions or r["subscriptionId"] in subscriptions]
        return sorted(rows, key=lambda r: r["id"])
    if query.startswith("resources") and "onlineendpoints" in query:
        return [
            {
                **_ws_row("sub-0", "rg-0", "mlw-0-00"),
                "name": "ep-a",
                "id": WORKSPACE_ROWS[5]["id"] + "/onlineEndpoints/ep-a",
            }
        ]
    return []


def _client(transport: Any) -> ResourceGraphClient:
    return ResourceGraphClient(StaticCredential(), transport=transport)


def test_workspaces_across_pages_sorted_and_parsed() -> None:
    responder = ResourceGraphResponder(_rows_for)
    found = ResourceGraphDiscovery(_client(responder), management_groups=["mg-contoso"], page_size=4).workspaces()
    assert len(found) == 15
    assert list(found) == sorted(found)
    assert found[0] == Workspace("sub-0", "rg-0", "mlw-0-00")
    # 15 rows at 4 per page: 4 requests, each later one carrying the previous page's $skipToken.
    tokens = [b["options"].get("$skipToken") for b in responder.bodies]
    assert len(tokens) == 4 and tokens[0] is None and all(tokens[1:])
    assert all(b["managementGroups"] == ["mg-contoso"] for b in responder.bodies)
    assert all(b["query"] == WORKSPACES_QUERY and b["options"]["$top"] == 4 for b in responder.bodies)


def test_subscriptions_are_sent_in_batches_of_at_most_300() -> None:
    responder = ResourceGraphResponder(_rows_for)
    subs = [f"sub-{i}" for i in range(SUBSCRIPTION_BATCH + 5)]
    found = discover_workspaces(_client(responder), subscriptions=subs)
    assert len(found) == 15
    assert [len(b["subscriptions"]) for b in responder.bodies] == [SUBSCRIPTION_BATCH, 5]


def test_online_endpoints_are_found_with_their_workspace() -> None:
    responder = ResourceGraphResponder(_rows_for)
    (endpoint,) = ResourceGraphDiscovery(_client(responder), subscriptions=["sub-0"]).online_endpoints()
    assert endpoint.name == "ep-a"
    assert endpoint.workspace == Workspace("sub-0", "rg-0", "mlw-0-00")


def test_role_assignments_for_many_scopes_in_one_query() -> None:
    ws = Workspace("sub-0", "rg-0", "mlw-0-00")
    query = role_assignments_query([*ancestor_scopes(ws), ws.arm_id.upper()])
    assert query.startswith("authorizationresources | where type =~ 'microsoft.authorization/roleassignments'")
    assert f"'{ws.arm_id.lower()}'" in query and "'/'" in query and "'/subscriptions/sub-0'" in query
    assert query.count(ws.arm_id.lower()) == 1  # duplicates folded, case-insensitively
    rows = [
        {"id": "/subscriptions/sub-0/providers/Microsoft.Authorization/roleAssignments/b", "properties": {}},
        {"id": "/subscriptions/sub-0/providers/Microsoft.Authorization/roleAssignments/a", "properties": {}},
    ]
    responder = ResourceGraphResponder(lambda q, s, g: rows if q.startswith("authorizationresources") else [])
    found = ResourceGraphDiscovery(_client(responder), subscriptions=["sub-0"]).role_assignments(ancestor_scopes(ws))
    assert [r["id"][-1] for r in found] == ["a", "b"]
    assert len(responder.bodies) == 1
    with pytest.raises(ValueError, match="at least one scope"):
        role_assignments_query([])


def test_kql_literals_are_escaped() -> None:
    query = role_assignments_query(["/subscriptions/x/resourceGroups/o'brien"])
    assert "'/subscriptions/x/resourcegroups/o\\'brien'" in query


def test_paging_replayed_from_a_cassette_matches_on_the_body_skip_token() -> None:
    """Every page goes to the same URL: only the body's $skipToken tells them apart."""

    def body(token: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"$top": 1000, "resultFormat": "objectArray", "allowPartialScopes": False}
        if token:
            options["$skipToken"] = token
        return {"subscriptions": ["sub-1"], "query": WORKSPACES_QUERY, "options": options}

    def page(rows: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
        answer: dict[str, Any] = {"totalRecords": 5, "count": len(rows), "resultTruncated": "false", "data": rows}
        if token:
            answer["$skipToken"] = token
        return answer

    rows = [r for r in WORKSPACE_ROWS if r["subscriptionId"] == "sub-1"]
    entries = [
        # Served in reverse order on purpose: only body matching can pick the right one.
        Entry(ARG_URL, "POST", 200, page(rows[3:], None), request_body=body("tok-2")),
        Entry(ARG_URL, "POST", 200, page(rows[:3], "tok-2"), request_body=body(None)),
    ]
    replay = ReplayTransport(entries)
    tap = EvidenceTap(replay, FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    clock = VirtualTime()
    limiter = ThrottledTransport(tap, clock=clock.now, sleep=clock.sleep)
    found = discover_workspaces(_client(limiter), subscriptions=["sub-1"])
    assert [w.name for w in found] == [f"mlw-1-{w:02d}" for w in range(5)]
    assert replay.unused() == []
    assert [json.loads(e.body)["count"] for e in tap.exchanges()] == [3, 2]


def test_refusal_becomes_a_discovery_error_with_a_hint() -> None:
    entry = Entry(
        ARG_URL,
        "POST",
        403,
        {"error": {"code": "AuthorizationFailed", "message": "no access"}},
    )
    with pytest.raises(DiscoveryError, match="AuthorizationFailed") as info:
        discover_workspaces(_client(ReplayTransport([entry])), subscriptions=["sub-1"])
    assert "Reader" in info.value.diagnostics()


def test_discover_scope_through_the_client_factory_keeps_the_answers_on_the_discovery_channel() -> None:
    from evidence.azure.clients import AzureClients
    from evidence.collect.discovery import DISCOVERY_CHANNEL, discover_scope

    tap = EvidenceTap(ResourceGraphResponder(_rows_for), FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    clients = AzureClients(StaticCredential(), tap)
    scope = discover_scope(clients, subscriptions=["sub-1", "sub-0"], organisation="Contoso", registries=["shared"])
    assert [w.name for w in scope.workspaces] == [f"mlw-{s}-{w:02d}" for s in (0, 1) for w in range(5)]
    assert scope.organisation == "Contoso" and scope.registries == ("shared",)
    assert {e.collector for e in tap.exchanges()} == {DISCOVERY_CHANNEL}


def test_discover_scope_finding_nothing_is_an_error_not_an_empty_audit() -> None:
    from evidence.azure.clients import AzureClients
    from evidence.collect.discovery import discover_scope

    tap = EvidenceTap(ResourceGraphResponder(_rows_for), FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    with pytest.raises(DiscoveryError, match="no Azure ML workspace in subscription sub-9"):
        discover_scope(AzureClients(StaticCredential(), tap), subscriptions=["sub-9"])


def test_discovery_answers_made_before_the_package_folder_existed_still_reach_the_store() -> None:
    from evidence.azure.clients import AzureClients
    from evidence.collect.discovery import discover_scope

    tap = EvidenceTap(ResourceGraphResponder(_rows_for), FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    discover_scope(AzureClients(StaticCredential(), tap), management_groups=["mg-contoso"])
    kept = len(tap.exchanges())
    streamed: list[Any] = []
    with tap.streaming(streamed.append):
        pass
    assert kept > 0 and len(streamed) == kept
    assert tap.exchanges() == []  # handed over, not kept twice
