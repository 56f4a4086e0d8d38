"""Evaluate controls, apply nothing implicit, and report per-control status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evidence.check.interface import CheckContext, Control, Finding, Severity, Status, control_status


def default_controls() -> list[Control]:
    from evidence.check.access import PrivilegedAccess, RoleChangesTraced
    from evidence.check.approval import ApprovalBeforeDeployment, ApprovalEvidence
    from evidence.check.changes import AllowedDeployers
    from evidence.check.completeness import EvidenceCompleteness
    from evidence.check.duties import SeparationOfDuties
    from evidence.check.monitoring import MonitoringEvidence
    from evidence.check.ownership import ModelOwnership
    from evidence.check.rollback import RollbackTarget
    from evidence.check.versioning import ExplicitModelVersion

    return [
        ApprovalEvidence(),
        ApprovalBeforeDeployment(),
        ModelOwnership(),
        ExplicitModelVersion(),
        RollbackTarget(),
        SeparationOfDuties(),
        AllowedDeployers(),
        PrivilegedAccess(),
        RoleChangesTraced(),
        MonitoringEvidence(),
        EvidenceCompleteness(),
    ]


@dataclass(frozen=True)
class ControlResult:
    control: Control
    status: Status
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        info = self.control.info
        return {
            "id": info.id,
            "title": info.title,
            "rationale": info.rationale,
            "frameworks": list(info.frameworks),
            "status": self.status.value,
        }


def run_checks(controls: Sequence[Control], ctx: CheckContext) -> list[ControlResult]:
    results = []
    for control in controls:
        try:
            findings = control.evaluate(ctx)
        except (KeyError, TypeError, ValueError) as exc:
            # A control that cannot read its records is an error finding, not a crash: the rest
            # of the package (and the other controls) are still worth having.
            findings = [
                Finding(
                    control.info.id,
                    Status.ERROR,
                    Severity.HIGH,
                    "control",
                    f"control could not be evaluated: {type(exc).__name__}: {exc}",
                )
            ]
        findings = sorted(findings, key=lambda f: (f.subject.lower(), f.status.value, f.message))
        results.append(ControlResult(control, control_status(findings), tuple(findings)))
    return results
