"""Waivers: accepted exceptions to a control, with owner, approver, ticket and expiry.

A waivers file (``[policy] waivers`` in evidence.toml) is TOML::

    [[waiver]]
    control = "EV-07"
    subject = "/subscriptions/.../onlineEndpoints/churn-endpoint/deployments/green"
    reason = "Emergency fix deployed by hand during incident INC-4411"
    owner = "alice@contoso.com"
    approver = "carol@contoso.com"
    ticket = "CHG-1042"
    expiry = 2026-09-30          # a TOML date (or "2026-09-30"); the waiver holds through that day

Decision: a waived finding **keeps its status** (``fail``) and carries the waiver
(``Finding.waiver``), so the evidence and the control's status stay visible to the auditor, who
sees an accepted exception rather than a pass. Waived findings do not trip the gate
(``gate_failures``). No new status was added to the interface for this.

A waiver applies only to a *fail* of the same control and the same subject (ARM IDs compare
case-insensitively; no wildcards: an exception should be as narrow as the finding). It does not
apply when it has expired (checked against the collection date, not the wall clock, so a package
re-rendered later says the same), or when its owner also approved it. Every waiver is reported in
the ``EV-W1`` result: applied, expired, self-approved, or matching no failing finding.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

from evidence.check.interface import (
    CheckContext,
    Control,
    ControlInfo,
    EvidenceRef,
    Finding,
    Severity,
    Status,
    control_status,
)
from evidence.check.runner import ControlResult
from evidence.errors import ConfigError

FIELDS = ("control", "subject", "reason", "owner", "approver", "ticket", "expiry")
WAIVERS_FILE = "data/inputs/waivers.toml"  # where the pipeline copies the file into the package


@dataclass(frozen=True)
class Waiver:
    control: str
    subject: str
    reason: str
    owner: str
    approver: str
    ticket: str
    expiry: date

    def active(self, today: date) -> bool:
        return today <= self.expiry

    @property
    def self_approved(self) -> bool:
        return self.owner.strip().lower() == self.approver.strip().lower()

    def to_json(self) -> dict[str, str]:
        return {
            "control": self.control,
            "subject": self.subject,
            "reason": self.reason,
            "owner": self.owner,
            "approver": self.approver,
            "ticket": self.ticket,
            "expiry": self.expiry.isoformat(),
        }


def _expiry(where: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expiry must be a date such as 2026-09-30")


def parse_waivers(data: Mapping[str, Any], source: str) -> tuple[Waiver, ...]:
    unknown = sorted(set(data) - {"waiver"})
    if unknown:
        raise ConfigError(f"{source}: unknown table {unknown[0]!r}", hint="waivers are [[waiver]] tables")
    entries = data.get("waiver", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: waiver must be an array of tables ([[waiver]])")
    waivers = []
    for index, entry in enumerate(entries, start=1):
        where = f"{source}: waiver {index}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        extra = sorted(set(entry) - set(FIELDS))
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}", hint=f"known keys: {', '.join(FIELDS)}")
        missing = [k for k in FIELDS if k not in entry]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        values: dict[str, str] = {}
        for key in FIELDS[:-1]:
            value = entry[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: {key} must be a non-empty string")
            values[key] = value.strip()
        waivers.append(Waiver(**values, expiry=_expiry(where, entry["expiry"])))
    return tuple(waivers)


def load_waivers(path: Path) -> tuple[Waiver, ...]:
    """Read and check a waivers file; any problem is a one-line ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"waivers file {path} does not exist", hint="fix [policy] waivers in evidence.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"waivers file {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_waivers(data, str(path))


class WaiverRegister(Control):
    """Not evaluated against records: ``apply_waivers`` fills its findings."""

    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-W1",
        title="Waivers are current, independently approved and in use",
        rationale=(
            "An exception is acceptable only while it is owned, approved by someone else, tied to a ticket and "
            "not expired; an expired or unused waiver is a risk decision nobody is renewing."
        ),
        frameworks=("SOC 2 CC3.4", "SOC 2 CC9.1", "ISO/IEC 27001:2022 A.5.1"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        return []


def _matches(waiver: Waiver, finding: Finding) -> bool:
    return (
        finding.status is Status.FAIL
        and waiver.control.upper() == finding.control_id.upper()
        and waiver.subject.strip().rstrip("/").lower() == finding.subject.strip().rstrip("/").lower()
    )


def apply_waivers(results: Sequence[ControlResult], waivers: Sequence[Waiver], today: date) -> list[ControlResult]:
    """Results with active waivers attached to the fails they cover, plus the EV-W1 register.

    Without waivers the results come back unchanged and no register is added.
    """
    if not waivers:
        return list(results)
    register = WaiverRegister()
    used: set[int] = set()
    out: list[ControlResult] = []
    for result in results:
        findings = []
        for finding in result.findings:
            for index, waiver in enumerate(waivers):
                if waiver.active(today) and not waiver.self_approved and _matches(waiver, finding):
                    used.add(index)
                    finding = replace(finding, waiver={**waiver.to_json(), "state": "active"})
                    break
            findings.append(finding)
        out.append(ControlResult(result.control, result.status, tuple(findings)))
    notes: list[Finding] = []
    for index, waiver in enumerate(waivers):
        evidence = EvidenceRef(WAIVERS_FILE, f"/waiver/{index}")
        label = f"waiver {waiver.ticket} for {waiver.control}"
        if not waiver.active(today):
            notes.append(
                register.finding(
                    Status.FAIL,
                    Severity.MEDIUM,
                    waiver.subject,
                    f"{label} expired on {waiver.expiry.isoformat()} and was not applied",
                    evidence,
                )
            )
        elif waiver.self_approved:
            notes.append(
                register.finding(
                    Status.FAIL,
                    Severity.MEDIUM,
                    waiver.subject,
                    f"{label} is approved by its own owner ({waiver.owner}) and was not applied",
                    evidence,
                )
            )
        elif index in used:
            notes.append(
                register.finding(
                    Status.PASS,
                    Severity.INFO,
                    waiver.subject,
                    f"{label} applied until {waiver.expiry.isoformat()} (owner {waiver.owner}, approver "
                    f"{waiver.approver}): {waiver.reason}",
                    evidence,
                )
            )
        else:
            notes.append(
                register.finding(
                    Status.MANUAL_REVIEW,
                    Severity.LOW,
                    waiver.subject,
                    f"{label} matches no failing finding; remove it if the exception has ended",
                    evidence,
                )
            )
    notes.sort(key=lambda f: (f.subject.lower(), f.status.value, f.message))
    out.append(ControlResult(register, control_status(notes), tuple(notes)))
    return out
