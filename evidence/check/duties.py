"""EV-06 separation of duties: registrant, approver and deployer are different identities.

* registrant: the model version's ``created_by`` (ARM systemData);
* approver: the version's ``approved_by`` tag;
* deployer: the caller of the first deployment write that could have put the version into service
  (Activity Log), else the deployment's ``created_by``/``last_modified_by`` from its state.

Identities are compared as recorded, case-insensitively: systemData, tags and the Activity Log may
name one person in different forms (UPN, object ID, display name), so "different" means "the
recorded identifiers differ", and the finding shows each one for the reviewer.

Where registrant and deployer are the same *allowed deployer* (``policy.allowed_deployers``: the
release pipeline's identity registering and deploying), that is automation, not one person pushing a
change through: the independent approver is the separation. A person in both roles is a failure.
"""

from __future__ import annotations

from typing import ClassVar

from evidence.check.approval import version_missing
from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Severity, Status
from evidence.check.population import gap_findings, ident, lower, not_collected, ref, scope_subject, tags_of, when
from evidence.check.timeline import NO_SERVED, ServedVersion, first_put_in_service, served_population

APPROVER_TAG = "approved_by"


def deployer_of(item: ServedVersion, ctx: CheckContext) -> tuple[str, str]:
    """(deployer identity, where it was read) for a served version; ('', reason) when unknown."""
    _, _, writes = first_put_in_service(item, ctx)
    if writes and writes[0].caller:
        return writes[0].caller, f"Activity Log event {writes[0].event_ids[0]}"
    registered = when((item.version or {}).get("created_at"))
    states = {lower(d.get("deployment_id")): d for d in ctx.rows("deployments")}
    for deployment_id in item.deployment_ids:
        state = states.get(lower(deployment_id))
        if not state:
            continue
        created = when(state.get("created_at"))
        if created is not None and registered is not None and created >= registered and state.get("created_by"):
            return str(state["created_by"]), "deployment systemData.createdBy"
        if state.get("last_modified_by"):
            return str(state["last_modified_by"]), "deployment systemData.lastModifiedBy"
    return "", "no deployment write recorded"


class SeparationOfDuties(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-06",
        title="Registrant, approver and deployer are different identities",
        rationale=(
            "Segregation between who builds a change, who approves it and who puts it into production keeps one "
            "person from shipping an unreviewed model."
        ),
        frameworks=("SOC 2 CC8.1", "SOC 2 CC5.1", "ISO/IEC 27001:2022 A.5.3", "ISO/IEC 27001:2022 A.8.32"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "model_versions")
        if early:
            return early
        findings = gap_findings(
            self, ctx, "deployers there may be missing", "activity_log", "endpoints", "model_versions"
        )
        allowed = {ident(p) for p in ctx.policy.allowed_deployers}
        served, _ = served_population(ctx)
        for item in served:
            if item.version is None:
                findings.append(version_missing(self, item, ctx))
                continue
            registrant = str(item.version.get("created_by") or "")
            approver = tags_of(item.version).get(APPROVER_TAG, "")
            deployer, source = deployer_of(item, ctx)
            shown = (
                f"registrant {registrant or 'unknown'}, approver {approver or 'unknown'}, "
                f"deployer {deployer or 'unknown'} ({source})"
            )
            evidence = [ref("model_versions", "asset_id", item.subject)]
            r, a, d = ident(registrant), ident(approver), ident(deployer)
            clashes = []
            if a and a == r:
                clashes.append("the approver registered the version")
            if a and a == d:
                clashes.append("the approver deployed it")
            if r and r == d and d not in allowed:
                clashes.append("the same person registered and deployed it")
            if clashes:
                findings.append(
                    self.finding(Status.FAIL, Severity.HIGH, item.subject, f"{'; '.join(clashes)}: {shown}", *evidence)
                )
            elif not (r and a and d):
                findings.append(
                    self.finding(
                        Status.MANUAL_REVIEW,
                        Severity.MEDIUM,
                        item.subject,
                        f"separation cannot be shown, an identity is unknown: {shown}",
                        *evidence,
                    )
                )
            else:
                findings.append(
                    self.finding(Status.PASS, Severity.INFO, item.subject, f"separate identities: {shown}", *evidence)
                )
        if not served:
            findings.append(self.not_assessed(scope_subject(ctx), NO_SERVED))
        return findings
