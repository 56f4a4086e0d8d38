"""Shared reading of records for the controls: gaps, evidence pointers, identities, changes.

Every control words the common cases through these helpers so that "this collector had a gap",
"nothing to look at" and "who made this change" read the same in every finding.

Activity Log writes are collapsed into *changes*: one per (correlation ID, resource), because
ARM logs a long-running write as Started, Accepted and Succeeded events that all describe the
same request. A change counts as made when one of its events says Succeeded, or Accepted
without a later Failed (an asynchronous write whose completion fell outside the query).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evidence.check.interface import CheckContext, Control, EvidenceRef, Finding, Record, Severity, Status
from evidence.clock import parse_timestamp
from evidence.domain import Gap

RECORDS_DIR = "data/records"
COLLECTION = "data/collection.json"
TIMELINE_KIND = "serving_timeline"

#: Which collector produces each record kind (CheckContext.gaps names collectors).
COLLECTOR_OF = {
    "model_versions": "model_versions",
    "endpoints": "endpoints",
    "deployments": "endpoints",
    "role_assignments": "role_assignments",
    "role_eligibility": "role_assignments",
    "activity_events": "activity_log",
    "metrics": "metrics",
}

_MLS = "microsoft.machinelearningservices/workspaces/"
DEPLOYMENT_WRITE = _MLS + "onlineendpoints/deployments/write"
DEPLOYMENT_DELETE = _MLS + "onlineendpoints/deployments/delete"
ENDPOINT_WRITE = _MLS + "onlineendpoints/write"
ENDPOINT_DELETE = _MLS + "onlineendpoints/delete"
#: Every write that changes what an endpoint serves (azure-limits §3.4).
SERVING_WRITES = frozenset(
    {
        DEPLOYMENT_WRITE,
        DEPLOYMENT_DELETE,
        ENDPOINT_WRITE,
        ENDPOINT_DELETE,
        _MLS + "batchendpoints/write",
        _MLS + "batchendpoints/delete",
        _MLS + "batchendpoints/deployments/write",
        _MLS + "batchendpoints/deployments/delete",
        _MLS + "serverlessendpoints/write",
        _MLS + "serverlessendpoints/delete",
        _MLS + "endpoints/deployments/write",
        _MLS + "endpoints/deployments/delete",
    }
)
#: Events of one request with the same timestamp sort in the order ARM logs them.
_STATUS_RANK = {"started": 0, "accepted": 1, "succeeded": 2, "failed": 2}
ROLE_ASSIGNMENT_WRITE = "microsoft.authorization/roleassignments/write"
ROLE_ASSIGNMENT_DELETE = "microsoft.authorization/roleassignments/delete"


# ----------------------------------------------------------------------------- evidence refs
def records_file(kind: str) -> str:
    return f"{RECORDS_DIR}/{kind}.jsonl"


def ref(kind: str, key: str, value: Any) -> EvidenceRef:
    """A pointer to one record: ``data/records/<kind>.jsonl`` and ``key=value``."""
    return EvidenceRef(records_file(kind), f"{key}={value}")


def scope_subject(ctx: CheckContext) -> str:
    return ", ".join(w.arm_id for w in sorted(ctx.scope.workspaces)) or "scope"


# ------------------------------------------------------------------------------------ gaps
def gaps_of(ctx: CheckContext, *collectors: str) -> list[tuple[int, Gap]]:
    """The gaps (with their index in collection.json) of the named collectors."""
    wanted = set(collectors)
    return [(i, g) for i, g in enumerate(ctx.gaps) if g.collector in wanted]


def gap_findings(control: Control, ctx: CheckContext, consequence: str, *collectors: str) -> list[Finding]:
    """One NOT_ASSESSED finding per gap a control depends on: the control cannot pass over it."""
    return [
        control.finding(
            Status.NOT_ASSESSED,
            Severity.MEDIUM,
            gap.scope,
            f"{gap.collector} collection incomplete here ({gap.message}); {consequence}",
            EvidenceRef(COLLECTION, f"/gaps/{index}"),
        )
        for index, gap in gaps_of(ctx, *collectors)
    ]


def has_gap(ctx: CheckContext, *collectors: str) -> bool:
    return bool(gaps_of(ctx, *collectors))


def missing_kinds(ctx: CheckContext, *kinds: str) -> list[str]:
    """Record kinds that were not collected at all (absent, as opposed to collected and empty)."""
    return [k for k in kinds if k not in ctx.records]


def not_collected(control: Control, ctx: CheckContext, *kinds: str) -> list[Finding]:
    """NOT_ASSESSED for the whole scope when a record kind a control needs was never collected."""
    missing = missing_kinds(ctx, *kinds)
    if not missing:
        return []
    return [
        control.not_assessed(
            scope_subject(ctx),
            f"not assessed: {', '.join(missing)} not collected for this package",
            EvidenceRef(COLLECTION, "/requests"),
        )
    ]


# ---------------------------------------------------------------------------------- values
def when(value: Any) -> datetime | None:
    """A record timestamp as a datetime, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def ident(value: Any) -> str:
    """Identities compare case-insensitively and without surrounding space; '' is unknown."""
    return str(value).strip().lower() if isinstance(value, str) else ""


def lower(value: Any) -> str:
    return str(value or "").rstrip("/").lower()


def in_window(moment: datetime | None, ctx: CheckContext) -> bool:
    return moment is not None and ctx.window.start <= moment < ctx.window.end


def under(resource_id: str | None, parent: str | None) -> bool:
    """True when ``resource_id`` is ``parent`` or a resource below it (ARM IDs, any case)."""
    child, top = lower(resource_id), lower(parent)
    return bool(top) and (child == top or child.startswith(top + "/"))


# --------------------------------------------------------------------------------- changes
@dataclass(frozen=True)
class Change:
    """One write request seen in the Activity Log (its Started/Accepted/Succeeded events folded)."""

    resource_id: str
    operation: str  # lower case
    started: datetime  # earliest event: when the request was made
    completed: datetime  # Succeeded event if any, else the latest event
    caller: str
    caller_type: str
    event_ids: tuple[str, ...]
    event: Record  # the most informative event (Succeeded, else the first)

    @property
    def evidence(self) -> EvidenceRef:
        return ref("activity_events", "event_id", self.event_ids[0] if self.event_ids else "")


def changes(events: Iterable[Record], operations: Iterable[str]) -> list[Change]:
    """Writes that took effect, one per request, oldest first."""
    wanted = {o.lower() for o in operations}
    groups: dict[tuple[str, str], list[Record]] = {}
    for event in events:
        operation = str(event.get("operation") or "").lower()
        if operation not in wanted or when(event.get("timestamp")) is None:
            continue
        key = (str(event.get("correlation_id") or event.get("event_id") or ""), lower(event.get("resource_id")))
        groups.setdefault(key, []).append(event)
    out: list[Change] = []
    for group in groups.values():
        group.sort(
            key=lambda e: (
                str(e.get("timestamp")),
                _STATUS_RANK.get(str(e.get("status")).lower(), 9),
                str(e.get("event_id")),
            )
        )
        statuses = {str(e.get("status") or "").lower() for e in group}
        if "succeeded" not in statuses and ("accepted" not in statuses or "failed" in statuses):
            continue
        done = next((e for e in group if str(e.get("status") or "").lower() == "succeeded"), None)
        best = done or group[0]
        caller = next((str(e["caller"]) for e in group if e.get("caller")), "")
        caller_type = next((str(e["caller_type"]) for e in group if e.get("caller_type")), "")
        started = when(group[0].get("timestamp"))
        completed = when((done or group[-1]).get("timestamp"))
        assert started is not None and completed is not None  # filtered above
        out.append(
            Change(
                resource_id=str(best.get("resource_id") or ""),
                operation=str(best.get("operation") or "").lower(),
                started=started,
                completed=completed,
                caller=caller,
                caller_type=caller_type,
                event_ids=tuple(str(e.get("event_id") or "") for e in group),
                event=best,
            )
        )
    out.sort(key=lambda c: (c.completed, lower(c.resource_id), c.operation))
    return out


def index_rows(rows: Sequence[Record], key: str) -> dict[str, Record]:
    return {lower(r.get(key)): r for r in rows if r.get(key)}


#: ``azureml://registries/<registry>/models/<name>/versions/<version>`` (also with ``locations/<l>/``).
_REGISTRY_REFERENCE = re.compile(
    r"^azureml://(?:locations/[^/]+/)?registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)


_REGISTRY_OF = re.compile(
    r"^(?:azureml://(?:locations/[^/]+/)?|/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    r"Microsoft\.MachineLearningServices/)registries/(?P<registry>[^/]+)/",
    re.IGNORECASE,
)


def registry_of_reference(reference: str | None) -> str | None:
    """The registry a model reference names (``azureml://registries/...`` or an ARM ID), or None."""
    match = _REGISTRY_OF.match((reference or "").strip())
    return match.group("registry") if match else None


def model_home(row: Mapping[str, Any]) -> str:
    """Where a model version record lives: its workspace ID, or ``registry:<name>`` (lower case).

    Versions of one model are comparable (rollback targets, "earlier version") only within one home:
    a registry model and a workspace model of the same name are different models.
    """
    if row.get("registry"):
        return f"registry:{str(row['registry']).lower()}"
    return lower(row.get("workspace_id"))


def model_version_of(
    versions: Sequence[Record], workspace_id: str | None, reference: str | None, name: str | None, version: str | None
) -> Record | None:
    """The collected model version a deployment reference points at, or None.

    An ARM ID is matched to the record's ``asset_id`` (workspace and registry versions alike); an
    ``azureml://registries/<r>/models/<n>/versions/<v>`` URI to the registry version record
    (``registry`` field, collected when ``[scope] registries`` names it); any other form names a
    version in the deployment's own workspace.
    """
    if reference and reference.strip().lower().startswith("/subscriptions/"):
        target = lower(reference.strip())
        for row in versions:
            if lower(row.get("asset_id")) == target:
                return row
        return None
    if registry_of_reference(reference) is not None:
        match = _REGISTRY_REFERENCE.match(str(reference).strip())
        if match is None:
            return None  # a label or other unpinned registry reference: EV-04's subject
        registry = match.group("registry").lower()
        for row in versions:
            if (
                str(row.get("registry") or "").lower() == registry
                and row.get("model_name") == match.group("name")
                and str(row.get("version")) == match.group("version")
            ):
                return row
        return None
    if not name or not version:
        return None
    for row in versions:
        if (
            not row.get("registry")
            and lower(row.get("workspace_id")) == lower(workspace_id)
            and row.get("model_name") == name
            and str(row.get("version")) == str(version)
        ):
            return row
    return None


def tags_of(row: Mapping[str, Any] | None) -> dict[str, str]:
    tags = (row or {}).get("tags") or {}
    return {str(k): str(v) for k, v in tags.items() if v is not None and str(v).strip()}
