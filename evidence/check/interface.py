"""The check stage's one interface: a ``Control`` turns records into findings.

Statuses are honest (STYLE.md §3 and issue #4): a control with nothing to look at says
*not assessed* and why, never *pass*. Each finding names its subject (an ARM ID), its severity,
and the evidence behind it (a file in the package and a record key or JSON pointer), so an auditor
can walk from the report to the raw response.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from evidence.config import PolicyConfig
from evidence.domain import Gap, Scope, Window

Record = dict[str, Any]


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    MANUAL_REVIEW = "manual_review"
    NOT_ASSESSED = "not_assessed"
    ERROR = "error"


#: Worst first: a control's status is the worst status among its findings.
STATUS_ORDER = (Status.ERROR, Status.FAIL, Status.MANUAL_REVIEW, Status.NOT_ASSESSED, Status.PASS)


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


SEVERITY_ORDER = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


@dataclass(frozen=True)
class EvidenceRef:
    file: str  # path in the package, e.g. data/records/model_versions.jsonl
    pointer: str  # record key (e.g. "asset_id=/subscriptions/...") or an RFC 6901 JSON pointer

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "pointer": self.pointer}


@dataclass(frozen=True)
class Finding:
    control_id: str
    status: Status
    severity: Severity
    subject: str
    message: str
    evidence: tuple[EvidenceRef, ...] = ()
    waiver: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "control_id": self.control_id,
            "status": self.status.value,
            "severity": self.severity.value,
            "subject": self.subject,
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
            "waiver": dict(self.waiver) if self.waiver else None,
        }


@dataclass(frozen=True)
class ControlInfo:
    id: str  # stable, e.g. "EV-11"
    title: str
    rationale: str
    frameworks: tuple[str, ...] = ()  # e.g. ("SOC 2 CC8.1", "ISO/IEC 27001:2022 A.8.32")


@dataclass(frozen=True)
class CheckContext:
    """Everything a control may look at. Controls never call Azure."""

    records: Mapping[str, Sequence[Record]]
    gaps: Sequence[Gap]
    scope: Scope
    window: Window
    collected_at: datetime
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    kind: str = "audit"  # audit | release | access-review
    release_model: str | None = None
    release_version: str | None = None

    def rows(self, kind: str) -> Sequence[Record]:
        return self.records.get(kind, ())


class Control(ABC):
    info: ClassVar[ControlInfo]

    @abstractmethod
    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        """Findings for every subject in the population; an empty population gets NOT_ASSESSED."""

    # Helpers so every control words the common cases the same way.
    def finding(
        self,
        status: Status,
        severity: Severity,
        subject: str,
        message: str,
        *evidence: EvidenceRef,
    ) -> Finding:
        return Finding(self.info.id, status, severity, subject, message, tuple(evidence))

    def not_assessed(self, subject: str, reason: str, *evidence: EvidenceRef) -> Finding:
        return self.finding(Status.NOT_ASSESSED, Severity.MEDIUM, subject, reason, *evidence)


def control_status(findings: Sequence[Finding]) -> Status:
    if not findings:
        return Status.NOT_ASSESSED
    present = {f.status for f in findings}
    return next(s for s in STATUS_ORDER if s in present)
