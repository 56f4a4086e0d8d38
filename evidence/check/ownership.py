"""EV-03 every served model version has an owner (the ``policy.owner_tag`` tag)."""

from __future__ import annotations

from typing import ClassVar

from evidence.check.approval import version_missing
from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Severity, Status
from evidence.check.population import TIMELINE_KIND, gap_findings, not_collected, ref, scope_subject, tags_of
from evidence.check.timeline import NO_SERVED, served_population


class ModelOwnership(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-03",
        title="Every served model has an owner",
        rationale=(
            "A model in production needs an accountable owner who answers for its behaviour, its monitoring "
            "and its retirement; a model inventory without owners does not meet model risk guidance."
        ),
        frameworks=("SR 11-7 (model inventory)", "ISO/IEC 27001:2022 A.5.9", "ISO/IEC 42001 A.3.2", "SOC 2 CC1.3"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "model_versions")
        if early:
            return early
        findings = gap_findings(
            self, ctx, "versions served there may be missing", "endpoints", "activity_log", "model_versions"
        )
        served, _ = served_population(ctx)
        tag = ctx.policy.owner_tag
        for item in served:
            if item.version is None:
                findings.append(version_missing(self, item, ctx))
                continue
            evidence = (
                ref("model_versions", "asset_id", item.subject),
                *(ref(TIMELINE_KIND, "deployment_id", d) for d in item.deployment_ids),
            )
            owner = tags_of(item.version).get(tag)
            if owner:
                findings.append(
                    self.finding(Status.PASS, Severity.INFO, item.subject, f"owner {owner} (tag {tag})", *evidence)
                )
            else:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.MEDIUM,
                        item.subject,
                        f"{item.model_name} version {item.model_version} served traffic but has no owner (tag {tag!r})",
                        *evidence,
                    )
                )
        if not served:
            findings.append(self.not_assessed(scope_subject(ctx), NO_SERVED))
        return findings
