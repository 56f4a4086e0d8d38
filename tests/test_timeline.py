"""The serving timeline against a scripted sequence of deployment writes and traffic changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from evidence.check.timeline import build_serving_timeline, serving_rows
from tests.fixtures_records import (
    DEPLOYMENT_WRITE,
    ENDPOINT_WRITE,
    SP_RELEASE_APPID,
    WS,
    deployment,
    event,
    model_id,
)

EP = f"{WS}/onlineEndpoints/scoring"
BLUE, GREEN, RED = (f"{EP}/deployments/{n}" for n in ("blue", "green", "red"))
DELETE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete"


def write(n: str, start: str, end: str, operation: str, resource: str, caller: str = SP_RELEASE_APPID) -> list[Any]:
    return [
        event(f"{n}s", start, operation, "Started", caller, resource, f"c-{n}"),
        event(f"{n}a", start, operation, "Accepted", caller, resource, f"c-{n}"),
        event(f"{n}d", end, operation, "Succeeded", caller, resource, f"c-{n}"),
    ]


def scripted() -> dict[str, list[Any]]:
    """1 blue created, 2 all traffic to blue, 3 green created, 4 10 % to green, 5 all to green,
    6 blue updated in place (now version 3), 7 red created and deleted. State at collection below."""
    events = [
        *write("1", "2026-04-02T09:00:10Z", "2026-04-02T09:05:00Z", DEPLOYMENT_WRITE, BLUE),
        *write("2", "2026-04-02T09:10:00Z", "2026-04-02T09:11:00Z", ENDPOINT_WRITE, EP),
        *write("3", "2026-04-20T10:00:05Z", "2026-04-20T10:06:00Z", DEPLOYMENT_WRITE, GREEN),
        *write("4", "2026-04-20T11:00:00Z", "2026-04-20T11:01:00Z", ENDPOINT_WRITE, EP),
        *write("5", "2026-04-25T11:00:00Z", "2026-04-25T11:01:00Z", ENDPOINT_WRITE, EP),
        *write("6", "2026-05-01T08:00:00Z", "2026-05-01T08:07:00Z", DEPLOYMENT_WRITE, BLUE, "alice@contoso.com"),
        *write("7", "2026-05-05T08:00:00Z", "2026-05-05T08:05:00Z", DEPLOYMENT_WRITE, RED),
        *write("8", "2026-05-10T08:00:00Z", "2026-05-10T08:01:00Z", DELETE, RED),
        # a failed endpoint write changes nothing
        event("9s", "2026-05-12T08:00:00Z", ENDPOINT_WRITE, "Started", "bob@contoso.com", EP, "c-9"),
        event("9f", "2026-05-12T08:00:01Z", ENDPOINT_WRITE, "Failed", "bob@contoso.com", EP, "c-9"),
    ]
    deployments = [
        deployment(EP, "blue", model_id("m", "3"), "m", "3", 0, "2026-04-02T09:00:00Z", SP_RELEASE_APPID),
        deployment(EP, "green", "azureml:m:2", "m", "2", 100, "2026-04-20T10:00:00Z", SP_RELEASE_APPID),
    ]
    return {"deployments": deployments, "activity_events": events}


def table(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["deployment_name"], r["model_version"], r["traffic_percent"], r["from"], r["to"]) for r in rows]


def test_scripted_sequence_is_rebuilt_with_unknowns_left_unknown() -> None:
    rows = build_serving_timeline(scripted())
    assert table(rows) == [
        # blue: created, then traffic, then updated in place: the model before the update is not recorded
        ("blue", None, 0, "2026-04-02T09:00:00Z", "2026-04-02T09:11:00Z"),
        ("blue", None, None, "2026-04-02T09:11:00Z", "2026-04-20T11:01:00Z"),
        ("blue", None, None, "2026-04-20T11:01:00Z", "2026-04-25T11:01:00Z"),
        ("blue", None, 0, "2026-04-25T11:01:00Z", "2026-05-01T08:07:00Z"),
        ("blue", "3", 0, "2026-05-01T08:07:00Z", None),
        # green: created with no traffic; its share between the two traffic writes is not recorded
        ("green", "2", 0, "2026-04-20T10:00:00Z", "2026-04-20T11:01:00Z"),
        ("green", "2", None, "2026-04-20T11:01:00Z", "2026-04-25T11:01:00Z"),
        ("green", "2", 100, "2026-04-25T11:01:00Z", None),
        # red: known only from its writes; gone at collection
        ("red", None, None, "2026-05-05T08:05:00Z", "2026-05-10T08:01:00Z"),
    ]
    assert all(r["endpoint_id"] == EP for r in rows)
    unknown = [r for r in rows if r["model_version"] is None]
    assert all(not r["model_recorded"] for r in unknown)
    assert all("do not carry the request body" in r["basis"] for r in unknown)
    assert "by alice@contoso.com" in rows[4]["basis"]
    assert rows[4]["from_event_id"] == "ev-6s"


def test_timeline_is_deterministic_and_independent_of_event_order() -> None:
    records = scripted()
    forward = build_serving_timeline(records)
    records["activity_events"].reverse()
    records["deployments"].reverse()
    assert build_serving_timeline(records) == forward


def test_serving_rows_keep_unknown_shares_and_drop_known_zero() -> None:
    rows = build_serving_timeline(scripted())
    start, end = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    serving = {(r["deployment_name"], r["from"]) for r in serving_rows(rows, start, end)}
    assert ("green", "2026-04-25T11:01:00Z") in serving  # 100 %
    assert ("blue", "2026-04-02T09:11:00Z") in serving  # unknown share: may have served
    assert ("blue", "2026-05-01T08:07:00Z") not in serving  # 0 %
    assert ("red", "2026-05-05T08:05:00Z") in serving
    later = serving_rows(rows, datetime(2026, 5, 11, tzinfo=UTC), end)
    assert {r["deployment_name"] for r in later} == {"green"}


def test_deployment_older_than_the_log_starts_at_created_at() -> None:
    records = {
        "deployments": [deployment(EP, "old", "azureml:m:1", "m", "1", 100, "2025-01-01T00:00:00Z", "x")],
        "activity_events": [],
    }
    [row] = build_serving_timeline(records)
    assert (row["from"], row["to"], row["traffic_percent"], row["model_version"]) == (
        "2025-01-01T00:00:00Z",
        None,
        100,
        "1",
    )
    assert "state at collection" in row["basis"]


def test_deployment_without_created_at_starts_unknown() -> None:
    row = deployment(EP, "old", "azureml:m:1", "m", "1", 100, "2025-01-01T00:00:00Z", "x")
    row["created_at"] = None
    [out] = build_serving_timeline({"deployments": [row]})
    assert out["from"] is None and "before the earliest recorded event" in out["basis"]


def test_traffic_unknown_when_the_endpoint_state_is_missing() -> None:
    row = deployment(EP, "old", "azureml:m:1", "m", "1", 100, "2025-01-01T00:00:00Z", "x")
    row["traffic_percent"] = None
    [out] = build_serving_timeline({"deployments": [row]})
    assert out["traffic_percent"] is None and "not collected" in out["basis"]
