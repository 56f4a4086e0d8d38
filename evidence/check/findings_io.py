"""``data/findings.json`` and ``data/findings.csv``: every control, its status and its findings.

Deterministic: controls in run order, findings in the runner's order, keys sorted, no timestamps
of their own (the package's collection.json carries those). The CSV is for spreadsheets: one row
per finding, and cells that a spreadsheet would run as a formula are written as text.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evidence.check.interface import STATUS_ORDER
from evidence.check.runner import ControlResult
from evidence.collect.store import pretty_json

FINDINGS_JSON = "data/findings.json"
FINDINGS_CSV = "data/findings.csv"
FORMAT = "evidence-findings/v1"

CSV_COLUMNS = (
    "control_id",
    "control_title",
    "control_status",
    "status",
    "severity",
    "subject",
    "message",
    "evidence",
    "waiver_ticket",
    "waiver_expiry",
    "waiver_approver",
)


def findings_document(results: Sequence[ControlResult]) -> dict[str, Any]:
    """The findings.json document (also handy for the report renderer)."""
    control_counts = Counter(r.status.value for r in results)
    finding_counts = Counter(f.status.value for r in results for f in r.findings)
    return {
        "format": FORMAT,
        "summary": {
            "controls": {s.value: control_counts.get(s.value, 0) for s in STATUS_ORDER},
            "findings": {s.value: finding_counts.get(s.value, 0) for s in STATUS_ORDER},
            "waived": sum(1 for r in results for f in r.findings if f.waiver),
        },
        "controls": [{**r.to_json(), "findings": [f.to_json() for f in r.findings]} for r in results],
    }


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a subject or tag value like "=HYPERLINK(...)" must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def findings_csv(results: Sequence[ControlResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in results:
        info = result.control.info
        for finding in result.findings:
            waiver = finding.waiver or {}
            row = (
                info.id,
                info.title,
                result.status.value,
                finding.status.value,
                finding.severity.value,
                finding.subject,
                finding.message,
                "; ".join(f"{e.file}#{e.pointer}" for e in finding.evidence),
                waiver.get("ticket"),
                waiver.get("expiry"),
                waiver.get("approver"),
            )
            writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def write_findings(results: Sequence[ControlResult], root: Path) -> list[str]:
    """Write both files under ``root`` (the bag root); returns their package-relative paths."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / FINDINGS_JSON).write_text(pretty_json(findings_document(results)), encoding="utf-8", newline="\n")
    (root / FINDINGS_CSV).write_text(findings_csv(results), encoding="utf-8", newline="")
    return [FINDINGS_CSV, FINDINGS_JSON]
