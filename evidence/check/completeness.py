"""EV-11 Evidence completeness: no collection gaps, and the window inside what sources retain."""

from __future__ import annotations

from typing import ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, EvidenceRef, Finding, Severity, Status
from evidence.domain import Gap

COLLECTION = "data/collection.json"


def _cause(gap: Gap) -> str:
    parts = [f"HTTP {gap.status}" if gap.status else "", gap.error_code or ""]
    return " ".join(p for p in parts if p) or "no response"


class EvidenceCompleteness(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-11",
        title="Evidence is complete for the window",
        rationale=(
            "Findings are only as good as the evidence behind them. Every call that failed, and every "
            "part of the window a source no longer retains, is a place where a problem could hide."
        ),
        frameworks=("SOC 2 CC7.2", "SOC 2 CC4.1", "ISO/IEC 27001:2022 A.8.15", "EU AI Act Art. 12"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        findings = [
            self.finding(
                Status.FAIL,
                Severity.HIGH,
                gap.scope,
                f"{gap.collector}: evidence missing ({_cause(gap)}): {gap.message}",
                EvidenceRef(COLLECTION, f"/gaps/{index}"),
            )
            for index, gap in enumerate(ctx.gaps)
        ]
        if not findings:
            collected = sorted(k for k, rows in ctx.records.items() if rows is not None)
            findings.append(
                self.finding(
                    Status.PASS,
                    Severity.INFO,
                    ", ".join(w.arm_id for w in ctx.scope.workspaces),
                    f"every collector completed without a gap for {ctx.window} ({', '.join(collected)})",
                    EvidenceRef(COLLECTION, "/gaps"),
                )
            )
        return findings
