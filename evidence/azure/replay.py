"""Replay: answer Azure SDK requests from a cassette, in process, with no sockets.

``ReplayTransport`` plugs into every SDK client through azure-core's public ``transport=`` seam,
so authentication, retries, paging and deserialisation all stay the SDKs' own; only the bytes on
the wire come from the recording. Cassettes use the Azure SDK test-proxy recording format (see
``evidence.azure.cassette``).

Matching (chosen to survive what SDKs vary between runs, and nothing more):

* method, host and path compare case-insensitively (ARM paths are case-insensitive; some SDKs
  emit ``//`` when a ``{resourceUri}`` parameter starts with ``/``, so runs of ``/`` collapse);
* query parameters compare decoded and order-insensitively (SDKs build dicts of parameters);
* for POST/PUT/PATCH, when the entry stores a ``RequestBody``, the JSON bodies compare
  canonically (Resource Graph and Log Analytics page and query through the body);
* request headers are ignored (they carry the token, user agent and client request ids).

Entries matching the same request are served in cassette order, each once, so a cassette can
script ``429`` then ``200``. When a cassette is split per collector (``<collector>.json``, as the
sample is), an entry from the requesting collector's own file is preferred: two collectors that
make the same request concurrently then each get their own recorded answer, whatever order they
arrive in (the package must not depend on concurrency). Once all are used the last successful one
is served again, because SDKs legitimately repeat idempotent reads.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from azure.core.pipeline.transport import HttpTransport

# Private module, but it is the base class azure-core's own transports build their responses on,
# and it is what gives legacy ``.body()`` callers (msrest-era generated code inside azure-ai-ml)
# the same bytes as ``azure.core.rest`` callers. Checked against azure-core 1.41.
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

from evidence.azure.cassette import Entry
from evidence.azure.tap import current_channel
from evidence.errors import ReplayError

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


# ----------------------------------------------------------------------------------- cassette
@dataclass(frozen=True)
class Cassette:
    """Every entry of a recording, in file order then entry order, and the merged variables."""

    entries: tuple[Entry, ...]
    variables: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the files read, relative to the cassette root, for diagnostics
    #: Per entry, the stem of the file it came from (``endpoints`` for ``endpoints.json``).
    sources: tuple[str, ...] = ()


def _read_recording(path: Path, label: str) -> tuple[list[Entry], dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"cannot read recording {label}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(f"recording {label} is not UTF-8 text", hint="re-record it") from exc
    except json.JSONDecodeError as exc:
        raise ReplayError(
            f"recording {label} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="re-record it or fix the file",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("Entries"), list):
        raise ReplayError(
            f"recording {label} has no \"Entries\" list",
            hint="expected the Azure SDK test-proxy format {\"Entries\": [...], \"Variables\": {...}}",
        )
    variables = data.get("Variables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise ReplayError(f"recording {label}: \"Variables\" must be an object")
    entries: list[Entry] = []
    for index, raw in enumerate(data["Entries"]):
        try:
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            entry = Entry.from_json(raw)
            if not isinstance(entry.request_uri, str) or not isinstance(entry.request_method, str):
                raise TypeError("RequestUri and RequestMethod must be strings")
        except KeyError as exc:
            raise ReplayError(f"recording {label}: entry {index} lacks {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise ReplayError(f"recording {label}: entry {index} is malformed ({exc})") from exc
        entries.append(entry)
    return entries, variables


def load_cassette(path: str | os.PathLike[str]) -> Cassette:
    """Read a cassette: a directory of recording files (read in sorted order), or one file.

    Files are found recursively (``*.json``, hidden files skipped) and ordered by their path
    relative to the cassette root, so the order never depends on the file system. Any unreadable or
    malformed file raises ``ReplayError`` naming it.
    """
    root = Path(path)
    if root.is_file():
        files = [(root, root.name)]
    elif root.is_dir():
        found = [
            p
            for p in root.rglob("*.json")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]
        files = sorted(((p, p.relative_to(root).as_posix()) for p in found), key=lambda item: item[1])
        if not files:
            raise ReplayError(f"cassette {root} holds no recording files (*.json)")
    else:
        raise ReplayError(f"cassette {root} does not exist", hint="pass the directory given to --record")
    entries: list[Entry] = []
    sources: list[str] = []
    variables: dict[str, Any] = {}
    for file_path, label in files:
        shown = str(file_path) if root.is_file() else f"{root}/{label}"
        file_entries, file_variables = _read_recording(file_path, shown)
        for key, value in file_variables.items():
            if key in variables and variables[key] != value:
                raise ReplayError(
                    f"recording {shown} sets variable {key!r} to {value!r}, but an earlier file set {variables[key]!r}"
                )
            variables[key] = value
        entries.extend(file_entries)
        sources.extend([Path(label).stem] * len(file_entries))
    return Cassette(
        entries=tuple(entries), variables=variables, files=tuple(label for _, label in files), sources=tuple(sources)
    )


# ----------------------------------------------------------------------------------- response
class CannedResponse(HttpResponseImpl):
    """A fully-read, in-memory ``azure.core.rest.HttpResponse`` (legacy ``.body()`` works too).

    Replay and recording both hand the SDK this type, so a recorded run and its replay go through
    exactly the same response code paths.
    """

    def __init__(
        self,
        request: Any,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        reason: str | None = None,
    ) -> None:
        canned = case_insensitive_dict(dict(headers))
        super().__init__(
            request=request,
            internal_response=None,
            status_code=status,
            reason=reason or _REASONS.get(status, "Unknown"),
            content_type=canned.get("Content-Type"),
            headers=canned,
            stream_download_generator=None,
        )
        self._content = body
        self._canned = body

    def close(self) -> None:
        # No socket behind it; the base class would call close() on the (absent) internal response.
        self._is_closed = True

    def read(self) -> bytes:
        self._is_stream_consumed = True
        return self._canned

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._canned

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._canned


def body_bytes(value: Any) -> bytes:
    """``ResponseBody`` as the bytes to serve: JSON values compactly, strings verbatim, null empty."""
    if value is None:
        return b""
    if isinstance(value, str):
        # Verbatim, so HTML error pages and truncated JSON replay exactly as they arrived.
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ----------------------------------------------------------------------------------- matching
@dataclass(frozen=True, order=True)
class RequestKey:
    """What two requests must share to be answered by the same entry."""

    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"{self.method} {self.host}{self.path}"


def _normalise_path(path: str) -> str:
    collapsed = re.sub(r"/{2,}", "/", unquote(path))
    return collapsed.rstrip("/").lower() or "/"


def request_key(method: str, url: str) -> RequestKey:
    """The matching key of a request; see the module docstring for what is normalised and why."""
    parts = urlsplit(url)
    query = tuple(
        sorted((name.lower(), value) for name, value in parse_qsl(parts.query, keep_blank_values=True))
    )
    return RequestKey(method.upper(), parts.netloc.lower(), _normalise_path(parts.path), query)


def request_body(request: Any) -> bytes | None:
    """The body an SDK request carries, from either azure-core request family."""
    # azure.core.rest.HttpRequest exposes .content; the legacy pipeline.transport.HttpRequest .body.
    for attr in ("content", "body"):
        value = getattr(request, attr, None)
        if value is None or callable(value):
            continue
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, dict | list):
            return json.dumps(value).encode("utf-8")
        return None  # streams, files, multipart: never sent by a read-only collector
    return None


def canonical_body(value: Any) -> str | None:
    """A body in one comparable form: canonical JSON text when it parses, the raw text otherwise."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        text: str = value
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return text
    canonical: str = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return canonical


# ----------------------------------------------------------------------------------- transport
@dataclass(frozen=True)
class Served:
    """One request the replay saw: what was asked, and which entry (if any) answered it."""

    method: str
    url: str
    status: int | None  # None when nothing matched
    entry: int | None  # index into the cassette's entries


class ReplayTransport(HttpTransport[Any, Any]):
    """An ``HttpTransport`` that answers from recorded entries and never opens a socket.

    ``sleep()`` records the durations azure-core's retry policy asks for and returns at once, so
    retry behaviour stays the SDK's own while costing no wall time. Thread-safe: collectors may
    share one replay across threads.
    """

    def __init__(self, source: Cassette | Iterable[Entry]) -> None:
        entries = source.entries if isinstance(source, Cassette) else tuple(source)
        self._entries: tuple[Entry, ...] = entries
        sources = source.sources if isinstance(source, Cassette) else ()
        self._sources: tuple[str, ...] = sources if len(sources) == len(entries) else ("",) * len(entries)
        self._keys = tuple(request_key(e.request_method, e.request_uri) for e in entries)
        self._bodies = tuple(
            canonical_body(e.request_body) if e.request_method.upper() in _BODY_METHODS else None
            for e in entries
        )
        self._used = [0] * len(entries)
        self._lock = threading.Lock()
        self._served: list[Served] = []
        self._sleeps: list[float] = []

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> ReplayTransport:
        return cls(load_cassette(path))

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._entries

    @property
    def served(self) -> list[Served]:
        """Every request seen so far, in the order they arrived."""
        with self._lock:
            return list(self._served)

    @property
    def sleeps(self) -> list[float]:
        """The back-off durations the SDKs asked for (none of them was actually waited)."""
        with self._lock:
            return list(self._sleeps)

    def unused(self) -> list[int]:
        """Indices of entries never served: a test can insist a cassette was fully exercised."""
        with self._lock:
            return [i for i, count in enumerate(self._used) if count == 0]

    def _find(self, key: RequestKey, body: str | None, channel: str) -> int | None:
        # Caller holds the lock.
        last_success: int | None = None
        first_unused: int | None = None
        for index, entry_key in enumerate(self._keys):
            if entry_key != key:
                continue
            wanted = self._bodies[index]
            if wanted is not None and wanted != body:
                continue
            if self._used[index] == 0:
                if self._sources[index] == channel:
                    return index
                if first_unused is None:
                    first_unused = index
            elif self._entries[index].status_code < 400:
                last_success = index
        return first_unused if first_unused is not None else last_success

    # -- HttpTransport -------------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> CannedResponse:
        method = str(request.method).upper()
        url = str(request.url)
        key = request_key(method, url)
        body = canonical_body(request_body(request)) if method in _BODY_METHODS else None
        channel = current_channel()
        with self._lock:
            index = self._find(key, body, channel)
            if index is None:
                self._served.append(Served(method, url, None, None))
            else:
                self._used[index] += 1
                self._served.append(Served(method, url, self._entries[index].status_code, index))
        if index is None:
            raise ReplayError(
                f"no recorded response for {method} {url}",
                hint="the cassette was recorded with different scope, window or SDK versions; re-record it",
            )
        entry = self._entries[index]
        headers = dict(entry.response_headers)
        if isinstance(entry.response_body, dict | list) and not any(
            name.lower() == "content-type" for name in headers
        ):
            # Hand-written entries often omit it; azure-core only parses JSON it is told is JSON.
            headers["Content-Type"] = "application/json; charset=utf-8"
        return CannedResponse(request, entry.status_code, headers, body_bytes(entry.response_body))

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> ReplayTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def sleep(self, duration: float) -> None:
        with self._lock:
            self._sleeps.append(float(duration))
