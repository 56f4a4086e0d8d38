"""The verification report: one frozen entry per check, PASSED / FAILED / INDETERMINATE.

Modelled on pyHanko's validation status (ETSI EN 319 102-1 vocabulary): a check either passed,
failed (the package is tampered with, invalid or untrusted), or could not be decided
(INDETERMINATE: e.g. the package is not signed, or a check could not run). Every check that ran is
listed, so an auditor sees what was verified and not only the verdict; ``raise_for_failure()``
keeps callers from forgetting to look.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from evidence.errors import EvidenceError, ExitCode, VerificationError

REPORT_FORMAT = "evidence-verification/v1"


class Status(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    INDETERMINATE = "INDETERMINATE"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``subject`` names what it was about (a file in the bag, a member).

    ``required=False`` marks an advisory result: an INDETERMINATE advisory check does not stop the
    package from passing (used for "package is not signed" when no trust anchor was asked for, so
    an integrity-only ``evidence verify`` can pass). A FAILED check always fails, advisory or not.
    """

    name: str
    status: Status
    reason: str
    subject: str | None = None
    required: bool = True

    @property
    def blocking(self) -> bool:
        """True when this result keeps the package from passing."""
        return self.status is Status.FAILED or (self.status is Status.INDETERMINATE and self.required)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "subject": self.subject,
            "required": self.required,
        }

    def to_text(self) -> str:
        about = f" {self.subject}" if self.subject is not None else ""
        advisory = " (advisory)" if not self.required and self.status is not Status.PASSED else ""
        return f"{self.status.value:<13} {self.name}{about}: {self.reason}{advisory}"


def passed(name: str, reason: str, subject: str | None = None) -> CheckResult:
    return CheckResult(name, Status.PASSED, reason, subject)


def failed(name: str, reason: str, subject: str | None = None) -> CheckResult:
    return CheckResult(name, Status.FAILED, reason, subject)


def indeterminate(name: str, reason: str, subject: str | None = None, *, required: bool = True) -> CheckResult:
    return CheckResult(name, Status.INDETERMINATE, reason, subject, required)


@dataclass(frozen=True)
class VerificationReport:
    """Everything one verification found. ``could_not_run`` means the package was never read."""

    package: str
    checks: tuple[CheckResult, ...]
    could_not_run: bool = False

    @property
    def passed(self) -> bool:
        """Every check passed (advisory INDETERMINATE results aside); never true for no checks."""
        return bool(self.checks) and not self.could_not_run and not any(c.blocking for c in self.checks)

    @property
    def status(self) -> Status:
        if any(c.status is Status.FAILED for c in self.checks):
            return Status.FAILED
        return Status.PASSED if self.passed else Status.INDETERMINATE

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The results that keep the package from passing, in report order."""
        return tuple(c for c in self.checks if c.blocking)

    def exit_code(self) -> ExitCode:
        """0 all passed; 1 tampered, invalid or untrusted; 3 the package could not be read."""
        if self.could_not_run:
            return ExitCode.CANNOT_RUN
        return ExitCode.OK if self.passed else ExitCode.FAILED

    def raise_for_failure(self) -> None:
        if self.passed:
            return
        first = self.failures[0] if self.failures else None
        message = f"{self.package}: " + (first.to_text().split(None, 1)[1] if first else "no checks ran")
        if len(self.failures) > 1:
            message += f" (and {len(self.failures) - 1} more)"
        if self.could_not_run:
            raise EvidenceError(message, hint="check the path and its permissions")
        raise VerificationError(message)

    def to_json(self) -> str:
        """Deterministic JSON: the same package and options give the same bytes."""
        doc = {
            "format": REPORT_FORMAT,
            "package": self.package,
            "status": self.status.value,
            "passed": self.passed,
            "exit_code": int(self.exit_code()),
            "checks": [c.to_json() for c in self.checks],
        }
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_text(self) -> str:
        lines = [c.to_text() for c in self.checks]
        counts = {s: sum(1 for c in self.checks if c.status is s) for s in Status}
        summary = ", ".join(f"{n} {s.value.lower()}" for s, n in counts.items() if n)
        verdict = "PASSED" if self.passed else self.status.value
        lines.append(f"{verdict}: {self.package} ({summary or 'no checks'})")
        return "\n".join(lines) + "\n"


def exit_code_for(report: VerificationReport) -> int:
    """The ``evidence verify`` exit code for ``report`` (see :meth:`VerificationReport.exit_code`)."""
    return int(report.exit_code())
