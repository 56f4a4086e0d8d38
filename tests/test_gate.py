"""The --fail-on/--strict gate, and the findings.json / findings.csv writers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from evidence.check.findings_io import FINDINGS_CSV, FINDINGS_JSON, findings_csv, write_findings
from evidence.check.gate import gate_failures, parse_severity
from evidence.check.interface import Severity
from evidence.check.runner import default_controls, run_checks
from evidence.errors import UsageError
from tests.fixtures_records import clean_records, context, gap


def sample():  # type: ignore[no-untyped-def]
    return run_checks(default_controls(), context())


def test_no_threshold_no_strict_never_trips() -> None:
    assert gate_failures(sample(), [gap("metrics")], None, strict=False) == []


def test_fail_on_high_lists_each_high_fail() -> None:
    reasons = gate_failures(sample(), [], Severity.HIGH, strict=False)
    assert [r.split(" ", 1)[0] for r in reasons] == ["EV-01", "EV-07", "EV-08", "EV-09"]
    assert all(" fail (high): " in r for r in reasons)


def test_fail_on_medium_adds_the_medium_fail() -> None:
    reasons = gate_failures(sample(), [], Severity.MEDIUM, strict=False)
    assert len(reasons) == 5 and any("no longer resolves" in r for r in reasons)


def test_clean_passes_any_threshold() -> None:
    results = run_checks(default_controls(), context(clean_records()))
    assert gate_failures(results, [], Severity.INFO, strict=True) == []


def test_strict_trips_on_any_gap() -> None:
    results = run_checks(default_controls(), context(clean_records(), gaps=[gap("metrics")]))
    assert gate_failures(results, [gap("metrics")], None, strict=True) == [
        f"gap: metrics {gap('metrics').scope}: the client does not have authorization"
    ]
    # without --strict a gap still trips --fail-on high, through EV-11
    assert [r[:5] for r in gate_failures(results, [gap("metrics")], Severity.HIGH, strict=False)] == ["EV-11"]


def test_not_assessed_does_not_trip() -> None:
    results = run_checks(default_controls(), context({}))
    assert gate_failures(results, [], Severity.INFO, strict=False) == []


@pytest.mark.parametrize("severity", list(Severity))
def test_parse_severity_accepts_every_member(severity: Severity) -> None:
    assert parse_severity(severity.value.upper()) is severity


def test_parse_severity_refuses_others() -> None:
    with pytest.raises(UsageError) as caught:
        parse_severity("critical")
    assert caught.value.diagnostics() == "--fail-on 'critical' is not a severity (use one of high, medium, low, info)"


# ----------------------------------------------------------------------------- findings output
def test_write_findings_is_deterministic_and_complete(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert write_findings(sample(), first) == [FINDINGS_CSV, FINDINGS_JSON]
    write_findings(sample(), second)
    for name in (FINDINGS_JSON, FINDINGS_CSV):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    doc = json.loads((first / FINDINGS_JSON).read_text(encoding="utf-8"))
    assert doc["format"] == "evidence-findings/v1"
    assert [c["id"] for c in doc["controls"]] == [f"EV-{n:02d}" for n in range(1, 12)]
    assert doc["summary"]["controls"]["fail"] == 4
    assert doc["summary"]["findings"]["fail"] == 5
    ev01 = doc["controls"][0]
    assert ev01["status"] == "fail" and ev01["frameworks"] and ev01["findings"][0]["evidence"]
    rows = list(csv.DictReader(io.StringIO((first / FINDINGS_CSV).read_text(encoding="utf-8"))))
    assert len(rows) == sum(len(c["findings"]) for c in doc["controls"])
    assert {r["status"] for r in rows} >= {"fail", "pass"}


def test_csv_cells_cannot_become_formulas() -> None:
    results = sample()
    text = findings_csv(results)
    assert "\n=" not in text and ",=" not in text
    records = clean_records()
    records["deployments"][0]["deployment_id"] = '=HYPERLINK("x")'
    text = findings_csv(run_checks(default_controls(), context(records)))
    assert "'=HYPERLINK" in text
