"""Writing collected evidence into the package tree, and reading it back.

Layout (relative to the bag root)::

    data/raw/<collector>/<nnnnn>.json   each response body as received (redacted where needed)
    data/records/<kind>.jsonl           normalised records, one JSON object per line, sorted
    data/records/<kind>.csv             the same rows for spreadsheets (nested values as JSON)
    data/collection.json                tool version, scope, window, every request, gaps, redactions

Records are always derived from the raw files *as stored* (``load_raw``), never from the
in-memory exchanges: the same function then re-derives them for ``evidence verify --rebuild``.

Streaming: ``RawStore`` is the evidence tap's sink during collection. Each response is redacted
and written to disk when it arrives (under a temporary name: arrival order depends on timing);
``finish()`` then names the files ``<nnnnn>`` per collector in sequential-run order (the tap's
``order_key``), so the package does not depend on concurrency. ``load_raw`` returns lazy
sequences that read and parse one file at a time, so neither writing nor normalising holds every
Activity Log page in memory.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, overload

from evidence.azure.redact import needs_redaction, redact_json, redact_text, redact_url
from evidence.azure.tap import Exchange
from evidence.collect.interface import Collector, RawResponse, Record
from evidence.domain import Provenance, Redaction

RAW_DIR = "data/raw"
RECORDS_DIR = "data/records"
COLLECTION_FILE = "data/collection.json"


def canonical_json(value: Any) -> str:
    """The one JSON encoding for files we write: sorted keys, UTF-8, no spaces."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def pretty_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


INCOMING_DIR = f"{RAW_DIR}/.incoming"


@dataclass(frozen=True)
class _Stored:
    """One exchange as the store keeps it until ``finish``: everything but the body."""

    order: tuple[tuple[int, ...], int, int]  # (task, task_seq, arrival seq): sequential-run order
    collector: str
    method: str
    url: str
    url_reasons: tuple[str, ...]
    api_version: str | None
    status: int
    request_id: str | None
    received_at: str
    incoming: str | None  # relative path of the body under INCOMING_DIR, None when empty
    extension: str
    body_redactions: tuple[tuple[str, str], ...]


class RawStore:
    """The tap's sink: writes each response body under ``root`` as it arrives (thread-safe)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._items: list[_Stored] = []
        self._finished = False
        self._incoming_ready = False  # mkdir once, not per response (a stat per file adds up)

    def __call__(self, exchange: Exchange) -> None:
        self.add(exchange)

    def add(self, exchange: Exchange) -> None:
        # Redaction and the write happen in the caller's (worker) thread, outside the lock.
        url, url_reasons = redact_url(exchange.url)
        data, extension, body_redactions = _redacted_body(exchange.body)
        incoming: str | None = None
        if data:
            incoming = f"{INCOMING_DIR}/{exchange.seq:07d}.{extension}"
            if not self._incoming_ready:
                (self._root / INCOMING_DIR).mkdir(parents=True, exist_ok=True)
                self._incoming_ready = True
            with open(self._root / incoming, "wb") as handle:
                handle.write(data)
        item = _Stored(
            order=(exchange.task, exchange.task_seq, exchange.seq),
            collector=exchange.collector,
            method=exchange.method,
            url=url,
            url_reasons=tuple(url_reasons),
            api_version=exchange.api_version,
            status=exchange.status,
            request_id=exchange.request_id,
            received_at=exchange.received_at,
            incoming=incoming,
            extension=extension,
            body_redactions=tuple(body_redactions),
        )
        with self._lock:
            if self._finished:
                raise RuntimeError("raw store already finished")
            self._items.append(item)

    def finish(self) -> tuple[list[Provenance], list[Redaction]]:
        """Give every body its final name, in sequential-run order; return provenance and redactions."""
        _last_parse.value = None  # an inline (one-worker) run's last page: nothing reads it now
        with self._lock:
            self._finished = True
            items = sorted(self._items, key=lambda i: i.order)
        counters: dict[str, int] = {}
        made: set[str] = set()
        provenance: list[Provenance] = []
        redactions: list[Redaction] = []
        for item in items:
            number = counters.get(item.collector, 0) + 1
            counters[item.collector] = number
            rel: str | None = None
            if item.incoming is not None:
                rel = f"{RAW_DIR}/{item.collector}/{number:05d}.{item.extension}"
                if item.collector not in made:
                    (self._root / RAW_DIR / item.collector).mkdir(parents=True, exist_ok=True)
                    made.add(item.collector)
                os.replace(self._root / item.incoming, self._root / rel)
                redactions.extend(Redaction(file=rel, pointer=p, reason=r) for p, r in item.body_redactions)
            redactions.extend(
                Redaction(file=rel or COLLECTION_FILE, pointer="url", reason=reason) for reason in item.url_reasons
            )
            provenance.append(
                Provenance(
                    collector=item.collector,
                    method=item.method,
                    url=item.url,
                    api_version=item.api_version,
                    status=item.status,
                    request_id=item.request_id,
                    received_at=item.received_at,
                    file=rel,
                )
            )
        incoming_dir = self._root / INCOMING_DIR
        if incoming_dir.is_dir():
            incoming_dir.rmdir()  # empty now; a leftover file would be a bug, and rmdir says so
        return provenance, redactions


def write_raw(exchanges: Iterable[Exchange], root: Path) -> tuple[list[Provenance], list[Redaction]]:
    """Store each exchange's body under ``data/raw`` and return provenance and redactions."""
    store = RawStore(root)
    for exchange in exchanges:
        store.add(exchange)
    return store.finish()


def _redacted_body(body: bytes) -> tuple[bytes, str, list[tuple[str, str]]]:
    if not body:
        return b"", "json", []
    try:
        parsed = parse_json(body)
    except ValueError:
        # Not JSON (an HTML error page, a truncated body): kept as text, secrets still removed.
        redacted_text, reasons = redact_text(body.decode("utf-8", errors="replace"))
        if reasons:
            return redacted_text.encode("utf-8"), "txt", [("", reason) for reason in reasons]
        return body, "txt", []
    _last_parse.value = (body, parsed)  # the pager in this thread may read the same page next
    if not needs_redaction(parsed):
        return body, "json", []  # byte for byte as received
    redacted, found = redact_json(parsed)
    if not found:
        return body, "json", []
    return canonical_json(redacted).encode("utf-8"), "json", found


#: The last body the store parsed in each thread, with its parse. The tap hands a response to the
#: store and then to the SDK pipeline in the same worker thread, and the Activity Log pager reads
#: the page's ``nextLink`` from the very same ``bytes`` object (``activity_log_pages``): parsing a
#: 200-event page once instead of twice was about a fifth of a large collection's CPU (issue 7).
#: Keyed by identity, so a hit is the same immutable bytes; taken once (the consumer owns it), and
#: one entry per thread at most.
_last_parse = threading.local()


def parse_json(data: bytes) -> Any:
    """JSON from bytes; orjson when installed (several times faster on Activity Log pages).

    orjson refuses a few things the standard library accepts (NaN, integers beyond 64 bits);
    those fall back to ``json.loads``, so what parses and how never depends on orjson being there.
    """
    last = getattr(_last_parse, "value", None)
    if last is not None and last[0] is data:
        _last_parse.value = None
        return last[1]
    try:
        return _loads(data)
    except ValueError:
        return json.loads(data)


def _stdlib_loads(data: bytes) -> Any:
    return json.loads(data)


try:  # optional speed-up; identical results for the JSON Azure sends
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = _stdlib_loads


class StoredResponses(Sequence[RawResponse]):
    """One collector's stored raw responses, read and parsed from disk one at a time.

    A ``Sequence`` so ``Collector.normalise`` can iterate it more than once (each pass reads the
    files again); nothing holds every page at once, so memory does not grow with the log.
    """

    def __init__(self, read: Callable[[Provenance], Any], requests: Sequence[Provenance]) -> None:
        self._read = read
        self._requests = tuple(requests)

    def __len__(self) -> int:
        return len(self._requests)

    @overload
    def __getitem__(self, index: int) -> RawResponse: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RawResponse]: ...

    def __getitem__(self, index: int | slice) -> RawResponse | Sequence[RawResponse]:
        if isinstance(index, slice):
            return StoredResponses(self._read, self._requests[index])
        prov = self._requests[index]
        return RawResponse(provenance=prov, body=self._read(prov))

    def __iter__(self) -> Iterator[RawResponse]:
        for prov in self._requests:
            yield RawResponse(provenance=prov, body=self._read(prov))


def load_raw(root: Path, requests: Sequence[Provenance]) -> dict[str, StoredResponses]:
    """The stored raw files, grouped by collector, in request order; bodies read lazily."""

    def read(prov: Provenance) -> Any:
        if prov.file and prov.file.endswith(".json"):
            return parse_json((root / prov.file).read_bytes())
        if prov.file:
            return (root / prov.file).read_text(encoding="utf-8")
        return None

    grouped: dict[str, list[Provenance]] = {}
    for prov in requests:
        grouped.setdefault(prov.collector, []).append(prov)
    return {collector: StoredResponses(read, provs) for collector, provs in grouped.items()}


def normalise_all(collectors: Sequence[Collector], raw: Mapping[str, Sequence[RawResponse]]) -> dict[str, list[Record]]:
    records: dict[str, list[Record]] = {}
    for collector in collectors:
        produced = collector.normalise(raw.get(collector.name, ()))
        for kind in collector.record_kinds:
            records[kind] = list(produced.get(kind, []))
    return records


def write_records(records: Mapping[str, Sequence[Record]], root: Path) -> None:
    """One ``.jsonl`` and one ``.csv`` per kind, written row by row (never the whole file in memory)."""
    directory = root / RECORDS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for kind, rows in sorted(records.items()):
        with (directory / f"{kind}.jsonl").open("w", encoding="utf-8", newline="\n") as jsonl:
            for row in rows:
                jsonl.write(canonical_json(row) + "\n")
        with (directory / f"{kind}.csv").open("w", encoding="utf-8", newline="") as out:
            _write_csv(rows, out)


def _write_csv(rows: Sequence[Record], out: TextIO) -> None:
    columns: dict[str, None] = {}  # first-seen order
    for row in rows:
        for key in row:
            columns.setdefault(key)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return canonical_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    # Spreadsheet formula injection: a tag value like "=HYPERLINK(...)" must stay text.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


class StoredRecords(Sequence[Record]):
    """One kind's rows as written in ``data/records/<kind>.jsonl``, parsed one line at a time.

    For the report of a package being built (``derive(write_to=...)``): the rows it reads are the
    rows the package holds, and a large tenant's 150,000 Activity Log rows are not kept in memory
    while WeasyPrint lays out the report (issue 7). Each pass over the rows reads the file again;
    only the byte offset of each line is kept, for indexing. A row parsed back from the file is
    equal to the one written (canonical JSON: the same keys, values and nesting).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        offsets = array("q")
        position = 0
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    offsets.append(position)
                position += len(line)
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | Sequence[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offset = self._offsets[index]  # IndexError as a list would raise it
        with self._path.open("rb") as handle:
            handle.seek(offset)
            return self._row(handle.readline())

    def __iter__(self) -> Iterator[Record]:
        with self._path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield self._row(line)

    @staticmethod
    def _row(line: bytes) -> Record:
        row: Record = parse_json(line)  # write_records wrote it: one JSON object per line
        return row


def read_records(root: Path, kind: str) -> list[Record]:
    path = root / RECORDS_DIR / f"{kind}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
