"""Waivers: parsing, applying to a matching fail, expiry, self-approval, unused, and the gate."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from evidence.check.gate import gate_failures
from evidence.check.interface import Severity, Status
from evidence.check.runner import default_controls, run_checks
from evidence.check.waivers import Waiver, apply_waivers, load_waivers
from evidence.errors import ConfigError
from tests.fixtures_records import CHURN_GREEN, context

TODAY = date(2026, 7, 1)

GOOD = f"""
[[waiver]]
control = "EV-07"
subject = "{CHURN_GREEN.upper()}"
reason = "Emergency fix deployed by hand during INC-4411"
owner = "alice@contoso.com"
approver = "carol@contoso.com"
ticket = "CHG-1042"
expiry = 2026-09-30
"""


def waiver(**changes: object) -> Waiver:
    values: dict[str, object] = {
        "control": "EV-07",
        "subject": CHURN_GREEN,
        "reason": "incident",
        "owner": "alice@contoso.com",
        "approver": "carol@contoso.com",
        "ticket": "CHG-1042",
        "expiry": date(2026, 9, 30),
    }
    values.update(changes)
    return Waiver(**values)  # type: ignore[arg-type]


def results():  # type: ignore[no-untyped-def]
    return run_checks(default_controls(), context())


def test_load_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text(GOOD, encoding="utf-8")
    [loaded] = load_waivers(path)
    assert loaded.control == "EV-07" and loaded.expiry == date(2026, 9, 30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[waiver]]\ncontrol = 'EV-07'\n", "missing subject, reason, owner, approver, ticket, expiry"),
        (GOOD.replace("expiry = 2026-09-30", 'expiry = "soon"'), "expiry must be a date"),
        (GOOD + "colour = 'red'\n", "unknown key 'colour'"),
        (GOOD.replace('ticket = "CHG-1042"', 'ticket = ""'), "ticket must be a non-empty string"),
        ("waiver = 3\n", "array of tables"),
        ("[[waiver\n", "not valid TOML"),
        ("[exception]\n", "unknown table 'exception'"),
    ],
)
def test_invalid_file_is_one_line_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_waivers(path)
    assert message in caught.value.diagnostics()
    assert "\n" not in caught.value.diagnostics()


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_waivers(tmp_path / "nope.toml")


def test_active_waiver_is_attached_fail_stays_visible_and_gate_ignores_it() -> None:
    out = apply_waivers(results(), [waiver()], TODAY)
    ev07 = next(r for r in out if r.control.info.id == "EV-07")
    [waived] = [f for f in ev07.findings if f.subject == CHURN_GREEN]
    assert waived.status is Status.FAIL and ev07.status is Status.FAIL  # evidence stays visible
    assert waived.waiver is not None and waived.waiver["ticket"] == "CHG-1042"
    register = out[-1]
    assert register.control.info.id == "EV-W1" and register.status is Status.PASS
    reasons = gate_failures(out, [], Severity.HIGH, strict=False)
    assert not any(CHURN_GREEN in r and r.startswith("EV-07") for r in reasons)
    assert any(r.startswith("EV-01") for r in reasons)  # unwaived fails still trip


def test_expired_waiver_does_not_apply_and_is_reported() -> None:
    out = apply_waivers(results(), [waiver(expiry=date(2026, 6, 30))], TODAY)
    ev07 = next(r for r in out if r.control.info.id == "EV-07")
    assert all(f.waiver is None for f in ev07.findings)
    [note] = out[-1].findings
    assert note.status is Status.FAIL and "expired on 2026-06-30" in note.message
    assert any(r.startswith("EV-07") for r in gate_failures(out, [], Severity.HIGH, strict=False))


def test_waiver_holds_through_its_expiry_day() -> None:
    out = apply_waivers(results(), [waiver(expiry=TODAY)], TODAY)
    assert out[-1].status is Status.PASS


def test_self_approved_waiver_does_not_apply() -> None:
    out = apply_waivers(results(), [waiver(approver="Alice@Contoso.com")], TODAY)
    assert out[-1].status is Status.FAIL and "own owner" in out[-1].findings[0].message


def test_unused_waiver_needs_review_and_waives_nothing() -> None:
    out = apply_waivers(results(), [waiver(control="EV-03")], TODAY)
    assert out[-1].status is Status.MANUAL_REVIEW
    assert all(f.waiver is None for r in out for f in r.findings)


def test_a_waiver_never_touches_a_pass() -> None:
    out = apply_waivers(results(), [waiver(control="EV-04", subject=CHURN_GREEN)], TODAY)
    assert all(f.waiver is None for r in out for f in r.findings)


def test_no_waivers_no_register() -> None:
    base = results()
    assert apply_waivers(base, [], TODAY) == base
