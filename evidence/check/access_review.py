"""The quarterly access review (``--kind access-review``): population, changes, diff, decisions.

* ``review_population``: every role assignment (active) and PIM eligibility (eligible) as collected,
  frozen at collection time, one row per workspace (direct and inherited kept apart).
* ``review_changes``: every role assignment created, changed or removed in the window.
* ``diff_population``: what was added and removed since the previous package's population
  (the lead loads the previous package's ``role_assignments.jsonl`` rows and passes them in).
* ``decisions_template``: the reviewer sheet (CSV), one row per distinct assignment.
* ``load_decisions``: a completed sheet, refused with a one-line UsageError when a row is missing,
  unknown, duplicated or undecided; the accepted sheet reports removals still pending (decided
  "remove" while the assignment is still in the population).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from evidence.check.interface import Record
from evidence.check.population import (
    ROLE_ASSIGNMENT_DELETE,
    ROLE_ASSIGNMENT_WRITE,
    changes,
    lower,
    when,
)
from evidence.clock import isoformat
from evidence.domain import Window
from evidence.errors import UsageError

DECISION_COLUMNS = ("assignment", "principal", "role", "scope", "decision", "reviewer", "justification", "date")
DECISIONS = ("keep", "remove")


def review_population(records: Mapping[str, Sequence[Record]]) -> list[Record]:
    """Active and eligible assignments per workspace, sorted; the population the review freezes."""
    rows: list[Record] = []
    for kind, source, key in (
        ("active", "role_assignments", "assignment_id"),
        ("eligible", "role_eligibility", "eligibility_id"),
    ):
        for row in records.get(source, ()):
            rows.append(
                {
                    "workspace_id": row.get("workspace_id"),
                    "assignment": row.get(key),
                    "kind": kind,
                    "inherited": bool(row.get("inherited")),
                    "scope": row.get("scope"),
                    "principal_id": row.get("principal_id"),
                    "principal_type": row.get("principal_type"),
                    "principal_name": row.get("principal_name"),
                    "role": row.get("role_name") or lower(row.get("role_definition_id")).rsplit("/", 1)[-1],
                    "created_on": row.get("created_on"),
                }
            )
    rows.sort(key=lambda r: (lower(r["workspace_id"]), r["inherited"], r["kind"], lower(r["assignment"])))
    return rows


def review_changes(records: Mapping[str, Sequence[Record]], window: Window) -> list[Record]:
    """Assignments created in the window (state) and role assignment writes/deletes (Activity Log)."""
    out: list[Record] = []
    seen: set[str] = set()
    for row in records.get("role_assignments", ()):
        created = when(row.get("created_on"))
        key = lower(row.get("assignment_id"))
        if created and window.start <= created < window.end and key not in seen:
            seen.add(key)
            out.append(
                {
                    "at": isoformat(created),
                    "change": "created",
                    "assignment": row.get("assignment_id"),
                    "by": row.get("created_by"),
                    "source": "role_assignments",
                }
            )
    for change in changes(records.get("activity_events", ()), (ROLE_ASSIGNMENT_WRITE, ROLE_ASSIGNMENT_DELETE)):
        if window.start <= change.started < window.end:
            verb = "removed" if change.operation == ROLE_ASSIGNMENT_DELETE else "written"
            out.append(
                {
                    "at": isoformat(change.completed),
                    "change": verb,
                    "assignment": change.resource_id,
                    "by": change.caller,
                    "source": f"activity_events:{change.event_ids[0]}",
                }
            )
    out.sort(key=lambda r: (r["at"], lower(r["assignment"]), r["change"]))
    return out


def diff_population(current: Sequence[Record], previous: Sequence[Record]) -> dict[str, list[Record]]:
    """Added and removed assignments since the previous review (role_assignments rows of both)."""

    def keyed(rows: Sequence[Record]) -> dict[str, Record]:
        return {lower(r.get("assignment_id") or r.get("assignment")): r for r in rows}

    now, before = keyed(current), keyed(previous)
    return {
        "added": [now[k] for k in sorted(set(now) - set(before))],
        "removed": [before[k] for k in sorted(set(before) - set(now))],
    }


def _distinct(population: Sequence[Record]) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for row in population:
        out.setdefault(lower(row["assignment"]), row)
    return out


def decisions_template(population: Sequence[Record]) -> str:
    """The reviewer sheet: one row per distinct assignment, decision columns left blank."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DECISION_COLUMNS)
    distinct = _distinct(population)
    for key in sorted(distinct):
        row = distinct[key]
        principal = row.get("principal_name") or f"{row.get('principal_type')} {row.get('principal_id')}"
        writer.writerow([row["assignment"], principal, row["role"], row["scope"], "", "", "", ""])
    return out.getvalue()


@dataclass(frozen=True)
class Decisions:
    rows: tuple[dict[str, str], ...]
    pending_removals: tuple[str, ...]  # decided "remove", still assigned at collection


def load_decisions(text: str, population: Sequence[Record], source: str = "decisions") -> Decisions:
    """Check a completed sheet against the frozen population; refuse it with one line if incomplete."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != DECISION_COLUMNS:
        raise UsageError(
            f"{source}: header must be {','.join(DECISION_COLUMNS)}", hint="start from the template in the package"
        )
    expected = _distinct(population)
    seen: dict[str, dict[str, str]] = {}
    for line, row in enumerate(reader, start=2):
        key = lower(row.get("assignment"))
        if key not in expected:
            raise UsageError(
                f"{source} line {line}: unknown assignment {row.get('assignment')!r}",
                hint="it is not in this review's population",
            )
        if key in seen:
            raise UsageError(f"{source} line {line}: assignment {row.get('assignment')} appears twice")
        decision = (row.get("decision") or "").strip().lower()
        if decision not in DECISIONS:
            raise UsageError(f"{source} line {line}: decision must be keep or remove, got {row.get('decision')!r}")
        if not (row.get("reviewer") or "").strip():
            raise UsageError(f"{source} line {line}: reviewer is empty")
        try:
            date.fromisoformat((row.get("date") or "").strip())
        except ValueError:
            raise UsageError(f"{source} line {line}: date must be YYYY-MM-DD, got {row.get('date')!r}") from None
        seen[key] = {c: (row.get(c) or "").strip() for c in DECISION_COLUMNS} | {"decision": decision}
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise UsageError(
            f"{source}: {len(missing)} assignment(s) have no decision (first: {expected[missing[0]]['assignment']})",
            hint="every assignment in the population needs a row",
        )
    rows = tuple(seen[k] for k in sorted(seen))
    pending = tuple(r["assignment"] for r in rows if r["decision"] == "remove")
    return Decisions(rows, pending)
