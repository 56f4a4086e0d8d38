"""EV-08 privileged access at workspace scope, EV-09 role assignment changes traced to the log.

Privileged roles are ``policy.privileged_roles``, matched by role name, or by the built-in role's
definition GUID when the name was not resolved (azure-limits §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Record, Severity, Status
from evidence.check.population import (
    ROLE_ASSIGNMENT_DELETE,
    ROLE_ASSIGNMENT_WRITE,
    Change,
    changes,
    gap_findings,
    has_gap,
    in_window,
    lower,
    missing_kinds,
    not_collected,
    ref,
    scope_subject,
    under,
    when,
)
from evidence.clock import isoformat

ACCESS_FRAMEWORKS = (
    "SOC 2 CC6.1",
    "SOC 2 CC6.2",
    "SOC 2 CC6.3",
    "ISO/IEC 27001:2022 A.5.15",
    "ISO/IEC 27001:2022 A.5.18",
    "ISO/IEC 27001:2022 A.8.2",
)

#: Built-in role definition GUIDs (azure-limits §6), for assignments whose role name was not read.
BUILTIN_ROLE_IDS = {
    "owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "user access administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "azureml data scientist": "f6c7c914-8db3-469d-8ca1-694a8f32e121",
    "azureml compute operator": "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815",
    "reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "role based access control administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
}

#: A role assignment's createdOn and its Activity Log event differ by seconds; allow for clock skew
#: and for the event being logged when the request completed.
MATCH_TOLERANCE = timedelta(minutes=15)

UNRESOLVED_TYPES = {"unknown"}


def guid(definition_id: Any) -> str:
    return lower(definition_id).rsplit("/", 1)[-1]


def is_privileged(row: Mapping[str, Any], roles: Sequence[str]) -> bool:
    names = {r.lower() for r in roles}
    if str(row.get("role_name") or "").lower() in names:
        return True
    return guid(row.get("role_definition_id")) in {BUILTIN_ROLE_IDS[n] for n in names if n in BUILTIN_ROLE_IDS}


def role_label(row: Mapping[str, Any]) -> str:
    return str(row.get("role_name") or f"role {guid(row.get('role_definition_id'))}")


def unique(rows: Sequence[Record], key: str) -> list[tuple[Record, list[str]]]:
    """One row per ID (an assignment inherited by two workspaces is two rows), with its workspaces."""
    seen: dict[str, tuple[Record, list[str]]] = {}
    for row in rows:
        entry = seen.setdefault(lower(row.get(key)), (row, []))
        entry[1].append(str(row.get("workspace_id") or ""))
    return [seen[k] for k in sorted(seen)]


class PrivilegedAccess(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-08",
        title="No direct user assignment of a privileged role at workspace scope",
        rationale=(
            "Standing privileged access held by individual users is hard to review and to revoke; privileged roles "
            "should be granted to groups, or made eligible through PIM. Assignments to principals that no longer "
            "exist are access nobody reviews."
        ),
        frameworks=ACCESS_FRAMEWORKS,
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "role_assignments")
        if early:
            return early
        findings = gap_findings(self, ctx, "assignments there were not assessed", "role_assignments")
        roles = ctx.policy.privileged_roles
        eligible = {
            (lower(e.get("principal_id")), guid(e.get("role_definition_id")), lower(e.get("scope")))
            for e in ctx.rows("role_eligibility")
        }
        assessed = 0
        for row, workspaces in unique(ctx.rows("role_assignments"), "assignment_id"):
            subject = str(row.get("assignment_id"))
            evidence = ref("role_assignments", "assignment_id", subject)
            principal = f"{row.get('principal_type') or 'unknown type'} {row.get('principal_id')}"
            kind = str(row.get("principal_type") or "").lower()
            if kind in UNRESOLVED_TYPES:
                assessed += 1
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.MEDIUM,
                        subject,
                        f"{role_label(row)} at {row.get('scope')} is assigned to principal {row.get('principal_id')}, "
                        "which no longer resolves (principalType Unknown): remove the assignment",
                        evidence,
                    )
                )
                continue
            if not is_privileged(row, roles):
                continue
            assessed += 1
            at_workspace = not row.get("inherited") and any(under(row.get("scope"), w) for w in workspaces)
            label = f"{role_label(row)} for {principal}"
            if kind != "user":
                findings.append(self.finding(Status.PASS, Severity.INFO, subject, f"{label}: not a user", evidence))
            elif not at_workspace:
                findings.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        subject,
                        f"{label}: inherited from {row.get('scope')}, outside the workspace scope this control covers",
                        evidence,
                    )
                )
            elif (
                lower(row.get("principal_id")),
                guid(row.get("role_definition_id")),
                lower(row.get("scope")),
            ) in eligible:
                findings.append(
                    self.finding(
                        Status.MANUAL_REVIEW,
                        Severity.MEDIUM,
                        subject,
                        f"{label} at workspace scope matches a PIM eligibility (likely an activation); confirm it is "
                        "time-bound",
                        evidence,
                    )
                )
            else:
                findings.append(
                    self.finding(
                        Status.FAIL,
                        Severity.HIGH,
                        subject,
                        f"{label} is assigned directly at workspace scope {row.get('scope')}; use a group or a PIM "
                        "eligible assignment",
                        evidence,
                    )
                )
        for row, _ in unique(ctx.rows("role_eligibility"), "eligibility_id"):
            if is_privileged(row, roles):
                assessed += 1
                subject = str(row.get("eligibility_id"))
                findings.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        subject,
                        f"{role_label(row)} for {row.get('principal_type')} {row.get('principal_id')}: eligible "
                        "through PIM (activation required)",
                        ref("role_eligibility", "eligibility_id", subject),
                    )
                )
        if not assessed:
            findings.append(
                self.not_assessed(scope_subject(ctx), "not assessed: no privileged role assignments were collected")
            )
        return findings


def _matches(row: Mapping[str, Any], moment: datetime, change: Change) -> bool:
    if lower(change.resource_id) == lower(row.get("assignment_id")):
        return True
    event = change.event
    return (
        bool(event.get("request_principal_id"))
        and lower(event.get("request_principal_id")) == lower(row.get("principal_id"))
        and guid(event.get("request_role_definition_id")) == guid(row.get("role_definition_id"))
        and lower(event.get("request_scope")) == lower(row.get("scope"))
        and abs(change.completed - moment) <= MATCH_TOLERANCE
    )


class RoleChangesTraced(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-09",
        title="Every role assignment change in the window is matched to its Activity Log event",
        rationale=(
            "An access change must be attributable (who made it, when). A role assignment created in the window "
            "with no matching Activity Log event was made outside the audited path or the log is incomplete."
        ),
        frameworks=(*ACCESS_FRAMEWORKS, "ISO/IEC 27001:2022 A.8.15"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "role_assignments")
        if early:
            return early
        if missing_kinds(ctx, "activity_events"):
            return not_collected(self, ctx, "activity_events")
        findings = gap_findings(self, ctx, "changes there were not assessed", "role_assignments", "activity_log")
        log_gap = has_gap(ctx, "activity_log")
        writes = changes(ctx.rows("activity_events"), (ROLE_ASSIGNMENT_WRITE,))
        population = 0
        for row, _ in unique(ctx.rows("role_assignments"), "assignment_id"):
            created, updated = when(row.get("created_on")), when(row.get("updated_on"))
            moments = [m for m in (created, updated) if m is not None and in_window(m, ctx)]
            if created and updated and abs(updated - created) <= MATCH_TOLERANCE and in_window(created, ctx):
                moments = [created]
            for moment in moments:
                population += 1
                findings.append(self._one(row, moment, writes, log_gap))
        for change in changes(ctx.rows("activity_events"), (ROLE_ASSIGNMENT_DELETE,)):
            if in_window(change.started, ctx):
                population += 1
                findings.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        change.resource_id,
                        f"removed at {isoformat(change.completed)} by {change.caller or 'unknown caller'}",
                        change.evidence,
                    )
                )
        if not population:
            findings.append(
                self.not_assessed(
                    scope_subject(ctx), "not assessed: no role assignment was created, changed or removed in the window"
                )
            )
        return findings

    def _one(self, row: Record, moment: datetime, writes: Sequence[Change], log_gap: bool) -> Finding:
        subject = str(row.get("assignment_id"))
        evidence = ref("role_assignments", "assignment_id", subject)
        what = f"{role_label(row)} for {row.get('principal_type')} {row.get('principal_id')} at {row.get('scope')}"
        match = next((c for c in writes if _matches(row, moment, c)), None)
        if match is not None:
            return self.finding(
                Status.PASS,
                Severity.INFO,
                subject,
                f"{what} changed {isoformat(moment)}; Activity Log: {isoformat(match.completed)} by "
                f"{match.caller or 'unknown caller'}",
                evidence,
                match.evidence,
            )
        if log_gap:
            return self.not_assessed(
                subject, f"not assessed: {what} changed {isoformat(moment)}; the Activity Log has a gap", evidence
            )
        if row.get("inherited"):
            return self.finding(
                Status.MANUAL_REVIEW,
                Severity.MEDIUM,
                subject,
                f"{what} changed {isoformat(moment)} at a scope above the workspace; no event in the collected "
                "Activity Log (it may sit outside the query's scope): confirm from that scope's log",
                evidence,
            )
        return self.finding(
            Status.FAIL,
            Severity.HIGH,
            subject,
            f"{what} changed {isoformat(moment)} (by {row.get('created_by') or 'unknown'}) with no matching "
            "roleAssignments/write event in the Activity Log",
            evidence,
        )
