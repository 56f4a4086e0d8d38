"""EV-04 deployments reference an explicit, registered model version.

A deployment that names ``azureml:model@latest``, a bare model name or an inline model (or none,
with the model baked into the image) cannot be tied to one approved version: what it serves
changes without a change record.
"""

from __future__ import annotations

from typing import ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Severity, Status
from evidence.check.population import gap_findings, lower, not_collected, ref, scope_subject
from evidence.check.timeline import release_endpoints


class ExplicitModelVersion(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-04",
        title="Deployments reference an explicit model version",
        rationale=(
            "Only a pinned model version ties what an endpoint serves to one registered, approved artefact; "
            "'latest' or an inline model changes production without a recorded change."
        ),
        frameworks=("SOC 2 CC8.1", "ISO/IEC 27001:2022 A.8.32", "EU AI Act Annex IV §1(a)"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments")
        if early:
            return early
        findings = gap_findings(self, ctx, "deployments there were not assessed", "endpoints")
        deployments = ctx.rows("deployments")
        in_release = release_endpoints(ctx)
        if in_release is not None:
            # A release close-out covers the endpoints that serve or served the release.
            deployments = [r for r in deployments if lower(r.get("endpoint_id")) in in_release]
        for row in deployments:
            subject = str(row.get("deployment_id"))
            evidence = ref("deployments", "deployment_id", subject)
            reference = row.get("model_asset_id")
            if row.get("model_name") and row.get("model_version"):
                findings.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        subject,
                        f"serves {row['model_name']} version {row['model_version']} ({reference})",
                        evidence,
                    )
                )
            elif reference:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.MEDIUM,
                        subject,
                        f"model reference {reference!r} does not pin a registered model version",
                        evidence,
                    )
                )
            else:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.MEDIUM,
                        subject,
                        "no registered model referenced (inline model or model inside the image)",
                        evidence,
                    )
                )
        if not deployments:
            findings.append(self.not_assessed(scope_subject(ctx), "not assessed: no online deployments were found"))
        return findings
