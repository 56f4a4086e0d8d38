"""EV-01 approval evidence for every served version, EV-02 approval before deployment.

Azure ML has no first-class approval object for models (azure-limits §5.1): approval is modelled as
tags on the model version (``policy.approval_tags``) and/or an ARM ``stage`` that counts as approved
(``policy.approved_stages``). A version counts as approved when its stage is an approved stage, or
when it carries every approval tag with a non-empty value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Severity, Status
from evidence.check.population import (
    TIMELINE_KIND,
    gap_findings,
    has_gap,
    missing_kinds,
    not_collected,
    ref,
    registry_of_reference,
    scope_subject,
    tags_of,
)
from evidence.check.timeline import NO_SERVED, ServedVersion, first_put_in_service, served_population
from evidence.clock import isoformat, parse_timestamp
from evidence.config import PolicyConfig

CHANGE_FRAMEWORKS = (
    "SOC 2 CC8.1",
    "ISO/IEC 27001:2022 A.8.32",
    "SR 11-7 (model change control)",
    "EU AI Act Annex IV §1(a), §6",
)


@dataclass(frozen=True)
class Approval:
    approved: bool
    how: str  # what the approval rests on, or what is missing


def approval_of(version: Mapping[str, Any], policy: PolicyConfig) -> Approval:
    """Whether a model version record carries approval evidence under the policy."""
    stage = str(version.get("stage") or "")
    if stage and stage.lower() in {s.lower() for s in policy.approved_stages}:
        return Approval(True, f"stage {stage!r} is an approved stage")
    tags = tags_of(version)
    if not policy.approval_tags:
        return Approval(False, f"stage {stage or 'none'} is not an approved stage")
    missing = [t for t in policy.approval_tags if t not in tags]
    if not missing:
        return Approval(True, ", ".join(f"{t}={tags[t]}" for t in policy.approval_tags))
    return Approval(False, f"missing approval tags: {', '.join(missing)}")


def version_missing(control: Control, served: ServedVersion, ctx: CheckContext) -> Finding:
    """The finding for a served version whose record was not collected."""
    evidence = ref(TIMELINE_KIND, "deployment_id", served.deployment_ids[0]) if served.deployment_ids else None
    refs = (evidence,) if evidence else ()
    registry = registry_of_reference(served.reference)
    if registry is not None and registry.lower() not in {r.lower() for r in ctx.scope.registries}:
        # Registry versions are collected only for the registries the scope names.
        return control.not_assessed(
            served.subject,
            f"not assessed: {served.reference} is a model in registry {registry}, which is not in the scope "
            "([scope] registries / --registry), so its versions were not collected",
            *refs,
        )
    if has_gap(ctx, "model_versions"):
        return control.not_assessed(
            served.subject, "not assessed: the model version was not collected (model_versions has a gap)", *refs
        )
    return control.finding(
        Status.MANUAL_REVIEW,
        Severity.MEDIUM,
        served.subject,
        f"deployment references {served.model_name}:{served.model_version}, which is not among the registered "
        "versions collected; confirm what it serves",
        *refs,
    )


class ApprovalEvidence(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-01",
        title="Every model version that served traffic has approval evidence",
        rationale=(
            "A change to what a model endpoint answers is a production change: the version that served "
            "must have been approved by an authorised person, and the approval must be recorded with it."
        ),
        frameworks=CHANGE_FRAMEWORKS,
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "model_versions")
        if early:
            return early
        findings = gap_findings(
            self,
            ctx,
            "versions served there may be missing from this assessment",
            "endpoints",
            "activity_log",
            "model_versions",
        )
        if missing_kinds(ctx, "activity_events"):
            findings.append(
                self.not_assessed(
                    scope_subject(ctx),
                    "not assessed in full: the Activity Log was not collected, so only versions serving at "
                    "collection time were assessed",
                )
            )
        served, unknown = served_population(ctx)
        for item in served:
            if item.version is None:
                findings.append(version_missing(self, item, ctx))
                continue
            approval = approval_of(item.version, ctx.policy)
            evidence = (
                ref("model_versions", "asset_id", item.subject),
                *(ref(TIMELINE_KIND, "deployment_id", d) for d in item.deployment_ids),
            )
            where = ", ".join(d.rsplit("/onlineEndpoints/", 1)[-1] for d in item.deployment_ids)
            if approval.approved:
                findings.append(
                    self.finding(Status.PASS, Severity.INFO, item.subject, f"approved ({approval.how})", *evidence)
                )
            else:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.HIGH,
                        item.subject,
                        f"{item.model_name} version {item.model_version} served traffic on {where} in the window "
                        f"without approval evidence ({approval.how})",
                        *evidence,
                    )
                )
        for row in unknown:
            findings.append(
                self.finding(
                    Status.MANUAL_REVIEW,
                    Severity.MEDIUM,
                    str(row["deployment_id"]),
                    f"served a model version that is not recorded, from {row['from'] or 'before the log'} to "
                    f"{row['to'] or 'collection'} ({row['basis']}); confirm it from the deployment's history",
                    ref(TIMELINE_KIND, "deployment_id", row["deployment_id"]),
                )
            )
        if ctx.kind == "release" and ctx.release_model and not served:
            # The close-out runs after the deployment: a release with no serving evidence is
            # missing evidence, and must stop the release (--fail-on high), not pass quietly.
            named = [
                str(v.get("asset_id"))
                for v in ctx.rows("model_versions")
                if v.get("model_name") == ctx.release_model and str(v.get("version")) == ctx.release_version
            ]
            subject = named[0] if named else scope_subject(ctx)
            findings.append(
                self.finding(
                    Status.FAIL,
                    Severity.HIGH,
                    subject,
                    f"release {ctx.release_model} version {ctx.release_version} served no traffic in the window: "
                    "no deployment of it is evidenced",
                    *((ref("model_versions", "asset_id", subject),) if named else ()),
                )
            )
        elif not served and not unknown:
            findings.append(self.not_assessed(scope_subject(ctx), NO_SERVED))
        return findings


def approval_moment(version: Mapping[str, Any], policy: PolicyConfig) -> tuple[datetime | date | None, str]:
    """The approval's date or time from the tags, and the tag it came from (or why there is none)."""
    tags = tags_of(version)
    names = ["approval_date", *[t for t in policy.approval_tags if "date" in t.lower() or t.lower().endswith("_at")]]
    for name in dict.fromkeys(names):
        text = tags.get(name)
        if not text:
            continue
        try:
            if len(text.strip()) == 10:
                return date.fromisoformat(text.strip()), name
            return parse_timestamp(text), name
        except ValueError:
            return None, f"tag {name}={text!r} is not a date"
    return None, "the approval carries no date (no approval_date tag)"


class ApprovalBeforeDeployment(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-02",
        title="Approval predates the deployment that put the version into service",
        rationale=(
            "Approval after the fact is not change control. The approval date must be earlier than the first "
            "deployment write that could have put the version into service (an emergency change needs a "
            "waiver with its retroactive approval)."
        ),
        frameworks=CHANGE_FRAMEWORKS,
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "model_versions")
        if early:
            return early
        findings = gap_findings(
            self,
            ctx,
            "deployment writes or versions there may be missing, so their timing cannot be compared",
            "activity_log",
            "endpoints",
            "model_versions",
        )
        if missing_kinds(ctx, "activity_events"):
            findings.append(
                self.not_assessed(
                    scope_subject(ctx), "not assessed: the Activity Log (deployment writes) was not collected"
                )
            )
            return findings
        served, _ = served_population(ctx)
        for item in served:
            if item.version is None:
                findings.append(version_missing(self, item, ctx))
                continue
            evidence = [ref("model_versions", "asset_id", item.subject)]
            if not approval_of(item.version, ctx.policy).approved:
                findings.append(
                    self.not_assessed(item.subject, "not assessed: no approval evidence (see EV-01)", *evidence)
                )
                continue
            approved, source = approval_moment(item.version, ctx.policy)
            earliest, latest, writes = first_put_in_service(item, ctx)
            evidence += [w.evidence for w in writes[:1]]
            if approved is None:
                findings.append(self.finding(Status.MANUAL_REVIEW, Severity.MEDIUM, item.subject, source, *evidence))
                continue
            if earliest is None or latest is None:
                findings.append(
                    self.not_assessed(
                        item.subject, "not assessed: when the version was deployed is not recorded", *evidence
                    )
                )
                continue
            findings.append(self._compare(item, approved, source, earliest, latest, evidence))
        if not served:
            findings.append(self.not_assessed(scope_subject(ctx), NO_SERVED))
        return findings

    def _compare(
        self,
        item: ServedVersion,
        approved: datetime | date,
        source: str,
        earliest: datetime,
        latest: datetime,
        evidence: list[Any],
    ) -> Finding:
        shown = approved.isoformat() if not isinstance(approved, datetime) else isoformat(approved)
        if isinstance(approved, datetime):
            before, after = approved <= earliest, approved > latest
        else:
            before, after = approved < earliest.date(), approved > latest.date()
        span = f"first possible deployment write {isoformat(earliest)}, last {isoformat(latest)}"
        if before:
            return self.finding(
                Status.PASS, Severity.INFO, item.subject, f"approved {shown} ({source}); {span}", *evidence
            )
        if after:
            return self.finding(
                Status.FAIL,
                Severity.HIGH,
                item.subject,
                f"approved {shown} ({source}), after the version was deployed ({span})",
                *evidence,
            )
        return self.finding(
            Status.MANUAL_REVIEW,
            Severity.MEDIUM,
            item.subject,
            f"approved {shown} ({source}), inside the span in which it was deployed ({span}); "
            "confirm the order from the deployment record",
            *evidence,
        )
