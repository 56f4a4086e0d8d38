"""EV-07 deployment and endpoint writes in the window were made only by allowed identities.

``policy.allowed_deployers`` lists the release pipeline's identities as they appear in the Activity
Log ``caller`` field: a user's UPN, or a service principal's application (client) ID or object ID.
List every form the pipeline identity can take. An empty list cannot make this control pass: it is
*not assessed*, because "nobody is allowed" and "nobody was configured" must not read the same.
"""

from __future__ import annotations

from typing import ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, EvidenceRef, Finding, Severity, Status
from evidence.check.population import (
    SERVING_WRITES,
    changes,
    gap_findings,
    ident,
    in_window,
    lower,
    not_collected,
    scope_subject,
)
from evidence.check.timeline import release_endpoints

NO_ALLOWED_DEPLOYERS = "no allowed deployers configured"


class AllowedDeployers(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-07",
        title="Deployment and endpoint writes were made only by allowed identities",
        rationale=(
            "Production model changes should flow through the release pipeline, whose identity is known and whose "
            "runs carry the approval and test evidence; a person writing a deployment directly bypasses it."
        ),
        frameworks=("SOC 2 CC8.1", "SOC 2 CC6.1", "ISO/IEC 27001:2022 A.8.32", "ISO/IEC 27001:2022 A.8.2"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        if not ctx.policy.allowed_deployers:
            return [
                self.not_assessed(
                    scope_subject(ctx),
                    f"not assessed: {NO_ALLOWED_DEPLOYERS} (set [policy] allowed_deployers in evidence.toml)",
                    EvidenceRef("data/collection.json", "/scope"),
                )
            ]
        early = not_collected(self, ctx, "activity_events")
        if early:
            return early
        findings = gap_findings(self, ctx, "writes there were not assessed", "activity_log")
        allowed = {ident(p) for p in ctx.policy.allowed_deployers}
        writes = [c for c in changes(ctx.rows("activity_events"), SERVING_WRITES) if in_window(c.started, ctx)]
        in_release = release_endpoints(ctx)
        if in_release is not None:
            # A release close-out covers the endpoints that serve or served the release.
            writes = [c for c in writes if lower(c.resource_id).split("/deployments/", 1)[0] in in_release]
        for change in writes:
            what = change.operation.split("/workspaces/", 1)[-1]  # e.g. onlineendpoints/deployments/write
            who = f"{change.caller} ({change.caller_type})" if change.caller_type else change.caller
            if not change.caller:
                findings.append(
                    self.finding(
                        Status.MANUAL_REVIEW,
                        Severity.MEDIUM,
                        change.resource_id,
                        f"{what} at {change.started:%Y-%m-%dT%H:%M:%SZ}: the caller is not recorded",
                        change.evidence,
                    )
                )
            elif ident(change.caller) in allowed:
                findings.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        change.resource_id,
                        f"{what} at {change.started:%Y-%m-%dT%H:%M:%SZ} by allowed deployer {who}",
                        change.evidence,
                    )
                )
            else:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.HIGH,
                        change.resource_id,
                        f"{what} at {change.started:%Y-%m-%dT%H:%M:%SZ} by {who}, not an allowed deployer",
                        change.evidence,
                    )
                )
        if not writes:
            findings.append(
                self.not_assessed(scope_subject(ctx), "not assessed: no deployment or endpoint writes in the window")
            )
        return findings
