"""Writing collected evidence into the package tree, and reading it back.

Layout (relative to the bag root)::

    data/raw/<collector>/<nnnnn>.json   each response body as received (redacted where needed)
    data/records/<kind>.jsonl           normalised records, one JSON object per line, sorted
    data/records/<kind>.csv             the same rows for spreadsheets (nested values as JSON)
    data/collection.json                tool version, scope, window, every request, gaps, redactions

Records are always derived from the raw files *as stored* (``load_raw``), never from the
in-memory exchanges: the same function then re-derives them for ``evidence verify --rebuild``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evidence.azure.redact import redact_json, redact_text, redact_url
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


def write_raw(exchanges: Iterable[Exchange], root: Path) -> tuple[list[Provenance], list[Redaction]]:
    """Store each exchange's body under ``data/raw`` and return provenance and redactions."""
    counters: dict[str, int] = {}
    provenance: list[Provenance] = []
    redactions: list[Redaction] = []
    for exchange in sorted(exchanges, key=lambda e: e.seq):
        number = counters.get(exchange.collector, 0) + 1
        counters[exchange.collector] = number
        url, url_reasons = redact_url(exchange.url)
        data, extension, body_redactions = _redacted_body(exchange.body)
        rel: str | None = None
        if data:
            rel = f"{RAW_DIR}/{exchange.collector}/{number:05d}.{extension}"
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            redactions.extend(Redaction(file=rel, pointer=p, reason=r) for p, r in body_redactions)
        redactions.extend(
            Redaction(file=rel or COLLECTION_FILE, pointer="url", reason=reason) for reason in url_reasons
        )
        provenance.append(
            Provenance(
                collector=exchange.collector,
                method=exchange.method,
                url=url,
                api_version=exchange.api_version,
                status=exchange.status,
                request_id=exchange.request_id,
                received_at=exchange.received_at,
                file=rel,
            )
        )
    return provenance, redactions


def _redacted_body(body: bytes) -> tuple[bytes, str, list[tuple[str, str]]]:
    if not body:
        return b"", "json", []
    try:
        parsed = json.loads(body)
    except ValueError:
        # Not JSON (an HTML error page, a truncated body): kept as text, secrets still removed.
        redacted_text, reasons = redact_text(body.decode("utf-8", errors="replace"))
        if reasons:
            return redacted_text.encode("utf-8"), "txt", [("", reason) for reason in reasons]
        return body, "txt", []
    redacted, found = redact_json(parsed)
    if not found:
        return body, "json", []  # byte for byte as received
    return canonical_json(redacted).encode("utf-8"), "json", found


def load_raw(root: Path, requests: Sequence[Provenance]) -> dict[str, list[RawResponse]]:
    """Read the stored raw files back, grouped by collector, in request order."""
    grouped: dict[str, list[RawResponse]] = {}
    for prov in requests:
        body: Any = None
        if prov.file and prov.file.endswith(".json"):
            body = json.loads((root / prov.file).read_bytes())
        elif prov.file:
            body = (root / prov.file).read_text(encoding="utf-8")
        grouped.setdefault(prov.collector, []).append(RawResponse(provenance=prov, body=body))
    return grouped


def normalise_all(collectors: Sequence[Collector], raw: Mapping[str, Sequence[RawResponse]]) -> dict[str, list[Record]]:
    records: dict[str, list[Record]] = {}
    for collector in collectors:
        produced = collector.normalise(raw.get(collector.name, ()))
        for kind in collector.record_kinds:
            records[kind] = list(produced.get(kind, []))
    return records


def write_records(records: Mapping[str, Sequence[Record]], root: Path) -> None:
    directory = root / RECORDS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for kind, rows in sorted(records.items()):
        lines = "".join(canonical_json(row) + "\n" for row in rows)
        (directory / f"{kind}.jsonl").write_text(lines, encoding="utf-8", newline="\n")
        (directory / f"{kind}.csv").write_text(_csv(rows), encoding="utf-8", newline="")


def _csv(rows: Sequence[Record]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


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


def read_records(root: Path, kind: str) -> list[Record]:
    path = root / RECORDS_DIR / f"{kind}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
