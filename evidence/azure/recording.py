"""Recording: capture a live run as a cassette that replays it, with secrets removed.

``RecordingTransport`` wraps the real transport, reads each response in full, keeps a sanitised
``Entry`` and hands the SDK the same in-memory ``CannedResponse`` type replay serves, so a recorded
run and its replay take identical code paths in the SDKs.

The SDK still sees the original, unredacted response (the run being recorded must behave exactly
as a live one); only what is written to the cassette is sanitised, by ``evidence.azure.redact``:
request headers are dropped except ``Accept``/``Content-Type`` (so never ``Authorization``),
response headers are kept only from an allow-list (so never ``Set-Cookie``), and URLs, bodies and
kept header values lose SAS signatures, tokens, keys and connection strings.

Layout: a recording is saved as one file per channel (``<collector>.json``, ``discovery.json``,
``release.json``; requests made outside any channel go to ``recording.json``), the layout the
sample generator writes. Collectors run concurrently and some make the same request (the endpoints
and metrics collectors both list a workspace's endpoints); replay answers a request from its own
collector's file first, so each collector gets back the responses (and request ids) it was given
live, whatever order the requests arrive in on replay. Within one collector, two pool tasks asking
the very same request are told apart by task order only (the file is ordered that way, replay
serves in file order); collectors avoid that by making shared lookups in one part (role
definitions), so a replay with any number of workers reproduces the recorded package.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from azure.core.pipeline.transport import HttpTransport

from evidence.azure import redact
from evidence.azure.cassette import Entry
from evidence.azure.replay import CannedResponse, body_bytes, request_body, request_key
from evidence.azure.tap import current_channel
from evidence.collect.pool import current_task
from evidence.errors import PackageError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

#: The file for requests made outside any channel (``recording.json``, the one-file layout).
UNATTRIBUTED_FILE = "recording.json"
#: The channel the tap reports outside any ``EvidenceTap.channel`` block (its contextvar's default).
_UNATTRIBUTED = contextvars.Context().run(current_channel)


@dataclass(frozen=True, order=True)
class _Origin:
    """Who made a recorded request: the channel (file) and the pool task and its place in it.

    A pool task's requests are sequential, so ``(task, seq)`` orders entries as a sequential run
    would make them, whatever order they arrived in; requests outside a task (planning, discovery)
    are made by one thread, so their arrival order is already that order.
    """

    channel: str
    task: int  # -1 outside a pool task
    seq: int


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
        self._origins: list[_Origin] = []
        #: Per entry, the response text to save verbatim (None: ``ResponseBody`` serves the same bytes).
        self._verbatim: list[str | None] = []
        self._task_counts: dict[tuple[str, int], int] = {}
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
    def channels(self) -> list[str]:
        """Per entry (same order as ``entries``), the channel that made the request."""
        with self._lock:
            return [origin.channel for origin in self._origins]

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
        # Read here, in the thread that makes the request: the pool sets both per worker thread.
        channel = current_channel()
        task = current_task()
        task_index = -1 if task is None else task
        with self._lock:
            index = len(self._entries)
            seq = self._task_counts.get((channel, task_index), 0)
            self._task_counts[(channel, task_index)] = seq + 1
            url, url_reasons = redact.redact_url(str(request.url))
            found.extend(EntryRedaction(index, "RequestUri", r) for r in dict.fromkeys(url_reasons))
            decoded = _decode_body(raw, content_type)
            before = len(found)
            body = _redact_value(decoded, "ResponseBody", index, found)
            verbatim = _verbatim_text(body, raw) if len(found) == before else None
            if len(found) > before and isinstance(body, dict | list):
                # The store keeps a redacted body in canonical JSON (sorted keys); saved sorted, the
                # replay serves exactly those bytes, so the replayed package's raw file is the same.
                body = _sorted_json(body)
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
            self._origins.append(_Origin(channel, task_index, seq))
            self._verbatim.append(verbatim)
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
    def _ordered(self) -> list[tuple[_Origin, Entry]]:
        """Every entry with its origin, in sequential-run order (channel, task, place in task)."""
        with self._lock:
            pairs = list(zip(self._origins, self._entries, self._verbatim, strict=True))
        return [(origin, entry) for origin, entry, _ in sorted(pairs, key=lambda item: item[0])]

    def _exact(self) -> list[tuple[_Origin, Entry]]:
        """``_ordered`` with each body as the bytes replay must serve to reproduce the response."""
        with self._lock:
            pairs = list(zip(self._origins, self._entries, self._verbatim, strict=True))
        return [
            (origin, entry if text is None else replace(entry, response_body=text))
            for origin, entry, text in sorted(pairs, key=lambda item: item[0])
        ]

    def to_json(self, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole recording as one test-proxy document (entries ordered as ``recording_document`` says)."""
        return recording_document([entry for _, entry in self._ordered()], variables)

    def save(
        self,
        directory: str | os.PathLike[str],
        name: str = UNATTRIBUTED_FILE,
        variables: Mapping[str, Any] | None = None,
        *,
        pseudonymize_salt: bytes | None = None,
    ) -> list[Path]:
        """Write the recording to ``directory``, one file per channel; return the paths, sorted.

        Each channel's entries go to ``<channel>.json`` and requests made outside any channel to
        ``name``, each file written atomically with the same ``variables``. The bytes do not depend
        on the order responses arrived in: entries are ordered by request, then by the pool task
        that made them and their place in it (see ``recording_document``).

        With ``pseudonymize_salt`` (``--pseudonymize``), callers' e-mails, IP addresses and object
        IDs are replaced by salted pseudonyms before anything is written (see ``pseudonymize``),
        consistently across all the files.
        """
        # Pseudonyms change the bodies anyway, and are found in parsed JSON (not in verbatim text).
        ordered = self._exact() if pseudonymize_salt is None else self._ordered()
        entries = [entry for _, entry in ordered]
        if pseudonymize_salt is not None:
            from evidence.azure.pseudonymize import pseudonymize_cassette
            from evidence.azure.replay import Cassette

            entries = list(pseudonymize_cassette(Cassette(entries=tuple(entries)), pseudonymize_salt)[0].entries)
        groups: dict[str, list[Entry]] = {}
        for (origin, _), entry in zip(ordered, entries, strict=True):
            groups.setdefault(_file_name(origin.channel, name), []).append(entry)
        if not groups:
            groups[name] = []  # an empty run still leaves a (replayable, empty) recording
        return sorted(
            write_recording(group, directory, file, variables, keep_body_order=True) for file, group in groups.items()
        )


def _verbatim_text(body: Any, raw: bytes) -> str | None:
    """The response text to save instead of parsed JSON, when serving the JSON would change the bytes.

    Replay serves a JSON ``ResponseBody`` compactly (``body_bytes``); a server that indents, or
    escapes differently, sent other bytes. The package keeps raw bodies byte for byte, so such a
    body is saved as its text (still a valid test-proxy ``ResponseBody``), and replay serves it as is.
    """
    if not isinstance(body, dict | list) or body_bytes(body) == raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if redact.redact_text(text)[1]:
        return None  # the text form would need redacting: keep the (clean) parsed form instead
    return text


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_json(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


def _file_name(channel: str, unattributed: str) -> str:
    if channel == _UNATTRIBUTED:
        return unattributed
    # Channels are collector names set in code; anything else must not become a path.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", channel) or channel.endswith(".json"):
        raise PackageError(f"cannot name a recording file after channel {channel!r}")
    return f"{channel}.json"


def recording_document(
    entries: Iterable[Entry], variables: Mapping[str, Any] | None = None, *, keep_body_order: bool = False
) -> dict[str, Any]:
    """A test-proxy document for ``entries``.

    With ``keep_body_order``, every object in the document has its keys in sorted order except
    response bodies, which keep the order they arrived in (write it without ``sort_keys``):
    replay then serves a body in the same bytes it was received in.

    Entries are ordered by request (stable sort on the matching key), not by arrival: when
    collectors run concurrently, arrival order depends on thread scheduling, while the order of
    responses to one and the same request (a 429, then its 200) is kept, which is all replay needs.
    ``RecordingTransport.save`` passes them in sequential-run order, so entries for one request
    are ordered by the task that made them, not by which task happened to be answered first.
    """
    ordered = sorted(entries, key=lambda e: request_key(e.request_method, e.request_uri))
    documents = [e.to_json() for e in ordered]
    if keep_body_order:
        documents = [
            {key: (doc[key] if key == "ResponseBody" else _sorted_json(doc[key])) for key in sorted(doc)}
            for doc in documents
        ]
    return {"Entries": documents, "Variables": _sorted_json(dict(variables or {}))}


def write_recording(
    entries: Iterable[Entry],
    directory: str | os.PathLike[str],
    name: str = "recording.json",
    variables: Mapping[str, Any] | None = None,
    *,
    keep_body_order: bool = False,
) -> Path:
    """Write ``entries`` as one recording file, deterministically and atomically; return its path.

    Sorted keys (response bodies excepted with ``keep_body_order``, see ``recording_document``),
    two-space indent, UTF-8, trailing newline. Written to a temporary file in the same directory
    and renamed, so a crash never leaves half a cassette behind.
    """
    target_dir = Path(directory)
    document = recording_document(entries, variables, keep_body_order=keep_body_order)
    text = json.dumps(document, sort_keys=not keep_body_order, indent=2, ensure_ascii=False) + "\n"
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
