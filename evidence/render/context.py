"""Turn a :class:`ReportInput` into what the templates show: sorted, summarised and capped.

All ordering is explicit (never dict or set order), so the same input gives the same bytes. Long
tables are capped: the rows that matter come first (subjects of findings, privileged roles,
failures), then the table says how many rows were left out and names the CSV in the package that
holds all of them. WeasyPrint lays out ~100-180 table rows/s and ~4 MB per page (research §1.3),
so the PDF can never carry a 150,000-row Activity Log; the HTML carries more but not everything.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup

from evidence.clock import parse_timestamp
from evidence.config import DEFAULT_PRIVILEGED_ROLES
from evidence.render import charts
from evidence.render.interface import REPORT_KINDS, ReportInput

Media = Literal["screen", "print"]

#: Rows per table: the PDF stays fast (research §1.3), the HTML stays usable in a browser.
#: WeasyPrint holds the whole document's layout until the PDF is written (~1.5-1.9 MB per page on
#: the issue 7 ``large`` tenant's report, mostly computed styles and one Pango layout per line of
#: text), so the print cap sets the render's memory on a big tenant: its report laid out with 200
#: rows per table took 435 MB over the process's baseline (233 pages, 1,991 table rows), with 100
#: 320 MB, with 50 218 MB (117 pages). A table that is cut says so under itself and names the CSV
#: (and its SHA-256) that holds every row; the summary lists the cut tables (``shortened``).
ROW_CAP: Mapping[Media, int] = {"print": 50, "screen": 2000}
#: Rows in event listings (notable events, access changes): the full log is always in the CSV, and
#: these lists would otherwise dominate layout time and memory on a busy tenant.
EVENT_CAP: Mapping[Media, int] = {"print": 50, "screen": 2000}
#: Rows in the appendix's list of evidence files (the PDF's cap kept at 200 when the other tables'
#: went to 50: a row is one line, and the demo package's 74 files stay listed in full).
FILE_CAP: Mapping[Media, int | None] = {"print": 200, "screen": None}
#: Rows in summary tables (operations, callers) and number of metric charts.
SUMMARY_CAP: Mapping[Media, int] = {"print": 40, "screen": 500}
CHART_CAP: Mapping[Media, int] = {"print": 24, "screen": 200}
#: Of those, charts of series other than requests / 5xx / P99 (CPU, memory, capacity...). SVG text is
#: the costliest thing WeasyPrint draws: it lays out and draws each character on its own (~0.1 ms per
#: character, ~1.4 ms per label measured on the demo report; charts were ~17% of its render), and the
#: CSV keeps them all.
OTHER_CHART_CAP: Mapping[Media, int] = {"print": 6, "screen": 200}

STATUSES = ("fail", "error", "manual_review", "not_assessed", "pass")
STATUS_LABELS = {
    "fail": "Fail",
    "error": "Error",
    "manual_review": "Manual review",
    "not_assessed": "Not assessed",
    "pass": "Pass",
}
SEVERITIES = ("high", "medium", "low", "info")
#: Findings whose subjects are pulled to the top of inventory tables.
ATTENTION = frozenset({"fail", "error", "manual_review"})

#: Record kinds in report order, with the label the summary uses.
RECORD_KINDS: tuple[tuple[str, str], ...] = (
    ("model_versions", "Model versions"),
    ("endpoints", "Online endpoints"),
    ("deployments", "Deployments"),
    ("serving_timeline", "Serving timeline"),
    ("role_assignments", "Role assignments"),
    ("activity_events", "Activity Log events"),
    ("metrics", "Metric series"),
)
#: Fields of a row that identify it; a finding's subject is matched against them.
ID_FIELDS: Mapping[str, tuple[str, ...]] = {
    "model_versions": ("asset_id",),
    "endpoints": ("endpoint_id",),
    "deployments": ("deployment_id", "model_asset_id"),
    "role_assignments": ("assignment_id", "principal_id"),
    "activity_events": ("event_id", "correlation_id"),
    "metrics": ("resource_id",),
}
#: Roles the inventory marks privileged besides the policy's (``ReportInput.privileged_roles``, the
#: ones EV-08 checks): the built-in RBAC administrator role, and any "...Administrator".
ADMIN_ROLES = frozenset({"role based access control administrator"})
#: Activity Log operations an auditor of model governance always wants listed.
NOTABLE_OPERATIONS = (
    "microsoft.authorization/roleassignments/",
    "microsoft.machinelearningservices/workspaces/onlineendpoints/",
    "microsoft.machinelearningservices/workspaces/models/",
    "microsoft.machinelearningservices/registries/",
    "/delete",
)
#: The Azure ML online endpoint metrics the per-deployment service charts are drawn from.
REQUESTS_METRIC = "RequestsPerMinute"
P99_METRIC = "RequestLatency_P99"
_APPROVAL_TAGS = ("approval", "approved", "approved_by", "approvedby", "approver", "approval_status")


@dataclass(frozen=True)
class Table:
    """One capped table: the rows shown, how many exist, and where the full table is."""

    kind: str
    rows: Sequence[Mapping[str, Any]]
    total: int
    csv: str
    csv_sha256: str | None
    collected: bool = True

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


def _lower(value: Any) -> str:
    return str(value).lower() if value is not None else ""


def natural_key(value: Any) -> tuple[int, int, str]:
    text = str(value)
    return (0, int(text), text) if text.isdigit() else (1, 0, text)


def short_name(arm_id: Any) -> str:
    """The last path segment of an ARM ID (``.../workspaces/ws-prod`` -> ``ws-prod``)."""
    text = str(arm_id or "")
    return text.rstrip("/").rsplit("/", 1)[-1] or text


def model_ref(asset_id: Any) -> str:
    """``credit-score:4`` from ``.../models/credit-score/versions/4``; otherwise the last segment."""
    parts = str(asset_id or "").rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    if len(parts) >= 4 and lowered[-4] == "models" and lowered[-2] == "versions":
        return f"{parts[-3]}:{parts[-1]}"
    return short_name(asset_id)


def assignment_label(assignment_id: Any) -> str:
    """``workspace ws-prod / 93085ac3-...``: where a role assignment is, and its GUID (full ID in the CSV)."""
    text = str(assignment_id or "")
    scope, _, _ = text.partition("/providers/Microsoft.Authorization/")
    return f"{scope_label(scope)} / {short_name(text)}" if text else ""


def scope_label(scope: Any) -> str:
    """``workspace ws-prod``, ``resource group rg-ml``, ``subscription 1234…`` from an ARM scope."""
    parts = [p for p in str(scope or "").split("/") if p]
    lowered = [p.lower() for p in parts]
    if not parts:
        return "(none)"
    if len(parts) >= 2 and lowered[-2] == "workspaces":
        return f"workspace {parts[-1]}"
    if len(parts) >= 2 and lowered[-2] == "registries":
        return f"registry {parts[-1]}"
    if len(parts) == 4 and lowered[2] == "resourcegroups":
        return f"resource group {parts[3]}"
    if len(parts) == 2 and lowered[0] == "subscriptions":
        return f"subscription {parts[1]}"
    if "managementgroups" in lowered:
        return f"management group {parts[-1]}"
    if parts == ["/"] or str(scope) == "/":  # pragma: no cover - split drops it
        return "root"
    return f"{parts[-2]} {parts[-1]}" if len(parts) >= 2 else parts[-1]


def timestamp(value: Any) -> str:
    """``2025-03-01 09:30:00`` (UTC); anything unparsable is shown as received."""
    if not value:
        return ""
    try:
        return parse_timestamp(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def pointer_label(pointer: Any, subject: Any = "") -> str:
    """A finding's evidence pointer, short enough for a table cell.

    ``asset_id=/subscriptions/.../versions/3`` reads ``asset_id = subject`` when it names the
    finding's subject, and long ARM IDs keep their last four segments. The exact pointer is in
    ``data/findings.json``; this is only how the report prints it.
    """
    text = str(pointer or "")
    key, sep, value = text.partition("=")
    if not sep:
        return text
    if subject and value.strip().lower() == str(subject).strip().lower():
        return f"{key} = subject"
    parts = value.strip("/").split("/")
    if value.startswith("/") and len(parts) > 4:
        return f"{key}=…/{'/'.join(parts[-4:])}"
    return text


def tags_text(tags: Any) -> str:
    if not isinstance(tags, Mapping) or not tags:
        return ""
    return "; ".join(f"{k}={v}" for k, v in sorted((str(k), str(v)) for k, v in tags.items()))


def tag_value(tags: Any, names: Iterable[str]) -> str:
    if not isinstance(tags, Mapping):
        return ""
    wanted = set(names)
    for key in sorted(tags, key=str):
        if re.sub(r"[^a-z_]", "", str(key).lower().replace("-", "_")) in wanted:
            return str(tags[key])
    return ""


_DEFAULT_PRIVILEGED = frozenset(r.lower() for r in DEFAULT_PRIVILEGED_ROLES)


def is_privileged(role_name: Any, policy_roles: frozenset[str] = _DEFAULT_PRIVILEGED) -> bool:
    """Whether a role is privileged; ``policy_roles`` are lower-case role names."""
    name = _lower(role_name)
    return name in policy_roles or name in ADMIN_ROLES or name.endswith("administrator")


def _rank(values: Sequence[str], value: Any) -> int:
    return values.index(value) if value in values else len(values)


class ContextBuilder:
    """Builds the template context for one medium ("screen" HTML or "print" PDF)."""

    def __init__(self, report: ReportInput, media: Media) -> None:
        self.report = report
        self.media = media
        self.cap = ROW_CAP[media]
        self.summary_cap = SUMMARY_CAP[media]
        self.digests = {path: digest for path, digest in report.evidence_files}
        self.privileged_roles = tuple(report.privileged_roles) or DEFAULT_PRIVILEGED_ROLES
        self._privileged = frozenset(r.lower() for r in self.privileged_roles)
        self.flagged = frozenset(_lower(f.get("subject")) for f in report.findings if f.get("status") in ATTENTION)
        #: Print only: chart SVGs by the asset URL the PDF's ``<img>`` loads them from.
        self.assets: dict[str, tuple[bytes, str]] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _rows(self, kind: str) -> Sequence[Mapping[str, Any]] | None:
        rows = self.report.records.get(kind)
        return None if rows is None else rows

    def _is_flagged(self, kind: str, row: Mapping[str, Any]) -> bool:
        return any(_lower(row.get(f)) in self.flagged for f in ID_FIELDS.get(kind, ()) if row.get(f))

    def _csv(self, kind: str) -> tuple[str, str | None]:
        path = f"data/records/{kind}.csv"
        return path, self.digests.get(path)

    def _table(
        self, kind: str, rows: Sequence[Mapping[str, Any]] | None, display: list[dict[str, Any]], cap: int
    ) -> Table:
        csv, digest = self._csv(kind)
        total = len(display)
        return Table(kind, display[:cap], total, csv, digest, collected=rows is not None)

    # -- sections --------------------------------------------------------------------------
    def cover(self) -> dict[str, Any]:
        r = self.report
        scope = r.scope
        signer = dict(r.signer) if r.signer else None
        return {
            "kind_label": REPORT_KINDS[r.kind],
            "organisation": r.organisation or str(scope.get("organisation", "")),
            "subscriptions": sorted(str(s) for s in scope.get("subscriptions", ()) or ()),
            "workspaces": sorted(str(w) for w in scope.get("workspaces", ()) or ()),
            "registries": sorted(str(g) for g in scope.get("registries", ()) or ()),
            "model": scope.get("model"),
            "version": scope.get("version"),
            "window_start": r.window["start"],
            "window_end": r.window["end"],
            "signer": signer,
        }

    def record_counts(self) -> list[dict[str, Any]]:
        known = dict(RECORD_KINDS)
        kinds = [k for k, _ in RECORD_KINDS] + sorted(k for k in self.report.records if k not in known)
        out = []
        for kind in kinds:
            rows = self._rows(kind)
            csv, digest = self._csv(kind)
            out.append(
                {
                    "kind": kind,
                    "label": known.get(kind, kind.replace("_", " ").capitalize()),
                    "count": None if rows is None else len(rows),
                    "csv": csv,
                    "csv_sha256": digest,
                }
            )
        return out

    def findings_matrix(self) -> dict[str, Any]:
        counts = Counter((f.get("status"), f.get("severity")) for f in self.report.findings)
        rows = []
        for status in STATUSES:
            cells = [counts.get((status, sev), 0) for sev in SEVERITIES]
            rows.append({"status": status, "label": STATUS_LABELS[status], "cells": cells, "total": sum(cells)})
        return {"severities": SEVERITIES, "rows": rows, "total": len(self.report.findings)}

    def _finding_rows(self, findings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        ordered = sorted(
            findings,
            key=lambda f: (
                _rank(STATUSES, f.get("status")),
                _rank(SEVERITIES, f.get("severity")),
                str(f.get("subject", "")),
                str(f.get("message", "")),
            ),
        )
        return [
            {
                "status": str(f.get("status", "")),
                "status_label": STATUS_LABELS.get(str(f.get("status")), str(f.get("status", ""))),
                "severity": str(f.get("severity", "")),
                "subject": str(f.get("subject", "")),
                "subject_name": short_name(f.get("subject")),
                "message": str(f.get("message", "")),
                "evidence": [
                    {"file": str(e.get("file", "")), "pointer": str(e.get("pointer", ""))}
                    for e in f.get("evidence", ()) or ()
                ],
                # An accepted exception keeps its fail status; the report says who accepted it, until when.
                "waiver": dict(f["waiver"]) if f.get("waiver") else None,
            }
            for f in ordered
        ]

    def controls(self) -> list[dict[str, Any]]:
        by_control: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for f in self.report.findings:
            by_control[str(f.get("control_id", ""))].append(f)
        declared = [dict(c) for c in self.report.controls]
        declared_ids = {str(c.get("id")) for c in declared}
        # A finding for a control nobody described is still shown, never dropped.
        for cid in sorted(set(by_control) - declared_ids):
            declared.append({"id": cid, "title": cid, "rationale": "", "frameworks": [], "status": None})
        out = []
        for c in sorted(declared, key=lambda c: natural_key(c.get("id", ""))):
            cid = str(c.get("id", ""))
            findings = by_control.get(cid, [])
            status = c.get("status") or self._derive_status(findings)
            rows = self._finding_rows(findings)
            files = sorted({e["file"] for row in rows for e in row["evidence"] if e["file"]})
            out.append(
                {
                    "id": cid,
                    "anchor": "control-" + re.sub(r"[^A-Za-z0-9_-]", "-", cid),
                    "title": str(c.get("title", cid)),
                    "rationale": str(c.get("rationale", "")),
                    "frameworks": [str(x) for x in c.get("frameworks", ()) or ()],
                    "status": str(status),
                    "status_label": STATUS_LABELS.get(str(status), str(status)),
                    "findings": rows[: self.cap],
                    "findings_total": len(rows),
                    "counts": Counter(r["status"] for r in rows),
                    "evidence_files": [(p, self.digests.get(p)) for p in files[: self.cap]],
                    "evidence_files_total": len(files),
                }
            )
        return out

    @staticmethod
    def _derive_status(findings: Sequence[Mapping[str, Any]]) -> str:
        if not findings:
            return "not_assessed"
        return min((str(f.get("status")) for f in findings), key=lambda s: _rank(STATUSES, s))

    def model_versions(self) -> Table:
        rows = self._rows("model_versions")
        display = []
        for r in rows or ():
            tags = r.get("tags") or {}
            display.append(
                {
                    "flagged": self._is_flagged("model_versions", r),
                    "model_name": str(r.get("model_name", "")),
                    "version": str(r.get("version", "")),
                    "stage": str(r.get("stage") or ""),
                    "approval": tag_value(tags, _APPROVAL_TAGS),
                    "owner": tag_value(tags, ("owner",)),
                    "archived": bool(r.get("archived")),
                    "created_at": timestamp(r.get("created_at")),
                    "created_by": str(r.get("created_by") or ""),
                    "job_name": str(r.get("job_name") or ""),
                    "workspace": short_name(r.get("workspace_id")),
                    "tags": tags_text(tags),
                    "asset_id": str(r.get("asset_id", "")),
                }
            )
        display.sort(key=lambda d: (not d["flagged"], d["model_name"], natural_key(d["version"]), d["workspace"]))
        return self._table("model_versions", rows, display, self.cap)

    def endpoints(self) -> Table:
        rows = self._rows("endpoints")
        display = [
            {
                "flagged": self._is_flagged("endpoints", r),
                "endpoint_name": str(r.get("endpoint_name", "")),
                "workspace": short_name(r.get("workspace_id")),
                "auth_mode": str(r.get("auth_mode") or ""),
                "provisioning_state": str(r.get("provisioning_state") or ""),
                "traffic": "; ".join(f"{k} {v}%" for k, v in sorted((r.get("traffic") or {}).items())),
                "mirror": "; ".join(f"{k} {v}%" for k, v in sorted((r.get("mirror_traffic") or {}).items())),
            }
            for r in rows or ()
        ]
        display.sort(key=lambda d: (not d["flagged"], d["endpoint_name"], d["workspace"]))
        return self._table("endpoints", rows, display, self.cap)

    def deployments(self) -> Table:
        rows = self._rows("deployments")
        display = [
            {
                "flagged": self._is_flagged("deployments", r),
                "endpoint_name": str(r.get("endpoint_name", "")),
                "deployment_name": str(r.get("deployment_name", "")),
                "model": f"{r.get('model_name') or model_ref(r.get('model_asset_id'))}"
                + (f":{r.get('model_version')}" if r.get("model_version") not in (None, "") else ""),
                "traffic_percent": r.get("traffic_percent"),
                "mirror_traffic_percent": r.get("mirror_traffic_percent"),
                "provisioning_state": str(r.get("provisioning_state") or ""),
                "instance": f"{r.get('instance_count') or ''} × {r.get('instance_type') or ''}".strip(" ×"),
            }
            for r in rows or ()
        ]
        display.sort(key=lambda d: (not d["flagged"], d["endpoint_name"], d["deployment_name"]))
        return self._table("deployments", rows, display, self.cap)

    def serving_chart(self) -> Markup | None:
        rows = self._rows("serving_timeline")
        if not rows:
            return None
        bars = []
        for r in rows:
            share = r.get("traffic_percent")
            if r.get("model_name") and r.get("model_version") not in (None, ""):
                label = f"{r['model_name']}:{r['model_version']}"
            else:
                label = model_ref(r.get("model_asset_id")) if r.get("model_asset_id") else ""
            bars.append(
                charts.Bar(
                    lane=f"{short_name(r.get('endpoint_id'))}/{r.get('deployment_name', '')}",
                    start=str(r.get("from") or self.report.window["start"]),
                    end=str(r["to"]) if r.get("to") else None,
                    label=label,
                    # None stays None: a share the log did not record is not 0% (timeline basis).
                    percent=float(share) if isinstance(share, int | float) else None,
                )
            )
        return charts.timeline_chart(
            bars, title="Serving timeline", start=self.report.window["start"], end=self.report.window["end"]
        )

    def chart(self, svg: Markup, label: str) -> Markup:
        """The chart as the page shows it: inline SVG in the HTML, an image of a bundled asset in the PDF."""
        return svg if self.media == "screen" else charts.as_image(svg, label, self.assets)

    def role_assignments(self) -> Table:
        rows = self._rows("role_assignments")
        display = [
            {
                "flagged": self._is_flagged("role_assignments", r),
                "privileged": is_privileged(r.get("role_name"), self._privileged),
                "role_name": str(r.get("role_name") or short_name(r.get("role_definition_id"))),
                "principal_id": str(r.get("principal_id", "")),
                "principal_type": str(r.get("principal_type") or ""),
                "scope": scope_label(r.get("scope")),
                # Inherited assignments are expanded per workspace: the same assignment shows once
                # for each workspace it reaches, so the row names the workspace.
                "workspace": short_name(r.get("workspace_id")) if r.get("workspace_id") else "",
                "inherited": bool(r.get("inherited")),
                "created_on": timestamp(r.get("created_on")),
                "created_by": str(r.get("created_by") or ""),
                "condition": str(r.get("condition") or ""),
            }
            for r in rows or ()
        ]
        display.sort(
            key=lambda d: (
                not d["flagged"],
                not d["privileged"],
                d["inherited"],
                d["role_name"],
                d["principal_type"],
                d["principal_id"],
                d["scope"],
                d["workspace"],
            )
        )
        return self._table("role_assignments", rows, display, self.cap)

    def access_changes(self) -> Table:
        """Role assignment writes and deletes in the Activity Log: the changes in the review period."""
        rows = self._rows("activity_events")
        changes = sorted(
            (
                r
                for r in rows or ()
                if "microsoft.authorization/roleassignments/" in _lower(r.get("operation"))
                and not _lower(r.get("operation")).endswith("/read")
            ),
            key=lambda r: (str(r.get("timestamp", "")), str(r.get("event_id", ""))),
        )
        display = [
            {
                "flagged": self._is_flagged("activity_events", r),
                "timestamp": timestamp(r.get("timestamp")),
                "change": "removed" if _lower(r.get("operation")).endswith("/delete") else "granted or changed",
                "status": str(r.get("status", "")),
                "caller": str(r.get("caller", "")),
                "resource": scope_label(str(r.get("resource_id", "")).split("/providers/Microsoft.Authorization")[0])
                + " / "
                + short_name(r.get("resource_id")),
            }
            for r in changes
        ]
        csv, digest = self._csv("activity_events")
        return Table("activity_events", display[: EVENT_CAP[self.media]], len(display), csv, digest, rows is not None)

    def access_review(self) -> dict[str, Any] | None:
        """The frozen population, the changes, the diff and the decisions of an access review."""
        review = self.report.review
        if review is None:
            return None
        cap = EVENT_CAP[self.media]

        def table(kind: str, rows: Sequence[Mapping[str, Any]] | None, limit: int) -> Table | None:
            if rows is None:
                return None
            display = [
                {
                    **r,
                    "workspace_name": short_name(r.get("workspace_id")) if r.get("workspace_id") else "",
                    "assignment_label": assignment_label(r.get("assignment")),
                    "flagged": any(_lower(r.get(k)) in self.flagged for k in ("assignment", "assignment_id")),
                }
                for r in rows
            ]
            return self._table(kind, rows, display, limit)

        def assignments(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            # role_assignments rows of this package or of the previous one: any key may be absent.
            return [
                {
                    "role": str(r.get("role_name") or short_name(r.get("role_definition_id")) or ""),
                    "principal": f"{r.get('principal_id') or 'unknown'} ({r.get('principal_type') or 'unknown'})",
                    "assignment_id": str(r.get("assignment_id") or ""),
                    "assignment_label": assignment_label(r.get("assignment_id")),
                }
                for r in rows
            ]

        diff = review.get("diff")
        if diff:
            diff = {"added": assignments(diff["added"]), "removed": assignments(diff["removed"])}
        pending = [{"id": a, "label": assignment_label(a)} for a in review.get("pending_removals") or ()]
        return {
            "population": table("access_review_population", review.get("population"), self.cap),
            "changes": table("access_review_changes", review.get("changes"), cap),
            "previous": review.get("previous"),
            "added": table("access_review_added", diff["added"], self.cap) if diff else None,
            "removed": table("access_review_removed", diff["removed"], self.cap) if diff else None,
            "decisions": table("access_review_decisions", review.get("decisions"), self.cap),
            "pending_removals": pending,
            "template": "data/review/decisions_template.csv",
            "template_sha256": self.digests.get("data/review/decisions_template.csv"),
        }

    def privileged_count(self) -> int:
        return sum(
            1 for r in self._rows("role_assignments") or () if is_privileged(r.get("role_name"), self._privileged)
        )

    def activity(self) -> dict[str, Any]:
        rows = self._rows("activity_events")
        by_op: Counter[str] = Counter()
        failed_by_op: Counter[str] = Counter()
        by_caller: Counter[str] = Counter()
        notable: list[tuple[tuple[int, str, str], Mapping[str, Any]]] = []
        first = last = ""
        for r in rows or ():
            op = str(r.get("operation", ""))
            status = str(r.get("status", ""))
            failed = status.lower() not in ("succeeded", "started", "accepted", "")
            by_op[op] += 1
            by_caller[str(r.get("caller", ""))] += 1
            if failed:
                failed_by_op[op] += 1
            ts = str(r.get("timestamp", ""))
            first = ts if not first or ts < first else first
            last = ts if ts > last else last
            flagged = self._is_flagged("activity_events", r)
            op_lower = op.lower()
            if flagged or failed or any(n in op_lower for n in NOTABLE_OPERATIONS):
                rank = 0 if flagged else 1 if failed else 2
                notable.append(((rank, ts, str(r.get("event_id", ""))), r))
        notable.sort(key=lambda item: item[0])
        events = [
            {
                "flagged": key[0] == 0,
                "timestamp": timestamp(r.get("timestamp")),
                "operation": str(r.get("operation", "")),
                "status": str(r.get("status", "")),
                "caller": str(r.get("caller", "")),
                "resource": short_name(r.get("resource_id")),
                "correlation_id": str(r.get("correlation_id") or ""),
            }
            for key, r in notable
        ]
        csv, digest = self._csv("activity_events")
        ops = sorted(by_op.items(), key=lambda kv: (-kv[1], kv[0]))
        callers = sorted(by_caller.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "collected": rows is not None,
            "total": len(rows or ()),
            "first": timestamp(first),
            "last": timestamp(last),
            "operations": [
                {"operation": op, "count": n, "failed": failed_by_op.get(op, 0)} for op, n in ops[: self.summary_cap]
            ],
            "operations_total": len(ops),
            "callers": [{"caller": c, "count": n} for c, n in callers[: self.summary_cap]],
            "callers_total": len(callers),
            "notable": Table(
                "activity_events", events[: EVENT_CAP[self.media]], len(events), csv, digest, rows is not None
            ),
            "csv": csv,
            "csv_sha256": digest,
        }

    def _release_markers(self) -> dict[str, list[charts.Marker]]:
        """Releases by the endpoint (lower-case ARM ID) they touched, for the metric charts.

        The serving timeline is rebuilt from the deployment and endpoint writes, so when it exists
        its segment starts inside the window are the markers ("blue 90%", or "blue" when the share
        was not recorded); without it, the successful deployment writes in the Activity Log are.
        """
        markers: dict[str, list[charts.Marker]] = defaultdict(list)
        timeline = self._rows("serving_timeline")
        if timeline:
            window_start = parse_timestamp(self.report.window["start"])
            for r in timeline:
                try:
                    begin = parse_timestamp(str(r.get("from")))
                except ValueError:
                    continue
                if begin <= window_start:  # began before the window: not a release inside it
                    continue
                share = r.get("traffic_percent")
                label = str(r.get("deployment_name", "")) + (f" {share:g}%" if isinstance(share, int | float) else "")
                markers[_lower(r.get("endpoint_id"))].append(charts.Marker(str(r["from"]), label))
            return markers
        for r in self._rows("activity_events") or ():
            op = _lower(r.get("operation"))
            if "onlineendpoints/deployments/write" not in op or _lower(r.get("status")) != "succeeded":
                continue
            resource = _lower(r.get("resource_id"))
            endpoint = resource.split("/deployments/")[0]
            markers[endpoint].append(charts.Marker(str(r.get("timestamp")), short_name(r.get("resource_id"))))
        return markers

    @staticmethod
    def _deployment_of(row: Mapping[str, Any]) -> tuple[str, str]:
        """(endpoint ARM ID, deployment name) a metric series belongs to ("" when endpoint-wide)."""
        resource = str(row.get("resource_id", ""))
        index = resource.lower().rfind("/deployments/")
        if index >= 0:
            return resource[:index], resource[index + len("/deployments/") :]
        dims = {str(k).lower(): str(v) for k, v in (row.get("dimensions") or {}).items()}
        return resource, dims.get("deployment", "")

    @staticmethod
    def _points(row: Mapping[str, Any]) -> list[tuple[str, float]]:
        return [
            (str(p.get("timestamp")), float(p["value"]))
            for p in row.get("points", ()) or ()
            if isinstance(p, Mapping) and isinstance(p.get("value"), int | float)
        ]

    def _service_series(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Per deployment: requests per minute, 5xx share and P99 latency (what EV-10 summarises).

        Requests are the sum over the ``statusCodeClass`` split of ``RequestsPerMinute``; the 5xx
        share is the 5xx part of that sum at the same instant, only where the sum is above zero.
        """
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            metric = str(r.get("metric", ""))
            if metric not in (REQUESTS_METRIC, P99_METRIC):
                continue
            endpoint, deployment = self._deployment_of(r)
            group = groups.setdefault(
                (endpoint, deployment),
                {
                    "total": defaultdict(float),
                    "errors": defaultdict(float),
                    "p99": [],
                    "interval": "",
                    "metrics": set(),
                },
            )
            group["metrics"].add(metric)
            group["interval"] = group["interval"] or str(r.get("interval") or "")
            if metric == P99_METRIC:
                group["p99"].extend(self._points(r))
                continue
            dims = {str(k).lower(): str(v).lower() for k, v in (r.get("dimensions") or {}).items()}
            if "statuscodeclass" in dims:
                group["metrics"].add("split")
            for at, value in self._points(r):
                group["total"][at] += value
                if dims.get("statuscodeclass") == "5xx":
                    group["errors"][at] += value
        out = []
        for (endpoint, deployment), g in sorted(groups.items(), key=lambda kv: (kv[0][0].lower(), kv[0][1])):
            name = f"{short_name(endpoint)}/{deployment}" if deployment else short_name(endpoint)
            # Without the statusCodeClass split the 5xx share is unknown: the chart says "no data
            # points", never a flat 0%.
            share = (
                [(at, 100.0 * g["errors"][at] / total) for at, total in sorted(g["total"].items()) if total > 0]
                if "split" in g["metrics"]
                else []
            )
            charts_for = []
            if REQUESTS_METRIC in g["metrics"]:
                charts_for.append((f"{name}: requests per minute", "requests/min", sorted(g["total"].items())))
                charts_for.append((f"{name}: 5xx share of requests", "%", share))
            if P99_METRIC in g["metrics"]:
                charts_for.append((f"{name}: P99 latency", "ms", sorted(g["p99"])))
            for title, unit, points in charts_for:
                out.append(
                    {"title": title, "unit": unit, "points": points, "endpoint": endpoint, "interval": g["interval"]}
                )
        return out

    def metrics(self) -> dict[str, Any]:
        rows = self._rows("metrics") or ()
        markers = self._release_markers()
        service = self._service_series(rows)
        # Every other series (CPU, memory, capacity, P50...) as collected, after the service charts.
        other = sorted(
            (r for r in rows if str(r.get("metric", "")) not in (REQUESTS_METRIC, P99_METRIC)),
            key=lambda r: (
                str(r.get("resource_id", "")),
                str(r.get("metric", "")),
                tags_text(r.get("dimensions")),
                str(r.get("aggregation", "")),
            ),
        )
        specs = [{**s, "group": "service", "resource_id": s["endpoint"], "dimensions": ""} for s in service]
        shown_other = OTHER_CHART_CAP[self.media]
        for r in other[:shown_other]:
            dims = tags_text(r.get("dimensions"))
            title = f"{short_name(r.get('resource_id'))}: {r.get('metric', '')} ({r.get('aggregation', '')})"
            specs.append(
                {
                    "group": "other",
                    "title": title + (f" [{dims}]" if dims else ""),
                    "unit": str(r.get("unit") or ""),
                    "points": self._points(r),
                    "endpoint": self._deployment_of(r)[0],
                    "interval": str(r.get("interval") or ""),
                    "resource_id": str(r.get("resource_id", "")),
                    "dimensions": dims,
                }
            )
        cap = CHART_CAP[self.media]
        out = []
        for spec in specs[:cap]:
            endpoint_markers = markers.get(spec["endpoint"].lower(), ())
            out.append(
                {
                    "group": spec["group"],
                    "title": spec["title"],
                    "dimensions": spec["dimensions"],
                    "resource_id": spec["resource_id"],
                    "interval": spec["interval"],
                    "points": len(spec["points"]),
                    "svg": charts.line_chart(
                        spec["points"],
                        title=spec["title"],
                        unit=spec["unit"],
                        start=self.report.window["start"],
                        end=self.report.window["end"],
                        markers=sorted(set(endpoint_markers), key=lambda m: (m.at, m.label)),
                    ),
                }
            )
        csv, digest = self._csv("metrics")
        total = len(service) + len(other)
        return {
            "collected": self._rows("metrics") is not None,
            "charts": out,
            "total": total,
            "series_total": len(rows),
            "hidden": total - len(out),
            "csv": csv,
            "csv_sha256": digest,
        }

    def provenance(self) -> dict[str, Any]:
        by_collector: dict[str, dict[str, Any]] = {}
        statuses: Counter[str] = Counter()
        for q in self.report.requests:
            name = str(q.get("collector", ""))
            entry = by_collector.setdefault(name, {"count": 0, "api_versions": set(), "statuses": Counter()})
            entry["count"] += 1
            if q.get("api_version"):
                entry["api_versions"].add(str(q["api_version"]))
            entry["statuses"][str(q.get("status", ""))] += 1
            statuses[str(q.get("status", ""))] += 1
        collectors = [
            {
                "collector": name,
                "count": e["count"],
                "api_versions": sorted(e["api_versions"]),
                "statuses": ", ".join(f"{s}×{n}" for s, n in sorted(e["statuses"].items())),
            }
            for name, e in sorted(by_collector.items())
        ]
        received = sorted(str(q.get("received_at", "")) for q in self.report.requests if q.get("received_at"))
        gaps = sorted(
            (dict(g) for g in self.report.gaps),
            key=lambda g: (str(g.get("collector", "")), str(g.get("scope", "")), str(g.get("at", ""))),
        )
        redactions = sorted(
            (dict(x) for x in self.report.redactions),
            key=lambda x: (str(x.get("file", "")), str(x.get("pointer", ""))),
        )
        files = sorted(self.report.evidence_files)
        file_cap = FILE_CAP[self.media]
        return {
            "request_total": len(self.report.requests),
            "collectors": collectors,
            "api_versions": sorted({v for c in collectors for v in c["api_versions"]}),
            "statuses": ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())),
            "first_received": timestamp(received[0]) if received else "",
            "last_received": timestamp(received[-1]) if received else "",
            "gaps": [
                {
                    "collector": str(g.get("collector", "")),
                    "scope": str(g.get("scope", "")),
                    "scope_label": scope_label(g.get("scope")),
                    "status": "" if g.get("status") is None else str(g.get("status")),
                    "error_code": str(g.get("error_code") or ""),
                    "message": str(g.get("message", "")),
                    "at": timestamp(g.get("at")),
                }
                for g in gaps[: self.cap]
            ],
            "gaps_total": len(gaps),
            "redactions": [
                {k: str(x.get(k, "")) for k in ("file", "pointer", "reason")} for x in redactions[: self.cap]
            ],
            "redactions_total": len(redactions),
            "files": files[:file_cap],
            "files_total": len(files),
        }

    def coverage(self) -> list[dict[str, str]]:
        """Whether the window lies inside what each time-bounded source still retained at collection.

        Azure keeps 90 days of Activity Log and 93 days of platform metrics; anything older than
        that at collection time cannot be in the package, whatever the window asked for.
        """
        from evidence.collect.activity import ACTIVITY_LOG_RETENTION
        from evidence.collect.metrics import METRICS_RETENTION

        collected = parse_timestamp(self.report.generated_at)
        start = parse_timestamp(self.report.window["start"])
        out = []
        for source, kind, retention in (
            ("Activity Log", "activity_events", ACTIVITY_LOG_RETENTION),
            ("Platform metrics", "metrics", METRICS_RETENTION),
        ):
            oldest = collected - retention
            out.append(
                {
                    "source": source,
                    "retention_days": str(retention.days),
                    "oldest": oldest.strftime("%Y-%m-%d %H:%M:%S"),
                    "covered": "yes" if start >= oldest else "no",
                    "collected": "yes" if self._rows(kind) is not None else "no",
                }
            )
        return out

    def verify_steps(self) -> dict[str, Any]:
        """The hand-verification commands, taken from the text of VERIFY.txt itself.

        ``verify_instructions`` writes VERIFY.txt into every signed package; reading the commands
        out of it (rather than retyping them here) keeps the report's appendix and the package's
        own instructions the same commands for the same key type.
        """
        from evidence.sign.interface import Algorithm
        from evidence.sign.package_signature import verify_instructions

        signer = self.report.signer or {}
        algorithm = str(signer.get("algorithm") or "")
        known = algorithm if algorithm in {a.value for a in Algorithm} else None
        text = verify_instructions("PACKAGE", str(signer.get("fingerprint") or ""), algorithm=known)
        lines = [line.strip() for line in text.splitlines()]
        return {
            "sha256sum": [line for line in lines if line.startswith("sha256sum ")],
            "ssh_keygen": [line for line in lines if line.startswith("ssh-keygen ")],
            "ssh_expect": next((line for line in lines if line.startswith("Expect: Good")), ""),
            "openssl": [line for line in lines if line.startswith(("openssl ", "# "))],
        }

    def build(self) -> dict[str, Any]:
        r = self.report
        controls = self.controls()
        context: dict[str, Any] = {
            "report": r,
            "media": self.media,
            "print": self.media == "print",
            "cover": self.cover(),
            "record_counts": self.record_counts(),
            "matrix": self.findings_matrix(),
            "controls": controls,
            "control_status_counts": Counter(c["status"] for c in controls),
            "statuses": STATUSES,
            "status_labels": STATUS_LABELS,
            "model_versions": self.model_versions(),
            "endpoints": self.endpoints(),
            "deployments": self.deployments(),
            "serving_chart": self.serving_chart(),
            "serving_csv": self._csv("serving_timeline"),
            "digests": self.digests,
            "verify": self.verify_steps(),
            "coverage": self.coverage(),
            "role_assignments": self.role_assignments(),
            "privileged_count": self.privileged_count(),
            "privileged_roles": sorted(self.privileged_roles),
            "access_changes": self.access_changes(),
            "access_review": self.access_review(),
            "activity": self.activity(),
            "metrics": self.metrics(),
            "provenance": self.provenance(),
            "row_cap": self.cap,
            "screen_row_cap": ROW_CAP["screen"],
            "chart": self.chart,
            "assets": self.assets,  # filled while the template renders (``chart`` in print)
        }
        context["shortened"] = shortened_tables(context)
        return context


def shortened_tables(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every table of the report that leaves rows out, in report order: label, rows shown, rows in all.

    The summary names them, so a reader of a big tenant's PDF learns up front that its tables are
    excerpts; each table also says so under itself and names the file that holds every row.
    """
    out: list[dict[str, Any]] = []

    def add(label: str, shown: int, total: int) -> None:
        if total > shown:
            out.append({"label": label, "shown": shown, "total": total})

    for c in context["controls"]:
        add(f"{c['id']} findings", len(c["findings"]), c["findings_total"])
        add(f"{c['id']} evidence files", len(c["evidence_files"]), c["evidence_files_total"])
    review = context["access_review"] or {}
    review_tables = (
        ("population", "Access review population"),
        ("changes", "Access review changes"),
        ("added", "Assignments added since the previous review"),
        ("removed", "Assignments removed since the previous review"),
        ("decisions", "Reviewer decisions"),
    )
    tables: list[tuple[str, Table | None]] = [
        ("Model versions", context["model_versions"]),
        ("Online endpoints", context["endpoints"]),
        ("Deployments", context["deployments"]),
        ("Role assignments", context["role_assignments"]),
        ("Access changes in the window", context["access_changes"]),
        *((label, review.get(key)) for key, label in review_tables),
        ("Notable Activity Log events", context["activity"]["notable"]),
    ]
    for label, table in tables:
        if table is not None:
            add(label, len(table.rows), table.total)
    activity = context["activity"]
    add("Activity Log events by operation", len(activity["operations"]), activity["operations_total"])
    add("Activity Log events by caller", len(activity["callers"]), activity["callers_total"])
    provenance = context["provenance"]
    add("Gaps", len(provenance["gaps"]), provenance["gaps_total"])
    add("Redactions", len(provenance["redactions"]), provenance["redactions_total"])
    add("Evidence files", len(provenance["files"]), provenance["files_total"])
    return out


def build_context(report: ReportInput, media: Media) -> dict[str, Any]:
    return ContextBuilder(report, media).build()
