"""EV-10 monitoring evidence for every deployment that served traffic in the window.

From the Azure Monitor series the metrics collector keeps (azure-limits §4.1):

* request volume: ``RequestsPerMinute`` (Average per interval) x minutes per interval, summed;
* 5xx share: the same over the series whose ``statusCodeClass`` is ``5xx``;
* P99 latency: ``RequestLatency_P99`` (Average per interval): the worst and the mean interval.

Endpoint-level series are split by the ``deployment`` dimension; deployment-level series (resource
ID of the deployment) count for that deployment. Azure Monitor returns no series at all for a
dimension value without data, so "no series for this deployment" while the endpoint has series
reads as "no requests recorded", which a person should confirm; an endpoint with no series at all
is missing evidence.

For ``--kind release`` the endpoint is also summarised ``policy.monitoring_window_days`` before and
after the release version was first put into service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Record, Severity, Status
from evidence.check.population import (
    TIMELINE_KIND,
    gap_findings,
    lower,
    not_collected,
    ref,
    scope_subject,
    when,
)
from evidence.check.timeline import first_put_in_service, served_population, serving_rows, timeline_of
from evidence.clock import isoformat

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?)?$", re.IGNORECASE)


def interval_minutes(interval: Any) -> float | None:
    """Minutes in an ISO 8601 duration such as PT1M, PT1H, PT6H or P1D; None if unreadable."""
    match = _DURATION.match(str(interval or ""))
    if not match or not any(match.groupdict().values()):
        return None
    days, hours, minutes = (int(match.group(k) or 0) for k in ("d", "h", "m"))
    total = days * 1440 + hours * 60 + minutes
    return float(total) if total else None


def _dimension(series: Mapping[str, Any], name: str) -> str | None:
    for key, value in (series.get("dimensions") or {}).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def series_for(metrics: Sequence[Record], endpoint_id: str, deployment: str | None) -> list[Record]:
    """Series of one deployment (or the whole endpoint when ``deployment`` is None)."""
    out = []
    for series in metrics:
        resource = lower(series.get("resource_id"))
        if resource == lower(endpoint_id):
            if deployment is None or (_dimension(series, "deployment") or "").lower() == deployment.lower():
                out.append(series)
        elif resource.startswith(lower(endpoint_id) + "/deployments/") and (
            deployment is None or resource == lower(f"{endpoint_id}/deployments/{deployment}")
        ):
            out.append(series)
    return out


@dataclass(frozen=True)
class Summary:
    requests: float
    errors_5xx: float
    p99_max_ms: float | None
    p99_mean_ms: float | None
    points: int  # data points read, all series

    @property
    def share_5xx(self) -> float | None:
        return self.errors_5xx / self.requests if self.requests else None

    def text(self) -> str:
        share = f"{self.share_5xx:.2%}" if self.share_5xx is not None else "n/a"
        p99 = (
            f"P99 max {self.p99_max_ms:.0f} ms, mean {self.p99_mean_ms:.0f} ms"
            if self.p99_max_ms is not None and self.p99_mean_ms is not None
            else "P99 n/a"
        )
        return f"{self.requests:.0f} requests, 5xx share {share}, {p99}"

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": round(self.requests, 3),
            "errors_5xx": round(self.errors_5xx, 3),
            "share_5xx": None if self.share_5xx is None else round(self.share_5xx, 6),
            "p99_max_ms": self.p99_max_ms,
            "p99_mean_ms": None if self.p99_mean_ms is None else round(self.p99_mean_ms, 3),
            "points": self.points,
        }


def summarise(series: Sequence[Record], start: datetime, end: datetime) -> Summary:
    """Request volume, 5xx and P99 latency over [start, end) from the given series."""
    requests = errors = 0.0
    latencies: list[float] = []
    points = 0
    for row in series:
        metric = str(row.get("metric") or "")
        minutes = interval_minutes(row.get("interval")) or 1.0
        for point in row.get("points") or ():
            moment, value = when(point.get("timestamp")), point.get("value")
            if moment is None or not start <= moment < end or not isinstance(value, int | float):
                continue
            points += 1
            if metric == "RequestsPerMinute":
                requests += float(value) * minutes
                if (_dimension(row, "statusCodeClass") or "").lower() == "5xx":
                    errors += float(value) * minutes
            elif metric == "RequestLatency_P99":
                latencies.append(float(value))
    return Summary(
        requests,
        errors,
        max(latencies) if latencies else None,
        sum(latencies) / len(latencies) if latencies else None,
        points,
    )


class MonitoringEvidence(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-10",
        title="Monitoring evidence exists for every deployment that served traffic",
        rationale=(
            "A model in production must be watched: request volume, error share and latency for the window show "
            "it was, and for a release, before against after the rollout shows the change did no harm."
        ),
        frameworks=("SOC 2 CC7.2", "SOC 2 CC4.1", "EU AI Act Art. 72", "SR 11-7 (ongoing monitoring)"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "metrics")
        if early:
            return early
        findings = gap_findings(
            self, ctx, "deployments there were not assessed", "metrics", "endpoints", "activity_log"
        )
        metrics = ctx.rows("metrics")
        rows = serving_rows(timeline_of(ctx), ctx.window.start, ctx.window.end)
        if ctx.kind == "release" and ctx.release_model:
            endpoints = {lower(r["endpoint_id"]) for r in rows if r.get("model_name") == ctx.release_model}
            rows = [r for r in rows if lower(r["endpoint_id"]) in endpoints]
        deployments: dict[str, Record] = {}
        for row in rows:
            deployments.setdefault(lower(row["deployment_id"]), row)
        for key in sorted(deployments):
            findings.append(self._deployment(ctx, deployments[key], metrics))
        if ctx.kind == "release":
            findings.extend(self._release(ctx, metrics))
        if not deployments:
            findings.append(
                self.not_assessed(scope_subject(ctx), "not assessed: no deployment served traffic in the window")
            )
        return findings

    def _deployment(self, ctx: CheckContext, row: Record, metrics: Sequence[Record]) -> Finding:
        subject = str(row["deployment_id"])
        endpoint, name = str(row["endpoint_id"]), str(row["deployment_name"])
        evidence = (ref(TIMELINE_KIND, "deployment_id", subject), ref("metrics", "resource_id", endpoint))
        mine = series_for(metrics, endpoint, name)
        if not mine:
            if series_for(metrics, endpoint, None):
                return self.finding(
                    Status.MANUAL_REVIEW,
                    Severity.LOW,
                    subject,
                    "no requests recorded for this deployment in the window (Azure Monitor returns no series for a "
                    "deployment without data); confirm it received no traffic",
                    *evidence,
                )
            return self.finding(
                Status.FAIL, Severity.MEDIUM, subject, "no monitoring metrics were found for this deployment", *evidence
            )
        summary = summarise(mine, ctx.window.start, ctx.window.end)
        if not summary.points:
            return self.finding(
                Status.MANUAL_REVIEW,
                Severity.LOW,
                subject,
                "metric series exist but hold no data points in the window",
                *evidence,
            )
        return self.finding(Status.PASS, Severity.INFO, subject, f"window: {summary.text()}", *evidence)

    def _release(self, ctx: CheckContext, metrics: Sequence[Record]) -> list[Finding]:
        served, _ = served_population(ctx)
        days = timedelta(days=ctx.policy.monitoring_window_days)
        out: list[Finding] = []
        for item in served:
            earliest, _, _ = first_put_in_service(item, ctx)
            endpoints = sorted({str(r["endpoint_id"]) for r in item.rows}, key=str.lower)
            for endpoint in endpoints:
                evidence = ref("metrics", "resource_id", endpoint)
                if earliest is None:
                    out.append(
                        self.not_assessed(
                            endpoint, "not assessed: when the release was rolled out is unknown", evidence
                        )
                    )
                    continue
                series = series_for(metrics, endpoint, None)
                before = summarise(series, earliest - days, earliest)
                after = summarise(series, earliest, earliest + days)
                text = (
                    f"release {item.model_name} version {item.model_version} rolled out {isoformat(earliest)}; "
                    f"{ctx.policy.monitoring_window_days} days before: {before.text()}; after: {after.text()}"
                )
                status = Status.PASS if before.points and after.points else Status.MANUAL_REVIEW
                severity = Severity.INFO if status is Status.PASS else Severity.LOW
                out.append(self.finding(status, severity, endpoint, text, evidence))
        return out


def monitoring_summary(ctx: CheckContext) -> list[dict[str, Any]]:
    """Per served deployment, the window's summary: a derived view for the report."""
    rows = serving_rows(timeline_of(ctx), ctx.window.start, ctx.window.end)
    seen: dict[str, Record] = {}
    for row in rows:
        seen.setdefault(lower(row["deployment_id"]), row)
    out = []
    for key in sorted(seen):
        row = seen[key]
        series = series_for(ctx.rows("metrics"), str(row["endpoint_id"]), str(row["deployment_name"]))
        out.append(
            {
                "deployment_id": row["deployment_id"],
                "endpoint_id": row["endpoint_id"],
                "deployment_name": row["deployment_name"],
                **summarise(series, ctx.window.start, ctx.window.end).to_json(),
            }
        )
    return out
