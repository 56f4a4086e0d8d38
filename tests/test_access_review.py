"""Access review: frozen population, changes in the quarter, diff, reviewer sheet and its checks."""

from __future__ import annotations

import csv
import io

import pytest

from evidence.check.access_review import (
    DECISION_COLUMNS,
    decisions_template,
    diff_population,
    load_decisions,
    review_changes,
    review_population,
)
from evidence.errors import UsageError
from tests.fixtures_records import WINDOW, assignment_id, sample_records


def completed(population: list[dict[str, object]], decide: str = "keep") -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(decisions_template(population))))
    for row in rows[1:]:
        row[4:] = [decide, "carol@contoso.com", "still needed", "2026-07-02"]
    return rows


def sheet(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_population_has_active_and_eligible_direct_and_inherited() -> None:
    population = review_population(sample_records())
    assert len(population) == 7
    assert {(r["kind"], r["inherited"]) for r in population} == {
        ("active", False),
        ("active", True),
        ("eligible", False),
    }


def test_changes_in_the_quarter() -> None:
    out = review_changes(sample_records(), WINDOW)
    created = [r["assignment"] for r in out if r["change"] == "created"]
    assert created == [assignment_id(5), assignment_id(6)]
    assert [r["change"] for r in out if r["assignment"] == assignment_id(5)] == ["created", "written"]


def test_diff_against_previous_package() -> None:
    current = sample_records()["role_assignments"]
    previous = [r for r in current if r["assignment_id"] != assignment_id(6)] + [{"assignment_id": "/old/assignment"}]
    diff = diff_population(current, previous)
    assert [r["assignment_id"] for r in diff["added"]] == [assignment_id(6)]
    assert [r["assignment_id"] for r in diff["removed"]] == ["/old/assignment"]


def test_template_has_one_blank_row_per_assignment() -> None:
    population = review_population(sample_records())
    rows = list(csv.reader(io.StringIO(decisions_template(population))))
    assert tuple(rows[0]) == DECISION_COLUMNS
    assert len(rows) == 8 and all(r[4:] == ["", "", "", ""] for r in rows[1:])


def test_completed_sheet_reports_pending_removals() -> None:
    population = review_population(sample_records())
    rows = completed(population)
    rows[1][4] = "Remove"
    decisions = load_decisions(sheet(rows), population)
    assert decisions.pending_removals == (rows[1][0],)
    assert len(decisions.rows) == 7


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows.pop(), "1 assignment(s) have no decision"),
        (
            lambda rows: rows.append(["/not/in/population", "x", "r", "s", "keep", "c", "j", "2026-07-02"]),
            "unknown assignment",
        ),
        (lambda rows: rows.append(list(rows[1])), "appears twice"),
        (lambda rows: rows[1].__setitem__(4, ""), "decision must be keep or remove"),
        (lambda rows: rows[1].__setitem__(5, ""), "reviewer is empty"),
        (lambda rows: rows[1].__setitem__(7, "soon"), "date must be YYYY-MM-DD"),
        (lambda rows: rows[0].__setitem__(4, "verdict"), "header must be"),
    ],
)
def test_incomplete_sheet_is_refused_with_one_line(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    population = review_population(sample_records())
    rows = completed(population)
    edit(rows)
    with pytest.raises(UsageError) as caught:
        load_decisions(sheet(rows), population)
    assert message in caught.value.diagnostics() and "\n" not in caught.value.diagnostics()
