"""Replay through the real SDK pipelines: paging, retries, matching rules and broken bodies."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import DecodeError, DeserializationError, HttpResponseError

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import CREDENTIAL_KINDS, FAR_FUTURE_EXPIRY, StaticCredential, live_credential
from evidence.azure.replay import (
    CannedResponse,
    Cassette,
    ReplayTransport,
    body_bytes,
    canonical_body,
    load_cassette,
    request_key,
)
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.domain import Workspace
from evidence.errors import ReplayError, UsageError

SUB = "00000000-0000-0000-0000-0000000000aa"
WS = Workspace(SUB, "rg-ml", "ws-prod")
ARM = "https://management.azure.com"
RA_URL = f"{ARM}{WS.arm_id}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
MODELS_URL = f"{ARM}{WS.arm_id}/models?api-version=2023-08-01-preview&listViewType=ActiveOnly"
LOGS_URL = "https://api.loganalytics.io/v1/workspaces/law-1/query"
READER_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_READER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER_ID}"
CLOCK = FixedClock(datetime(2026, 7, 1, tzinfo=UTC))
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def role_assignment(name: str, principal: str) -> dict[str, Any]:
    return {
        "id": f"{WS.arm_id}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": ROLE_READER,
            "principalId": principal,
            "principalType": "User",
            "scope": WS.arm_id,
            "createdOn": "2026-01-02T03:04:05.1234567Z",
        },
    }


def model_container(name: str) -> dict[str, Any]:
    return {
        "id": f"{WS.arm_id}/models/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/models",
        "properties": {"description": None, "tags": {}, "properties": {}, "isArchived": False,
                       "latestVersion": "2", "nextVersion": "3"},
        "systemData": {"createdAt": "2026-01-01T00:00:00Z", "createdBy": "alice@contoso.com",
                       "createdByType": "User", "lastModifiedAt": "2026-01-02T00:00:00Z",
                       "lastModifiedBy": "alice@contoso.com", "lastModifiedByType": "User"},
    }


def clients(transport: ReplayTransport) -> AzureClients:
    return AzureClients(StaticCredential(), EvidenceTap(transport, CLOCK))


def entry(url: str, body: Any, status: int = 200, method: str = "GET", **kw: Any) -> Entry:
    headers = kw.pop("headers", JSON_HEADERS)
    return Entry(request_uri=url, request_method=method, status_code=status, response_body=body,
                 response_headers=headers, **kw)


def write_recording(path: Path, entries: list[Entry], variables: dict[str, str] | None = None) -> None:
    path.write_text(json.dumps({"Entries": [e.to_json() for e in entries], "Variables": variables or {}}))


# ------------------------------------------------------------------------------ SDK pipelines
def test_role_assignments_follow_next_link_across_two_pages() -> None:
    page2 = RA_URL + "&$skiptoken=page2"
    transport = ReplayTransport([
        entry(RA_URL, {"value": [role_assignment("ra-1", "p1")], "nextLink": page2}),
        entry(page2, {"value": [role_assignment("ra-2", "p2")]}),
    ])
    tap = EvidenceTap(transport, CLOCK)
    auth = AzureClients(StaticCredential(), tap).authorization(SUB)
    names = [ra.name for ra in auth.role_assignments.list_for_scope(WS.arm_id)]
    assert names == ["ra-1", "ra-2"]
    assert [s.entry for s in transport.served] == [0, 1]
    assert transport.unused() == []
    # The tap above the replay sees the same bytes the replay served.
    assert json.loads(tap.exchanges()[1].body)["value"][0]["name"] == "ra-2"


# azure-ai-ml's schemas warn on import under marshmallow 4, attributed to azure.ai.ml (stacklevel=2), so
# the pyproject filter for marshmallow.* does not catch it. Not ours to fix; reported to the team.
@pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")
def test_ml_client_models_list_parses_recorded_containers() -> None:
    transport = ReplayTransport([entry(MODELS_URL, {"value": [model_container("credit"), model_container("churn")]})])
    models = list(clients(transport).ml(WS).models.list())
    assert sorted(m.name for m in models) == ["churn", "credit"]


def test_retry_after_then_success_sleeps_once_and_instantly() -> None:
    throttle = {"error": {"code": "TooManyRequests", "message": "slow down"}}
    transport = ReplayTransport([
        entry(RA_URL, throttle, status=429, headers={**JSON_HEADERS, "Retry-After": "7"}),
        entry(RA_URL, {"value": [role_assignment("ra-1", "p1")]}),
    ])
    started = time.monotonic()
    names = [ra.name for ra in clients(transport).authorization(SUB).role_assignments.list_for_scope(WS.arm_id)]
    assert names == ["ra-1"]
    assert transport.sleeps == [7.0]
    assert [s.status for s in transport.served] == [429, 200]
    assert time.monotonic() - started < 5


def test_unmatched_request_names_method_and_url_and_is_not_retried() -> None:
    transport = ReplayTransport([entry(MODELS_URL, {"value": []})])
    with pytest.raises(ReplayError) as caught:
        list(clients(transport).authorization(SUB).role_assignments.list_for_scope(WS.arm_id))
    assert f"GET {RA_URL}" in caught.value.diagnostics()
    assert len(transport.served) == 1
    assert transport.sleeps == []


def test_query_order_case_and_double_slash_do_not_matter() -> None:
    shuffled = (f"{ARM}/SUBSCRIPTIONS/{SUB}/resourcegroups/RG-ML//providers/microsoft.machinelearningservices"
                f"/workspaces/WS-PROD/models/?listViewType=ActiveOnly&api-version=2023-08-01-preview")
    assert request_key("get", shuffled) == request_key("GET", MODELS_URL)
    transport = ReplayTransport([entry(shuffled, {"value": [model_container("credit")]})])
    assert [m.name for m in clients(transport).ml(WS).models.list()] == ["credit"]


def test_query_values_are_compared_decoded() -> None:
    encoded = f"{ARM}/x?$filter=eventTimestamp%20ge%20%272026-01-01T00%3A00%3A00Z%27"
    plain = f"{ARM}/x?$filter=eventTimestamp ge '2026-01-01T00:00:00Z'"
    assert request_key("GET", encoded) == request_key("GET", plain)
    assert request_key("GET", f"{ARM}/x?a=1") != request_key("GET", f"{ARM}/x?a=2")
    assert request_key("GET", f"{ARM}/x") != request_key("POST", f"{ARM}/x")
    assert request_key("GET", "https://a.example/x") != request_key("GET", "https://b.example/x")


def test_post_bodies_pick_the_entry_with_the_same_json() -> None:
    def table(value: int) -> dict[str, Any]:
        return {"tables": [{"name": "PrimaryResult", "columns": [{"name": "n", "type": "long"}], "rows": [[value]]}]}

    transport = ReplayTransport([
        # Key order and whitespace differ from what the SDK sends: compared canonically.
        entry(LOGS_URL, table(1), method="POST",
              request_body='{"workspaces": null, "query":  "A | count", "timespan": "PT86400.0S"}'),
        entry(LOGS_URL, table(2), method="POST",
              request_body={"timespan": "PT86400.0S", "query": "B | count", "workspaces": None}),
    ])
    logs = clients(transport).logs()
    second = logs.query_workspace("law-1", "B | count", timespan=timedelta(days=1))
    first = logs.query_workspace("law-1", "A | count", timespan=timedelta(days=1))
    assert second.tables[0].rows[0][0] == 2
    assert first.tables[0].rows[0][0] == 1
    with pytest.raises(ReplayError, match=re.escape(f"POST {LOGS_URL}")):
        logs.query_workspace("law-1", "C | count", timespan=timedelta(days=1))


def test_html_body_replays_verbatim_and_the_sdk_fails_to_deserialize() -> None:
    html = "<html><body>Service Unavailable</body></html>"
    transport = ReplayTransport([entry(RA_URL, html, headers={"Content-Type": "text/html"})])
    with pytest.raises(DeserializationError):
        list(clients(transport).authorization(SUB).role_assignments.list_for_scope(WS.arm_id))


def test_truncated_json_replays_verbatim_and_the_sdk_raises_decode_error() -> None:
    transport = ReplayTransport([entry(RA_URL, '{"value": [ {"id": "trunc')])
    with pytest.raises(DecodeError):
        list(clients(transport).authorization(SUB).role_assignments.list_for_scope(WS.arm_id))


def test_403_reaches_the_sdk_as_http_response_error_without_retry() -> None:
    denied = {"error": {"code": "AuthorizationFailed", "message": "no"}}
    transport = ReplayTransport([entry(RA_URL, denied, status=403)])
    with pytest.raises(HttpResponseError) as caught:
        list(clients(transport).authorization(SUB).role_assignments.list_for_scope(WS.arm_id))
    assert caught.value.status_code == 403
    assert len(transport.served) == 1


def test_exhausted_entries_reserve_last_success_but_not_errors() -> None:
    ok = entry(f"{ARM}/a", {"n": 1})
    transport = ReplayTransport([entry(f"{ARM}/a", {"e": 1}, status=500), ok])
    statuses = [transport.send(_Request("GET", f"{ARM}/a")).status_code for _ in range(3)]
    assert statuses == [500, 200, 200]
    only_error = ReplayTransport([entry(f"{ARM}/b", {"e": 1}, status=503)])
    assert only_error.send(_Request("GET", f"{ARM}/b")).status_code == 503
    with pytest.raises(ReplayError):
        only_error.send(_Request("GET", f"{ARM}/b"))


# ------------------------------------------------------------------------------ response type
class _Request:
    """The minimum of an azure-core request the transport reads."""

    def __init__(self, method: str, url: str, content: bytes | None = None) -> None:
        self.method = method
        self.url = url
        self.content = content


def test_canned_response_serves_rest_and_legacy_readers() -> None:
    response = CannedResponse(_Request("GET", f"{ARM}/a"), 200, {"content-type": "application/json"}, b'{"a":1}')
    assert response.read() == b'{"a":1}'
    assert response.text() == '{"a":1}'
    assert response.json() == {"a": 1}
    assert response.body() == b'{"a":1}'
    assert response.headers["Content-Type"] == "application/json"
    assert b"".join(response.iter_bytes()) == b'{"a":1}'
    assert response.reason == "OK"
    response.close()
    assert response.is_closed


def test_body_bytes_forms() -> None:
    assert body_bytes(None) == b""
    assert body_bytes({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert body_bytes("<html>") == b"<html>"
    assert canonical_body(b'{"b":1, "a":2}') == canonical_body({"a": 2, "b": 1})
    assert canonical_body("not json") == "not json"
    assert canonical_body("") is None


def test_json_entry_without_content_type_is_served_as_json() -> None:
    transport = ReplayTransport([Entry(f"{ARM}/a", "GET", 200, {"a": 1})])
    response = transport.send(_Request("GET", f"{ARM}/a"))
    assert response.headers["Content-Type"].startswith("application/json")


# ------------------------------------------------------------------------------ cassette files
def test_cassette_directory_is_read_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_recording(tmp_path / "b.json", [entry(f"{ARM}/b", 1)], {"x": "1"})
    write_recording(tmp_path / "a.json", [entry(f"{ARM}/a", 1)])
    write_recording(tmp_path / "sub" / "c.json", [entry(f"{ARM}/c", 1)], {"x": "1"})
    (tmp_path / ".hidden.json").write_text("garbage")
    (tmp_path / "notes.txt").write_text("ignored")
    cassette = load_cassette(tmp_path)
    assert cassette.files == ("a.json", "b.json", "sub/c.json")
    assert [e.request_uri for e in cassette.entries] == [f"{ARM}/a", f"{ARM}/b", f"{ARM}/c"]
    assert cassette.variables == {"x": "1"}
    assert load_cassette(tmp_path / "b.json").entries == (entry(f"{ARM}/b", 1),)
    assert ReplayTransport.from_path(tmp_path).entries == cassette.entries


def test_cassette_variables_that_conflict_are_refused(tmp_path: Path) -> None:
    write_recording(tmp_path / "a.json", [], {"x": "1"})
    write_recording(tmp_path / "b.json", [], {"x": "2"})
    with pytest.raises(ReplayError, match=r"b\.json"):
        load_cassette(tmp_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"Entries": [', "not valid JSON"),
        ("[]", "no \"Entries\" list"),
        ('{"Entries": [{"RequestMethod": "GET", "StatusCode": 200}]}', "entry 0 lacks RequestUri"),
        ('{"Entries": [{"RequestUri": "u", "RequestMethod": "GET", "StatusCode": "x"}]}', "entry 0 is malformed"),
        ('{"Entries": [7]}', "entry 0 is malformed"),
        ('{"Entries": [], "Variables": []}', "Variables"),
    ],
)
def test_corrupt_recording_names_the_file(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(ReplayError) as caught:
        load_cassette(tmp_path)
    line = caught.value.diagnostics()
    assert "broken.json" in line and expected in line and "\n" not in line


def test_missing_empty_and_binary_cassettes(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        load_cassette(tmp_path / "nope")
    with pytest.raises(ReplayError, match="no recording files"):
        load_cassette(tmp_path)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ReplayError, match="not UTF-8"):
        load_cassette(tmp_path)


def test_concurrent_requests_consume_each_entry_once() -> None:
    url = f"{ARM}/items"
    transport = ReplayTransport(Cassette(tuple(entry(url, {"n": i}) for i in range(40))))
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            value = transport.send(_Request("GET", url)).json()["n"]
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(40))
    assert transport.unused() == []


# ------------------------------------------------------------------------------ credentials
def test_static_credential_is_deterministic_and_records_scopes() -> None:
    credential = StaticCredential()
    first = credential.get_token("https://management.azure.com/.default")
    info = credential.get_token_info("https://api.loganalytics.io/.default")
    assert (first.token, first.expires_on) == ("offline-token", FAR_FUTURE_EXPIRY)
    assert (info.token, info.expires_on, info.token_type) == ("offline-token", FAR_FUTURE_EXPIRY, "Bearer")
    assert credential.scopes_seen == [("https://management.azure.com/.default",),
                                      ("https://api.loganalytics.io/.default",)]
    clocked = StaticCredential("t", clock=CLOCK, lifetime=timedelta(hours=2))
    assert clocked.expires_at() == datetime(2026, 7, 1, 2, tzinfo=UTC)
    with clocked as same:
        assert same.get_token().expires_on == int(datetime(2026, 7, 1, 2, tzinfo=UTC).timestamp())


def test_sdk_pipeline_asks_the_static_credential_for_the_cloud_scope() -> None:
    credential = StaticCredential()
    transport = ReplayTransport([entry(RA_URL, {"value": []})])
    list(AzureClients(credential, EvidenceTap(transport, CLOCK)).authorization(SUB).role_assignments
         .list_for_scope(WS.arm_id))
    assert credential.scopes_seen == [("https://management.azure.com/.default",)]


def test_unknown_credential_kind_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        live_credential("kerberos")
    assert "kerberos" in caught.value.diagnostics()
    assert "cli" in caught.value.diagnostics() and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("cli", "AzureCliCredential"), ("environment", "EnvironmentCredential"), ("Managed-Identity",
                                                                              "ManagedIdentityCredential")],
)
def test_live_credential_kinds_build_without_network(kind: str, cls: str) -> None:
    # Constructing these does no I/O (only DefaultAzureCredential probes), so they are safe here.
    credential = live_credential(kind)
    assert type(credential).__name__ == cls
    assert kind.lower() in CREDENTIAL_KINDS
