"""The release gate: why ``--fail-on SEVERITY`` / ``--strict`` make a command exit non-zero.

The package is always written first (the evidence of a failure is worth keeping); the CLI then maps
a non-empty list of reasons to ``ExitCode.FAILED``.

* ``fail_on``: every finding whose status is *fail* or *error* with a severity at or above it
  trips the gate, unless an active waiver covers it (``evidence.check.waivers``).
* ``strict``: every collection gap trips the gate, whatever its severity. (Gaps already fail EV-11
  at high severity, so ``--fail-on high`` catches them too; ``--strict`` is for a gate that should
  stop on missing evidence without gating on findings.)
"""

from __future__ import annotations

from collections.abc import Sequence

from evidence.check.interface import SEVERITY_ORDER, Severity, Status
from evidence.check.runner import ControlResult
from evidence.domain import Gap
from evidence.errors import UsageError

TRIPPING = (Status.FAIL, Status.ERROR)


def parse_severity(text: str) -> Severity:
    """A ``--fail-on`` value; a one-line UsageError names the accepted ones."""
    try:
        return Severity(text.strip().lower())
    except ValueError:
        raise UsageError(
            f"--fail-on {text!r} is not a severity", hint=f"use one of {', '.join(s.value for s in SEVERITY_ORDER)}"
        ) from None


def at_or_above(severity: Severity, threshold: Severity) -> bool:
    return SEVERITY_ORDER.index(severity) <= SEVERITY_ORDER.index(threshold)


def gate_failures(
    results: Sequence[ControlResult], gaps: Sequence[Gap], fail_on: Severity | None, strict: bool
) -> list[str]:
    """Reasons the gate trips, in report order; empty when it does not."""
    reasons: list[str] = []
    if fail_on is not None:
        for result in results:
            for finding in result.findings:
                if finding.status not in TRIPPING or finding.waiver is not None:
                    continue
                if at_or_above(finding.severity, fail_on):
                    reasons.append(
                        f"{finding.control_id} {finding.status.value} ({finding.severity.value}): "
                        f"{finding.subject}: {finding.message}"
                    )
    if strict:
        reasons.extend(f"gap: {gap.collector} {gap.scope}: {gap.message}" for gap in gaps)
    return reasons
