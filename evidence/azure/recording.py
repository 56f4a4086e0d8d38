"""Recording: capture a live run as a cassette that replays it, with secrets removed.

``RecordingTransport`` wraps the real transport, reads each response in full, keeps a sanitised
``Entry`` and hands the SDK the same in-memory ``CannedResponse`` type replay serves, so a recorded
run and its replay take identical code paths in the SDKs.

The SDK still sees the original, unredacted response (the run being recorded must behave exactly
as a live one); only what is written to the cassette is sanitised, by ``evidence.azure.redact``:
request headers are dropped except ``Accept``/``Content-Type`` (so never ``Authorization``),
response headers are kept only from an allow-list (so never ``Set-Cookie``), and URLs, bodies and
kept header values lose SAS signatures, tokens, keys and connection strings.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.pipeline.transport import HttpTransport

from evidence.azure import redact
from evidence.azure.cassette import Entry
from evidence.azure.replay import CannedResponse, request_body, request_key
from evidence.errors import PackageError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class EntryRedaction:
    """One secret removed from a recorded entry: ``entry`` indexes ``RecordingTransport.entries``.

    ``pointer`` is ``RequestUri``, ``ResponseHeaders/<name>``, or an RFC 6901 pointer prefixed by
    the entry member it points into (``ResponseBody/properties/primaryKey``).
    """

    entry: int
    pointer: str
    reason: str


def _decode_body(raw: bytes, content_type: str) -> Any:
    """``ResponseBody`` for raw bytes: a JSON value when it is JSON, else text, else null."""
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Azure management and data-plane reads return text; a binary body would be a download we
        # do not make. Keep something readable rather than fail the whole recording.
        return raw.decode("latin-1")
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            pass  # malformed JSON is evidence too: keep the exact text so replay reproduces it
    return text


def _redact_value(value: Any, member: str, index: int, sink: list[EntryRedaction]) -> Any:
    if isinstance(value, str):
        text, reasons = redact.redact_text(value)
        sink.extend(EntryRedaction(index, member, reason) for reason in dict.fromkeys(reasons))
        return text
    redacted, found = redact.redact_json(value)
    sink.extend(EntryRedaction(index, member + pointer, reason) for pointer, reason in found)
    return redacted


class RecordingTransport(HttpTransport[Any, Any]):
    """Delegates to a real transport and keeps a sanitised test-proxy entry per exchange. Thread-safe."""

    def __init__(self, inner: HttpTransport[Any, Any] | None = None) -> None:
        if inner is None:
            # Imported here: offline runs never need requests, and it costs start-up time.
            from azure.core.pipeline.transport import RequestsTransport

            inner = RequestsTransport()
        self._inner = inner
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._redactions: list[EntryRedaction] = []

    @property
    def inner(self) -> HttpTransport[Any, Any]:
        return self._inner

    @property
    def entries(self) -> list[Entry]:
        """The sanitised entries recorded so far, in the order responses arrived."""
        with self._lock:
            return list(self._entries)

    @property
    def redactions(self) -> list[EntryRedaction]:
        """Every secret removed so far (indices refer to ``entries``)."""
        with self._lock:
            return list(self._redactions)

    # -- HttpTransport -------------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> CannedResponse:
        # Always buffer: the cassette needs the bytes, and replay serves them fully read anyway.
        kwargs["stream"] = False
        response = self._inner.send(request, **kwargs)
        raw = bytes((response.read() if hasattr(response, "read") else response.body()) or b"")
        headers = {str(k): str(v) for k, v in response.headers.items()}
        status = int(response.status_code)
        reason = str(getattr(response, "reason", "") or "")
        self._keep(request, status, headers, raw)
        return CannedResponse(request, status, headers, raw, reason or None)

    def _keep(self, request: Any, status: int, headers: Mapping[str, str], raw: bytes) -> None:
        method = str(request.method).upper()
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        found: list[EntryRedaction] = []
        with self._lock:
            index = len(self._entries)
            url, url_reasons = redact.redact_url(str(request.url))
            found.extend(EntryRedaction(index, "RequestUri", r) for r in dict.fromkeys(url_reasons))
            body = _redact_value(_decode_body(raw, content_type), "ResponseBody", index, found)
            sent: Any = None
            if method in _BODY_METHODS:
                sent_raw = request_body(request)
                if sent_raw:
                    request_type = str(request.headers.get("Content-Type", "application/json"))
                    sent = _decode_body(sent_raw, request_type)
                    sent = _redact_value(sent, "RequestBody", index, found)
            response_headers = redact.redact_headers(headers)
            for name, value in response_headers.items():
                if value != headers[name]:
                    found.append(EntryRedaction(index, f"ResponseHeaders/{name}", "header-value"))
            self._entries.append(
                Entry(
                    request_uri=url,
                    request_method=method,
                    status_code=status,
                    response_body=body,
                    request_headers=redact.redact_request_headers(dict(request.headers)),
                    request_body=sent,
                    response_headers=response_headers,
                )
            )
            self._redactions.extend(found)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> RecordingTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._inner.__exit__(*args)

    def sleep(self, duration: float) -> None:
        # Recording is live: back-off waits for real.
        self._inner.sleep(duration)

    # -- output --------------------------------------------------------------------------------
    def to_json(self, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The recording as a test-proxy document (entries ordered as ``recording_document`` says)."""
        return recording_document(self.entries, variables)

    def save(
        self,
        directory: str | os.PathLike[str],
        name: str = "recording.json",
        variables: Mapping[str, Any] | None = None,
        *,
        pseudonymize_salt: bytes | None = None,
    ) -> Path:
        """Write the recording to ``directory/name`` atomically; return the file's path.

        With ``pseudonymize_salt`` (``--pseudonymize``), callers' e-mails, IP addresses and object
        IDs are replaced by salted pseudonyms before anything is written (see ``pseudonymize``).
        """
        entries = self.entries
        if pseudonymize_salt is not None:
            from evidence.azure.pseudonymize import pseudonymize_cassette
            from evidence.azure.replay import Cassette

            entries = list(pseudonymize_cassette(Cassette(entries=tuple(entries)), pseudonymize_salt)[0].entries)
        return write_recording(entries, directory, name, variables)


def recording_document(entries: Iterable[Entry], variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A test-proxy document for ``entries``.

    Entries are ordered by request (stable sort on the matching key), not by arrival: when
    collectors run concurrently, arrival order depends on thread scheduling, while the order of
    responses to one and the same request (a 429, then its 200) is kept, which is all replay needs.
    """
    ordered = sorted(entries, key=lambda e: request_key(e.request_method, e.request_uri))
    return {"Entries": [e.to_json() for e in ordered], "Variables": dict(sorted((variables or {}).items()))}


def write_recording(
    entries: Iterable[Entry],
    directory: str | os.PathLike[str],
    name: str = "recording.json",
    variables: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``entries`` as one recording file, deterministically and atomically; return its path.

    Sorted keys, two-space indent, UTF-8, trailing newline. Written to a temporary file in the same
    directory and renamed, so a crash never leaves half a cassette behind.
    """
    target_dir = Path(directory)
    text = json.dumps(recording_document(entries, variables), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below; kept for os.replace
            "w", encoding="utf-8", dir=target_dir, prefix=f".{name}.", suffix=".tmp", delete=False
        )
        try:
            with handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, target_dir / name)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PackageError(f"cannot write recording {target_dir / name}: {exc.strerror or exc}") from exc
    return target_dir / name
