"""The serving timeline: which model version served which deployment, at what traffic share, when.

No Azure API answers "which model version served predictions at time T" (azure-limits §5.2). This
module rebuilds an answer from two sources and is explicit about what each row rests on:

* the state at collection time: each deployment's model reference and ``created_at``, and the
  endpoint's traffic map;
* the Activity Log writes in the window: ``onlineEndpoints/deployments/write`` (and ``/delete``)
  and ``onlineEndpoints/write`` (traffic changes are endpoint writes).

Limits, stated in every row's ``basis``:

* Activity Log events do not carry the request body of a deployment or endpoint write, so the
  model a deployment served *before* its last write, and the traffic share before the endpoint's
  last write, are not recorded: those rows say ``None`` (unknown), never a guess.
* A new deployment receives no traffic until the endpoint's traffic map is written again (the
  traffic map can only name deployments that exist), so when the log holds the deployment's
  creation, the share until the next endpoint write is 0.
* History older than the Activity Log query (the window, at most 90 days of retention) is not
  seen: the first row of a deployment created before the window starts at its ``created_at`` and
  is only as good as "no write since".
* A deployment deleted in the window is known only from its delete event: one row, model unknown.
* Mirror traffic is left out: mirrored requests do not change what clients receive.

A row's ``to`` is None while the row still described the state at collection time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from evidence.check.interface import CheckContext, Record
from evidence.check.population import (
    DEPLOYMENT_DELETE,
    DEPLOYMENT_WRITE,
    ENDPOINT_DELETE,
    ENDPOINT_WRITE,
    TIMELINE_KIND,
    Change,
    changes,
    lower,
    model_version_of,
    when,
)
from evidence.clock import isoformat
from evidence.collect.normalise import workspace_of

#: A deployment write that *started* this close to the deployment's ``created_at`` is its creation.
CREATION_TOLERANCE = timedelta(minutes=10)

NO_BODY = "Activity Log events do not carry the request body"
NO_SERVED = "not assessed: no model version served traffic in the window"


def _iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment else None


def _endpoint_of(deployment_id: str) -> str:
    return deployment_id.rsplit("/deployments/", 1)[0] if "/deployments/" in deployment_id.lower() else ""


def _split_deployment_id(deployment_id: str) -> tuple[str, str]:
    index = deployment_id.lower().rfind("/deployments/")
    if index < 0:
        return "", deployment_id.rsplit("/", 1)[-1]
    return deployment_id[:index], deployment_id[index + len("/deployments/") :]


def build_serving_timeline(records: Mapping[str, Sequence[Record]]) -> list[Record]:
    """Rows {endpoint_id, deployment_name, model_*, traffic_percent, from, to, basis, ...}.

    Deterministic: rows are sorted by endpoint, deployment and start time.
    """
    deployments = records.get("deployments", ())
    events = records.get("activity_events", ())
    own: dict[str, list[Change]] = {}
    for change in changes(events, (DEPLOYMENT_WRITE, DEPLOYMENT_DELETE)):
        own.setdefault(lower(change.resource_id), []).append(change)
    endpoint_writes: dict[str, list[Change]] = {}
    for change in changes(events, (ENDPOINT_WRITE, ENDPOINT_DELETE)):
        endpoint_writes.setdefault(lower(change.resource_id), []).append(change)
    state = {lower(d.get("deployment_id")): d for d in deployments if d.get("deployment_id")}
    rows: list[Record] = []
    for key in sorted(set(state) | set(own)):
        current = state.get(key)
        history = own.get(key, [])
        if current is None:
            rows.extend(_deleted_rows(history))
            continue
        endpoint = lower(current.get("endpoint_id")) or lower(_endpoint_of(key))
        rows.extend(_current_rows(current, history, endpoint_writes.get(endpoint, [])))
    rows.sort(key=lambda r: (lower(r["endpoint_id"]), r["deployment_name"], r["from"] or ""))
    return rows


def _row(
    deployment_id: str,
    model: Mapping[str, object] | None,
    traffic: int | None,
    start: datetime | None,
    end: datetime | None,
    basis: list[str],
    event: Change | None,
) -> Record:
    endpoint_id, name = _split_deployment_id(deployment_id)
    recorded = model is not None
    model = model or {}
    return {
        "endpoint_id": endpoint_id,
        "deployment_name": name,
        "deployment_id": deployment_id,
        "workspace_id": workspace_of(deployment_id) or "",
        "model_asset_id": model.get("model_asset_id"),
        "model_name": model.get("model_name"),
        "model_version": model.get("model_version"),
        "model_recorded": recorded,
        "traffic_percent": traffic,
        "from": _iso(start),
        "to": _iso(end),
        "from_event_id": event.event_ids[0] if event and event.event_ids else None,
        "basis": "; ".join(basis),
    }


def _deleted_rows(history: list[Change]) -> list[Record]:
    deletes = [c for c in history if c.operation == DEPLOYMENT_DELETE]
    writes = [c for c in history if c.operation == DEPLOYMENT_WRITE]
    if not deletes:
        return []  # a write to a deployment that is not in the state and never deleted: a gap, not history
    end = deletes[-1]
    first = writes[0] if writes and writes[0].completed <= end.completed else None
    basis = [
        f"deployment deleted at {isoformat(end.completed)} by {end.caller or 'unknown caller'}",
        f"model and traffic share not recorded: {NO_BODY} and the deployment is gone",
    ]
    if first is None:
        basis.append("created before the earliest recorded event")
    return [_row(end.resource_id, None, None, first.completed if first else None, end.completed, basis, first)]


def _current_rows(current: Record, history: list[Change], endpoint_history: list[Change]) -> list[Record]:
    deployment_id = str(current.get("deployment_id"))
    created = when(current.get("created_at"))
    creation: Change | None = None
    writes: list[Change] = []
    earlier: list[Change] = []  # a previous deployment of the same name, deleted and re-created
    for change in history:
        if created and change.completed < created - CREATION_TOLERANCE:
            earlier.append(change)
        elif (
            created
            and creation is None
            and change.operation == DEPLOYMENT_WRITE
            and abs(change.started - created) <= CREATION_TOLERANCE
        ):
            creation = change
        else:
            writes.append(change)
    rows = _deleted_rows(earlier) if earlier else []
    start = created or (writes[0].completed if writes else None)
    if created is None and writes:
        creation, writes = writes[0], writes[1:]
    traffic_changes = [c for c in endpoint_history if c.operation == ENDPOINT_WRITE]
    after_start = [c for c in traffic_changes if start is None or c.completed > start]
    cuts: dict[datetime, Change] = {c.completed: c for c in after_start}
    cuts.update({c.completed: c for c in writes})
    points: list[tuple[datetime | None, Change | None]] = [(start, creation)]
    points += [(moment, cuts[moment]) for moment in sorted(cuts)]
    model = {k: current.get(k) for k in ("model_asset_id", "model_name", "model_version")}
    for index, (begin, event) in enumerate(points):
        end = points[index + 1][0] if index + 1 < len(points) else None
        basis: list[str] = []
        if begin is None:
            basis.append("deployment existed before the earliest recorded event (created_at not recorded)")
        elif index == 0 and created is not None:
            basis.append(f"deployment created at {isoformat(begin)}")
        elif event is not None:
            kind = "deployment write" if event.operation == DEPLOYMENT_WRITE else "endpoint (traffic) write"
            basis.append(f"{kind} at {isoformat(begin)} by {event.caller or 'unknown caller'}")
        later_writes = [c for c in writes if begin is None or c.completed > begin]
        if later_writes:
            segment_model = None
            basis.append(
                f"model not recorded: the deployment was written again at {isoformat(later_writes[0].completed)} "
                f"and {NO_BODY}"
            )
        else:
            segment_model = model
            basis.append("model from the deployment's state at collection (no later deployment write)")
        later_traffic = [c for c in traffic_changes if begin is None or c.completed > begin]
        since_creation = [
            c for c in traffic_changes if created is not None and begin is not None and created < c.completed <= begin
        ]
        traffic: int | None
        if not later_traffic:
            raw = current.get("traffic_percent")
            traffic = int(raw) if isinstance(raw, int) else None
            basis.append(
                "traffic share from the endpoint's state at collection (no later endpoint write)"
                if traffic is not None
                else "traffic share unknown: the endpoint's state was not collected"
            )
        elif creation is not None and created is not None and begin is not None and not since_creation:
            # Only when the log saw the creation: then it also saw every endpoint write since.
            traffic = 0
            basis.append("no traffic: a new deployment gets none until the endpoint's traffic is written")
        else:
            traffic = None
            basis.append(
                f"traffic share not recorded: the endpoint was written again at "
                f"{isoformat(later_traffic[0].completed)} and {NO_BODY}"
            )
        rows.append(_row(deployment_id, segment_model, traffic, begin, end, basis, event))
    return rows


# ------------------------------------------------------------------------------ population
def timeline_of(ctx: CheckContext) -> list[Record]:
    """The timeline in the records (when the pipeline stored one) or rebuilt from them."""
    stored = ctx.records.get(TIMELINE_KIND)
    return list(stored) if stored is not None else build_serving_timeline(ctx.records)


def overlaps(row: Mapping[str, object], start: datetime, end: datetime) -> bool:
    begin = when(row.get("from"))
    finish = when(row.get("to"))
    return (begin is None or begin < end) and (finish is None or finish > start)


def may_serve(row: Mapping[str, object]) -> bool:
    """Served traffic, or may have (unknown share): unknown is never read as "did not serve"."""
    traffic = row.get("traffic_percent")
    return traffic is None or (isinstance(traffic, int) and traffic > 0)


def serving_rows(rows: Sequence[Record], start: datetime, end: datetime) -> list[Record]:
    return [r for r in rows if overlaps(r, start, end) and may_serve(r)]


@dataclass
class ServedVersion:
    """A model version that served (or may have served) traffic in the window."""

    workspace_id: str
    model_name: str
    model_version: str
    reference: str
    version: Record | None  # the collected model version, None when not found
    rows: list[Record] = field(default_factory=list)  # its serving timeline rows in the window

    @property
    def subject(self) -> str:
        if self.version is not None:
            return str(self.version.get("asset_id"))
        if self.workspace_id and not self.reference.lower().startswith(("/subscriptions/", "azureml://")):
            # ``azureml:name:version`` is relative to the deployment's workspace: name it by ARM ID.
            return f"{self.workspace_id}/models/{self.model_name}/versions/{self.model_version}"
        return self.reference

    @property
    def deployment_ids(self) -> list[str]:
        return sorted({str(r["deployment_id"]) for r in self.rows}, key=str.lower)


def is_release_version(ctx: CheckContext, name: object, version: object) -> bool:
    return bool(name == ctx.release_model and (not ctx.release_version or str(version) == ctx.release_version))


def release_endpoints(ctx: CheckContext) -> set[str] | None:
    """For ``--kind release``: the endpoints (lower-cased IDs) that serve or served the release.

    ``None`` when this is not a release, or when no timeline row names the release version (then
    nothing can be ruled out, and callers keep everything).
    """
    if ctx.kind != "release" or not ctx.release_model:
        return None
    found = {
        lower(row.get("endpoint_id"))
        for row in timeline_of(ctx)
        if row.get("model_recorded") and is_release_version(ctx, row.get("model_name"), row.get("model_version"))
    }
    return found or None


def served_population(ctx: CheckContext) -> tuple[list[ServedVersion], list[Record]]:
    """(versions that served in the window, rows that served an unrecorded model).

    For ``--kind release`` only the release's model (and version, when given) is kept, and rows
    with an unrecorded model only on the endpoints that serve or served the release.
    """
    in_release = release_endpoints(ctx)
    rows = serving_rows(timeline_of(ctx), ctx.window.start, ctx.window.end)
    versions = ctx.records.get("model_versions", ())
    served: dict[str, ServedVersion] = {}
    unknown: list[Record] = []
    for row in rows:
        name, version = row.get("model_name"), row.get("model_version")
        reference = str(row.get("model_asset_id") or "")
        if not row.get("model_recorded"):
            if in_release is None or lower(row.get("endpoint_id")) in in_release:
                unknown.append(row)
            continue
        if not name or not version:
            continue  # a reference without an explicit version is EV-04's subject, not a served version
        if ctx.kind == "release" and ctx.release_model and not is_release_version(ctx, name, version):
            continue
        workspace = str(row.get("workspace_id") or "")
        found = model_version_of(versions, workspace, reference, str(name), str(version))
        key = lower(found.get("asset_id")) if found else f"{lower(workspace)}|{name}|{version}|{lower(reference)}"
        entry = served.setdefault(key, ServedVersion(workspace, str(name), str(version), reference, found))
        entry.rows.append(row)
    ordered = sorted(served.values(), key=lambda s: (s.subject.lower(), s.model_name, s.model_version))
    return ordered, unknown


def first_put_in_service(
    served: ServedVersion, ctx: CheckContext
) -> tuple[datetime | None, datetime | None, list[Change]]:
    """(earliest, latest) time the version can have been put into service, and the writes between.

    The earliest is the first deployment write on a hosting deployment at or after the version's
    registration (the write that could first have set it); with no such write in the log, the
    later of the version's and the deployment's creation. The latest is the deployment's last
    write. Conservative on purpose: approval must predate the *earliest* possible deployment.
    """
    registered = when((served.version or {}).get("created_at"))
    deployment_rows = {lower(d.get("deployment_id")): d for d in ctx.rows("deployments")}
    writes = [
        c
        for c in changes(ctx.rows("activity_events"), (DEPLOYMENT_WRITE,))
        if lower(c.resource_id) in {lower(d) for d in served.deployment_ids}
        and (registered is None or c.started >= registered - CREATION_TOLERANCE)
    ]
    earliest: list[datetime] = [writes[0].started] if writes else []
    latest: list[datetime] = [c.started for c in writes]
    for deployment_id in served.deployment_ids:
        state = deployment_rows.get(lower(deployment_id)) or {}
        created, modified = when(state.get("created_at")), when(state.get("last_modified_at"))
        if not writes:
            candidates = [t for t in (created, registered) if t is not None]
            if candidates:
                earliest.append(max(candidates))
        if modified is not None:
            latest.append(modified)
        elif created is not None:
            latest.append(created)
    return (min(earliest) if earliest else None), (max(latest) if latest else None), writes
