"""Record a real SDK run against a local HTTPS stub, then replay the cassette offline.

The stub plants secrets where Azure puts them (a SAS URL, a JWT, a key field, a connection string,
a password inside the Activity Log's JSON-in-a-string ``requestbody``, a ``Set-Cookie`` header);
none may reach the cassette, and the replay must give the SDK caller the same results.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients, Cloud
from evidence.azure.credentials import StaticCredential
from evidence.azure.pseudonymize import Pseudonymizer, identity_object_ids, pseudonymize_cassette
from evidence.azure.recording import RecordingTransport, write_recording
from evidence.azure.redact import redact_json
from evidence.azure.replay import Cassette, ReplayTransport, load_cassette
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.errors import PackageError

SUB = "00000000-0000-0000-0000-0000000000aa"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"
CLOCK = FixedClock(dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
FILTER = "eventTimestamp ge '2026-06-01T00:00:00Z' and eventTimestamp le '2026-07-01T00:00:00Z'"

SAS_SIG = "SuperSecretSig0123%2Bxyz%3D"
JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJvaWQiOiJhYmMiLCJ1cG4iOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
ACCOUNT_KEY = "AccountKeyREALSECRET+abc=="
PRIMARY_KEY = "pk-REAL-SECRET-1234"
PASSWORD = "hunter2-REAL-PASSWORD"
COOKIE = "session=cookie-REAL-SECRET"
SECRETS = [SAS_SIG, JWT, "eyJhbGci", ACCOUNT_KEY, PRIMARY_KEY, PASSWORD, "cookie-REAL-SECRET", "offline-token"]


def role_assignment(name: str) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "primaryKey": PRIMARY_KEY,  # unknown to the SDK model, but in the raw evidence
        "properties": {
            "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/rd-1",
            "principalId": "11111111-2222-3333-4444-555555555555",
            "principalType": "User",
            "scope": WS_ID,
            "description": f"export at https://stacct.blob.core.windows.net/c/x.csv?sv=2023-11-03&sr=b&sig={SAS_SIG}",
        },
    }


def activity_event() -> dict[str, Any]:
    request_body = json.dumps({"properties": {"principalId": "p-1", "password": PASSWORD}})
    return {
        "caller": "alice@contoso.com",
        "channels": "Operation",
        "claims": {"ipaddr": "203.0.113.7", "http://schemas/upn": "alice@contoso.com"},
        "correlationId": "c-1",
        "eventDataId": "e-1",
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "id": f"{WS_ID}/events/e-1",
        "level": "Informational",
        "operationId": "op-1",
        "operationName": {"value": "Microsoft.Authorization/roleAssignments/write", "localizedValue": "write"},
        "properties": {
            "requestbody": request_body,
            "statusCode": "Created",
            "storage": f"DefaultEndpointsProtocol=https;AccountName=st;AccountKey={ACCOUNT_KEY};EndpointSuffix=x",
            "debugToken": JWT,
            "note": f"Authorization: Bearer {JWT}",
        },
        "resourceGroupName": "rg-ml",
        "resourceId": WS_ID,
        "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
        "eventTimestamp": "2026-06-15T10:00:00.1234567Z",
        "submissionTimestamp": "2026-06-15T10:00:30Z",
        "subscriptionId": SUB,
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    }


# ------------------------------------------------------------------------------ HTTPS stub
def make_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "stub.pem", directory / "stub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.authorizations: list[str] = []
        self.throttled = False

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
        pass

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        parts = urlsplit(self.path)
        base = self.server.base.rstrip("/")
        status, extra = 200, {"Set-Cookie": COOKIE, "x-ms-request-id": "req-1", "Server": "stub/1.0"}
        if parts.path.endswith("/roleAssignments") and "skiptoken" not in parts.query:
            if not self.server.throttled:  # one 429 first, to record a retry sequence
                self.server.throttled = True
                status, extra = 429, {"Retry-After": "1"}
                body: Any = {"error": {"code": "TooManyRequests", "message": "slow down"}}
            else:
                body = {"value": [role_assignment("ra-1")],
                        "nextLink": f"{base}{parts.path}?api-version=2022-04-01&$skiptoken=page2"}
        elif parts.path.endswith("/roleAssignments"):
            body = {"value": [role_assignment("ra-2")]}
        elif parts.path.endswith("/eventtypes/management/values"):
            body = {"value": [activity_event()]}
        else:
            status, body = 404, {"error": {"code": "NotFound", "message": self.path}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[Stub, Path]]:
    cert, key = make_certificate(tmp_path)
    server = Stub()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_collector(clients: AzureClients) -> dict[str, Any]:
    """What a collector would read: role assignments over two pages and the activity log."""
    auth = clients.authorization(SUB)
    monitor = clients.monitor(SUB)
    assignments = [(ra.name, ra.principal_id, ra.description) for ra in auth.role_assignments.list_for_scope(WS_ID)]
    events = [(e.event_data_id, e.caller, e.operation_name.value, e.properties)
              for e in monitor.activity_logs.list(filter=FILTER)]
    return {"assignments": assignments, "events": events}


# ------------------------------------------------------------------------------ the round trip
def test_record_then_replay_gives_same_results_and_no_secrets(stub: tuple[Stub, Path], tmp_path: Path) -> None:
    server, cert = stub
    cloud = Cloud("Stub", server.base, server.base + "v1")
    with RecordingTransport(RequestsTransport(connection_verify=str(cert))) as recorder:
        live = run_collector(AzureClients(StaticCredential(), EvidenceTap(recorder, CLOCK), cloud=cloud))
    assert server.authorizations and set(server.authorizations) == {"Bearer offline-token"}
    assert [a[0] for a in live["assignments"]] == ["ra-1", "ra-2"]
    assert SAS_SIG in str(live["assignments"])  # the SDK saw the unredacted response

    # No collector channel here: everything goes to the one-file layout's recording.json.
    (path,) = recorder.save(tmp_path / "cassette", variables={"subscription": SUB})
    assert path.name == "recording.json"
    text = path.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in text, secret
    doc = json.loads(text)
    header_names = {name.lower() for e in doc["Entries"] for name in (*e["RequestHeaders"], *e["ResponseHeaders"])}
    assert header_names <= {"accept", "content-type", "x-ms-request-id", "retry-after"}
    assert {"x-ms-request-id", "retry-after"} <= header_names
    assert doc["Variables"] == {"subscription": SUB}
    reasons = {(r.pointer.split("/")[0], r.reason) for r in recorder.redactions}
    assert ("ResponseBody", "sas-signature") in reasons
    assert ("ResponseBody", "secret-key-name") in reasons
    assert ("ResponseBody", "jwt") in reasons
    assert ("ResponseBody", "connection-string") in reasons

    replay = ReplayTransport.from_path(path.parent)
    replayed = run_collector(AzureClients(StaticCredential(), EvidenceTap(replay, CLOCK), cloud=cloud))
    assert replayed["assignments"] == [
        (name, principal, redact_json(description)[0]) for name, principal, description in live["assignments"]
    ]
    assert replayed["events"] == [
        (eid, caller, op, redact_json(props)[0]) for eid, caller, op, props in live["events"]
    ]
    assert replay.sleeps == [1.0]  # the recorded 429 is retried from the cassette, instantly
    assert replay.unused() == []


def test_saved_cassette_is_deterministic_and_sorted(tmp_path: Path) -> None:
    first = RecordingTransport(_Canned())
    second = RecordingTransport(_Canned())
    urls = ["https://h/b?x=1", "https://h/a", "https://h/b?x=1", "https://h/c"]
    for url in urls:
        first.send(_Req("GET", url))
    for url in reversed(urls):
        second.send(_Req("GET", url))
    (a,) = first.save(tmp_path / "one", "r.json")
    (b,) = second.save(tmp_path / "two", "r.json")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().endswith("}\n")
    doc = json.loads(a.read_text())
    assert [e["RequestUri"] for e in doc["Entries"]] == ["https://h/a", "https://h/b?x=1", "https://h/b?x=1",
                                                          "https://h/c"]
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["r.json"]  # no temp file left
    assert load_cassette(a).entries[0] == Entry.from_json(doc["Entries"][0])


def test_post_bodies_are_recorded_and_replayed(tmp_path: Path) -> None:
    recorder = RecordingTransport(_Canned())
    recorder.send(_Req("POST", "https://h/query", b'{"query": "x", "password": "p4ss-REAL"}'))
    entry = recorder.entries[0]
    assert entry.request_body == {"query": "x", "password": "REDACTED"}
    assert [(r.pointer, r.reason) for r in recorder.redactions] == [("RequestBody/password", "secret-key-name")]
    assert entry.request_headers == {"Content-Type": "application/json"}


def test_unwritable_directory_is_a_package_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PackageError, match="cannot write recording"):
        RecordingTransport(_Canned()).save(blocker / "sub")


def test_non_json_and_binary_bodies_are_kept_as_text() -> None:
    recorder = RecordingTransport(_Canned(b"<html>oops ?sig=abcSECRET</html>", "text/html"))
    recorder.send(_Req("GET", "https://h/x"))
    assert recorder.entries[0].response_body == "<html>oops ?sig=REDACTED</html>"
    broken = RecordingTransport(_Canned(b'{"value": [', "application/json"))
    broken.send(_Req("GET", "https://h/x"))
    assert broken.entries[0].response_body == '{"value": ['
    binary = RecordingTransport(_Canned(b"\xff\x00", "application/octet-stream"))
    binary.send(_Req("GET", "https://h/x"))
    assert binary.entries[0].response_body == "\xff\x00"
    empty = RecordingTransport(_Canned(b"", "application/json"))
    assert empty.send(_Req("GET", "https://h/x")).read() == b""
    assert empty.entries[0].response_body is None


# ------------------------------------------------------------------------------ tiny in-process doubles
class _Req:
    def __init__(self, method: str, url: str, content: bytes | None = None) -> None:
        self.method = method
        self.url = url
        self.content = content
        self.headers = {"Content-Type": "application/json", "Authorization": "Bearer eyJsecret"}


class _Canned(ReplayTransport):
    """A real ReplayTransport answering every request with one response: the 'live' side."""

    def __init__(self, body: bytes = b'{"ok": true}', content_type: str = "application/json") -> None:
        super().__init__([])
        self._body = body
        self._type = content_type

    def send(self, request: Any, **kwargs: Any) -> Any:
        from evidence.azure.replay import CannedResponse

        return CannedResponse(request, 200, {"Content-Type": self._type}, self._body)


# ------------------------------------------------------------------------------ pseudonymisation
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
BUILTIN_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ARM = "https://management.azure.com"


def identity_cassette() -> Cassette:
    ra_url = f"{ARM}{WS_ID}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
    page2 = f"{ra_url}&$skiptoken=p2"
    filtered = f"{ra_url}&$filter=principalId%20eq%20%27{PRINCIPAL}%27"
    events = (f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
              f"?api-version=2015-04-01&$filter=caller%20eq%20%27alice%40contoso.com%27")
    assignment = role_assignment("ra-1")
    assignment["properties"]["principalId"] = PRINCIPAL
    assignment["properties"]["roleDefinitionId"] = (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{BUILTIN_READER}"
    )
    event = activity_event()
    event["claims"]["name"] = "Alice Example"
    event["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"] = PRINCIPAL
    headers = {"Content-Type": "application/json"}
    return Cassette(entries=(
        Entry(ra_url, "GET", 200, {"value": [assignment], "nextLink": page2}, response_headers=headers),
        Entry(page2, "GET", 200, {"value": [role_assignment("ra-2")]}, response_headers=headers),
        Entry(filtered, "GET", 200, {"value": [assignment]}, response_headers=headers),
        Entry(events, "GET", 200, {"value": [event]}, response_headers=headers),
    ))  # fmt: skip


def test_pseudonymized_cassette_replays_with_consistent_pseudonyms(tmp_path: Path) -> None:
    original = identity_cassette()
    rewritten, pseudonymizer = pseudonymize_cassette(original, b"team-secret-salt")
    path = write_recording(rewritten.entries, tmp_path / "shared")
    text = path.read_text(encoding="utf-8")
    for personal in ("alice@contoso.com", "alice%40contoso.com", "203.0.113.7", PRINCIPAL, "Alice Example"):
        assert personal not in text, personal
    # Organisation identifiers and built-in role GUIDs are deliberately left alone.
    assert SUB in text and BUILTIN_READER in text and "72f988bf-86f1-41af-91ab-2d7cd011db47" in text

    transport = ReplayTransport.from_path(path.parent)
    clients = AzureClients(StaticCredential(), EvidenceTap(transport, CLOCK))
    auth = clients.authorization(SUB)
    assignments = list(auth.role_assignments.list_for_scope(WS_ID))
    assert [ra.name for ra in assignments] == ["ra-1", "ra-2"]  # nextLink still matches its entry
    fake_principal = pseudonymizer.guid(PRINCIPAL)
    assert assignments[0].principal_id == fake_principal
    assert assignments[0].role_definition_id.endswith(BUILTIN_READER)
    # Configuration goes through the same pseudonymizer at replay time, and then matches.
    by_principal = list(auth.role_assignments.list_for_scope(WS_ID, filter=f"principalId eq '{fake_principal}'"))
    assert [ra.principal_id for ra in by_principal] == [fake_principal]
    fake_caller = pseudonymizer.email("alice@contoso.com")
    events = list(clients.monitor(SUB).activity_logs.list(filter=f"caller eq '{fake_caller}'"))
    assert events[0].caller == fake_caller
    assert events[0].claims["ipaddr"].startswith("198.1")
    assert events[0].claims["name"].startswith("person-")
    assert events[0].claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] == fake_principal
    assert transport.unused() == []


def test_pseudonyms_are_stable_salted_and_idempotent() -> None:
    a, b, other = Pseudonymizer("s1", [PRINCIPAL]), Pseudonymizer("s1", [PRINCIPAL]), Pseudonymizer("s2", [PRINCIPAL])
    text = f"alice@contoso.com from 203.0.113.7 / 2001:4860::8888 as {PRINCIPAL.upper()} at 10:00:00"
    assert a.text(text) == b.text(text) != other.text(text)
    assert a.text(a.text(text)) == a.text(text)
    assert a.guid(PRINCIPAL) == a.guid(PRINCIPAL.upper())
    assert a.text("version 1.2.3.4.5 and mac 00:1a:2b:3c:4d:5e") == "version 1.2.3.4.5 and mac 00:1a:2b:3c:4d:5e"
    with pytest.raises(ValueError, match="salt"):
        Pseudonymizer("")
    assert identity_object_ids([{"properties": {"requestbody": json.dumps({"principalId": PRINCIPAL})}}]) == {
        PRINCIPAL
    }


def test_concurrent_recording_keeps_every_entry_and_saves_deterministically(tmp_path: Path) -> None:
    urls = [f"https://h/item/{i}?sig=s{i}" for i in range(50)]

    def record(order: list[str], directory: Path) -> bytes:
        recorder = RecordingTransport(_Canned())
        threads = [threading.Thread(target=lambda chunk=order[k::4]: [recorder.send(_Req("GET", u)) for u in chunk])
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(recorder.entries) == 50 and len(recorder.redactions) == 50
        (path,) = recorder.save(directory)
        return path.read_bytes()

    first = record(urls, tmp_path / "a")
    second = record(list(reversed(urls)), tmp_path / "b")
    assert first == second
    assert b"sig=s1" not in first


def test_record_then_replay_gives_identical_records_and_gaps(stub: tuple[Stub, Path], tmp_path: Path) -> None:
    """The collectors' view of the round trip: a recorded run and its replay write the same evidence."""
    from dataclasses import replace

    from evidence.collect.activity import ActivityLogCollector
    from evidence.collect.output import CollectRequest, collect_to_folder
    from evidence.collect.rbac import RoleAssignmentsCollector
    from evidence.domain import Scope, Window, Workspace

    server, cert = stub
    cloud = Cloud("Stub", server.base, server.base + "v1")
    request = CollectRequest(
        Scope(workspaces=(Workspace(SUB, "rg-ml", "ws-prod"),)),
        Window(dt.datetime(2026, 6, 1, tzinfo=dt.UTC), dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
        tmp_path / "recorded",
    )

    def collect(transport: Any, out: Path) -> tuple[dict[str, bytes], Any]:
        tap = EvidenceTap(transport, CLOCK)
        result = collect_to_folder(
            replace(request, out_dir=out),
            clients=AzureClients(StaticCredential(), tap, cloud=cloud),
            tap=tap,
            clock=CLOCK,
            collectors=[RoleAssignmentsCollector(), ActivityLogCollector()],
        )
        records = {p.name: p.read_bytes() for p in sorted((result.folder / "data" / "records").iterdir())}
        return records, result.gaps

    with RecordingTransport(RequestsTransport(connection_verify=str(cert))) as recorder:
        recorded, recorded_gaps = collect(recorder, tmp_path / "recorded")
    files = recorder.save(tmp_path / "cassette")
    assert [p.name for p in files] == ["activity_log.json", "role_assignments.json"]  # one file per collector
    asked = len(server.authorizations)
    replay = ReplayTransport.from_path(tmp_path / "cassette")
    replayed, replayed_gaps = collect(replay, tmp_path / "replayed")
    assert len(server.authorizations) == asked  # the replay never reached the stub
    assert replay.unused() == []
    assert b"ra-1" in recorded["role_assignments.jsonl"] and b"e-1" in recorded["activity_events.jsonl"]
    assert replayed == recorded
    assert replayed_gaps == recorded_gaps  # the stub's 404s (deny, PIM, definition) replay as the same gaps
    assert {g.status for g in recorded_gaps} == {404}


# ------------------------------------------------------------------------------ a concurrent live run, replayed
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso"


class _HoldBack(HttpTransport[Any, Any]):
    """The 'wire' of a live run where some collectors' answers come late (a slower region, say).

    Below the recorder, like the network. Requests from ``channels`` wait ``delay`` seconds; with
    ``until_asked_by``, a request from ``channels`` for an endpoints or deployments list instead
    waits until that other collector has been answered the same URL (so the simulator's
    per-URL request ids go to the other collector first, an order no sequential run makes).
    """

    def __init__(
        self, inner: Any, channels: tuple[str, ...], delay: float = 0.0, *, until_asked_by: str = ""
    ) -> None:
        self.inner, self.channels, self.delay, self.until_asked_by = inner, channels, delay, until_asked_by
        self._answered: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, url: str) -> threading.Event:
        with self._lock:
            return self._answered.setdefault(url, threading.Event())

    def send(self, request: Any, **kwargs: Any) -> Any:
        from evidence.azure.tap import current_channel

        channel, url = current_channel(), str(request.url)
        if channel in self.channels:
            path = urlsplit(url).path.lower()
            if self.until_asked_by and path.endswith(("/onlineendpoints", "/deployments")):
                assert self._event(url).wait(30), f"{self.until_asked_by} never asked for {url}"
            else:
                threading.Event().wait(self.delay)
        response = self.inner.send(request, **kwargs)
        if channel == self.until_asked_by:
            self._event(url).set()
        return response

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _HoldBack:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def sleep(self, duration: float) -> None:
        pass


def _collect(session: Any, out: Path, workers: int) -> dict[str, bytes]:
    """A collection folder (raw bodies, collection.json with provenance, records) as name -> bytes."""
    from evidence.collect.output import collect_into
    from evidence.collect.runner import default_collectors
    from evidence.collect.store import load_raw, normalise_all, write_records
    from evidence.config import load_config

    config = load_config(SAMPLE / "evidence.toml")
    collectors = default_collectors()
    summary = collect_into(
        out,
        clients=session.clients,
        tap=session.tap,
        scope=config.scope.to_scope(),
        window=config.window.resolve(session.clock.now()),
        clock=session.clock,
        collectors=collectors,
        mode="recorded-or-replayed",  # the one field a replay legitimately changes; kept equal here
        workers=workers,
    )
    write_records(normalise_all(collectors, load_raw(out, summary.requests)), out)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _record_concurrently(tmp_path: Path) -> tuple[Any, Path]:
    """A 16-worker live run against the simulated Contoso tenant, recorded as `--record` does."""
    from evidence.azure.session import AzureSession
    from evidence.azure.simulator import SimulatedAzure, load_tenant

    tenant = load_tenant(SAMPLE / "tenant.toml")
    clock = FixedClock(tenant.now)
    recorder = RecordingTransport(_HoldBack(SimulatedAzure(tenant), ("endpoints",), until_asked_by="metrics"))
    tap = EvidenceTap(recorder, clock)
    session = AzureSession("record", AzureClients(StaticCredential(), tap), tap, clock, tmp_path / "rec")
    return session, tmp_path / "rec"


def test_concurrent_recording_replays_exactly_with_16_workers_and_with_1(tmp_path: Path) -> None:
    from evidence.azure.session import replay_session

    session, rec = _record_concurrently(tmp_path)
    recorded = _collect(session, tmp_path / "live", workers=16)
    session.finish()
    assert sorted(p.name for p in rec.iterdir()) == [
        "activity_log.json", "endpoints.json", "metrics.json", "model_versions.json", "role_assignments.json"
    ]  # fmt: skip

    # Both collectors list each workspace's endpoints and deployments, and were answered with
    # different request ids.
    recorded_ids = _shared_request_ids(recorded)
    assert len(recorded_ids) == 4 and all(ids["endpoints"] != ids["metrics"] for ids in recorded_ids.values())

    for workers in (16, 1):
        replayed = _collect(replay_session(rec), tmp_path / f"replay-{workers}", workers=workers)
        assert replayed.keys() == recorded.keys()
        differing = [name for name in recorded if replayed[name] != recorded[name]]
        assert differing == [], f"{workers} worker(s): {differing}"

    # The same entries in one file (the layout before recordings were split per collector, where
    # answers to one request kept their arrival order: the metrics collector's first, as live) do
    # not replay exactly: a replay with one worker asks for the endpoints collector first and is
    # handed the answers the metrics collector got live.
    recorder = session.tap.inner
    assert isinstance(recorder, RecordingTransport)
    pairs = list(zip(recorder.channels, recorder.entries, strict=True))
    as_arrived = [e for c, e in pairs if c == "metrics"] + [e for c, e in pairs if c != "metrics"]
    merged = tmp_path / "merged"
    write_recording(as_arrived, merged, variables=load_cassette(rec).variables, keep_body_order=True)
    swapped = _collect(replay_session(merged), tmp_path / "replay-merged", workers=1)
    swapped_ids = _shared_request_ids(swapped)
    assert swapped_ids == {
        url: {"endpoints": live["metrics"], "metrics": live["endpoints"]} for url, live in recorded_ids.items()
    }


def _shared_request_ids(folder: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """Per URL asked by both the endpoints and the metrics collector, each one's x-ms-request-id."""
    by_url: dict[str, dict[str, str]] = {}
    for req in json.loads(folder["data/collection.json"])["requests"]:
        by_url.setdefault(req["url"], {})[req["collector"]] = req["request_id"]
    return {url: ids for url, ids in by_url.items() if {"endpoints", "metrics"} <= ids.keys()}


def test_recording_does_not_depend_on_arrival_order(tmp_path: Path) -> None:
    """Two live runs whose requests arrive in different orders save byte-identical recordings."""
    from evidence.azure.session import AzureSession
    from evidence.azure.simulator import SimulatedAzure, load_tenant

    tenant = load_tenant(SAMPLE / "tenant.toml")
    clock = FixedClock(tenant.now)
    saved: list[dict[str, bytes]] = []
    # The metrics collector is always held back, so the endpoints collector is first to list the
    # endpoints (as in a sequential run) and both collectors get the same answers in every run.
    runs = ((("metrics",), 16), (("metrics", "model_versions", "role_assignments"), 16), (("metrics",), 1))
    for number, (held_back, workers) in enumerate(runs):
        recorder = RecordingTransport(_HoldBack(SimulatedAzure(tenant), held_back, 0.05))
        tap = EvidenceTap(recorder, clock)
        session = AzureSession("record", AzureClients(StaticCredential(), tap), tap, clock, tmp_path / f"rec-{number}")
        _collect(session, tmp_path / f"out-{number}", workers=workers)
        session.finish()
        assert session.record_dir is not None
        saved.append({p.name: p.read_bytes() for p in sorted(session.record_dir.iterdir())})
    assert saved[0] == saved[1] == saved[2]


def test_record_refuses_a_directory_that_already_holds_a_recording(tmp_path: Path) -> None:
    """Replay reads every file in the directory: an old collector file would be mixed into the new run."""
    from evidence.azure.session import live_session
    from evidence.errors import UsageError

    old = tmp_path / "rec"
    write_recording([Entry("https://h/a", "GET", 200)], old, "metrics.json")
    with pytest.raises(UsageError, match="already holds a recording"):
        live_session(record_dir=old)
    assert sorted(p.name for p in old.iterdir()) == ["metrics.json"]  # nothing deleted


def test_package_record_then_cli_replay_gives_the_recorded_package(tmp_path: Path) -> None:
    """`evidence package --record` (here over the simulated tenant: no tenant, no credential) then
    `evidence package --replay` from the CLI: the same package, but for the run's mode.

    The replay runs at the recording's time (``Variables.recorded_at``), so the clock allows
    identical bytes everywhere except ``collection.json``'s ``mode`` ("record" / "replay") and
    what digests it: the package ID (bag-info.txt, the report) and the tag manifests.
    """
    import zipfile

    from evidence.check.runner import default_controls
    from evidence.cli import main
    from evidence.collect.runner import default_collectors
    from evidence.config import load_config
    from evidence.pipeline import PackageRequest, build_package

    session, rec = _record_concurrently(tmp_path)
    config = load_config(SAMPLE / "evidence.toml")
    request = PackageRequest(
        scope=config.scope.to_scope(),
        window=config.window.resolve(session.clock.now()),
        out_dir=tmp_path / "recorded",
        mode=session.mode,
        policy=config.policy,
        page_size=config.output.page_size,
        concurrency=16,
    )
    live = build_package(
        request,
        clients=session.clients,
        tap=session.tap,
        clock=session.clock,
        collectors=default_collectors(),
        controls=default_controls(),
    )
    session.finish()
    args = ["package", "--config", str(SAMPLE / "evidence.toml"), "--replay", str(rec), "--unsigned", "-q"]
    assert main([*args, "--out", str(tmp_path / "replayed")]) == 0
    (replayed_zip,) = (tmp_path / "replayed").glob("*.zip")
    assert replayed_zip.name == live.zip_path.name

    def members(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as zf:
            return {name.split("/", 1)[1]: zf.read(name) for name in zf.namelist()}

    recorded, replayed = members(live.zip_path), members(replayed_zip)
    assert recorded.keys() == replayed.keys()
    differing = sorted(name for name in recorded if recorded[name] != replayed[name])
    assert differing == [
        "bag-info.txt", "data/collection.json", "data/report/report.html", "data/report/report.pdf",
        "manifest-sha256.txt", "tagmanifest-sha256.txt",
    ]  # fmt: skip
    live_collection = json.loads(recorded["data/collection.json"])
    replay_collection = json.loads(replayed["data/collection.json"])
    assert (live_collection.pop("mode"), replay_collection.pop("mode")) == ("record", "replay")
    assert live_collection == replay_collection  # every request, request id, gap and time
    # The report differs only in the digests of collection.json and of the package.
    html = recorded["data/report/report.html"].decode().replace(
        hashlib.sha256(recorded["data/collection.json"]).hexdigest(),
        hashlib.sha256(replayed["data/collection.json"]).hexdigest(),
    )
    live_id, replay_id = (
        re.search(r"^Package-Id: (\w+)$", m["bag-info.txt"].decode(), re.M).group(1)  # type: ignore[union-attr]
        for m in (recorded, replayed)
    )
    assert html.replace(live_id, replay_id) == replayed["data/report/report.html"].decode()


def test_bodies_replay_byte_for_byte_and_text_bodies_are_still_pseudonymized(tmp_path: Path) -> None:
    """Compact JSON is saved as JSON in its own key order; other JSON as its text; both replay exactly."""
    from evidence.azure.pseudonymize import pseudonymize_recording

    compact = b'{"z":1,"a":{"y":"\xc3\xa9","b":[1,2]}}'
    spaced = json.dumps({"claims": {"name": "Alice Example", "upn": "alice@contoso.com"}}).encode()
    saved: list[Path] = []
    for body, url in ((compact, "https://h/compact"), (spaced, "https://h/spaced")):
        recorder = RecordingTransport(_Canned(body))
        recorder.send(_Req("GET", url))
        saved += recorder.save(tmp_path / url.rsplit("/", 1)[1])
    assert json.loads(saved[0].read_text())["Entries"][0]["ResponseBody"] == {"z": 1, "a": {"y": "é", "b": [1, 2]}}
    assert json.loads(saved[1].read_text())["Entries"][0]["ResponseBody"] == spaced.decode()
    for path, body, url in ((saved[0], compact, "https://h/compact"), (saved[1], spaced, "https://h/spaced")):
        assert ReplayTransport.from_path(path).send(_Req("GET", url)).read() == body

    shared = pseudonymize_recording(saved[1].parent, tmp_path / "shared", b"salt")
    text = shared[0].read_text(encoding="utf-8")
    assert "Alice Example" not in text and "alice@contoso.com" not in text
