"""Endpoint and deployment metrics: deterministic synthetic series in the ``Response`` shape.

Shape from the REST spec example ``monitor/.../2024-02-01/examples/GetMetric.json``: ``cost``,
``timespan``, ``interval``, ``namespace``, ``resourceregion`` and ``value`` (one entry per metric,
each with ``timeseries`` of ``metadatavalues`` + ``data``). Dimension names come back lower-case,
as Azure returns them. Metric names, units and dimensions are the documented ones
(azure-limits.md 4.1).

Values are a pure function of (resource, metric, dimension values, time): an hour-of-day load
profile times a hash-derived jitter, rounded, so the same request always gets the same bytes and
no floating-point library differences creep in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from evidence.azure.sim.tenant import Deployment, Endpoint, Tenant
from evidence.clock import isoformat, parse_timestamp

Json = dict[str, Any]

ENDPOINT_NS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"


class MetricsError(ValueError):
    """A metrics request Azure would refuse with 400 BadRequest."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    localized: str
    unit: str
    dimensions: tuple[str, ...]
    description: str


ENDPOINT_METRICS = {
    m.name.lower(): m
    for m in (
        MetricSpec(
            "RequestsPerMinute",
            "Requests Per Minute",
            "Count",
            ("deployment", "statusCode", "statusCodeClass", "modelStatusCode"),
            "The number of requests sent to online endpoint within a minute",
        ),
        MetricSpec(
            "RequestLatency",
            "Request Latency",
            "MilliSeconds",
            ("deployment",),
            "Average complete interval of time taken for a request to be responded",
        ),
        MetricSpec(
            "RequestLatency_P50",
            "Request Latency P50",
            "MilliSeconds",
            ("deployment",),
            "P50 of the interval of time taken for a request to be responded",
        ),
        MetricSpec(
            "RequestLatency_P90",
            "Request Latency P90",
            "MilliSeconds",
            ("deployment",),
            "P90 of the interval of time taken for a request to be responded",
        ),
        MetricSpec(
            "RequestLatency_P95",
            "Request Latency P95",
            "MilliSeconds",
            ("deployment",),
            "P95 of the interval of time taken for a request to be responded",
        ),
        MetricSpec(
            "RequestLatency_P99",
            "Request Latency P99",
            "MilliSeconds",
            ("deployment",),
            "P99 of the interval of time taken for a request to be responded",
        ),
        MetricSpec(
            "ConnectionsActive",
            "Active connection count",
            "Count",
            (),
            "The total number of concurrent TCP connections active from clients",
        ),
    )
}
DEPLOYMENT_METRICS = {
    m.name.lower(): m
    for m in (
        MetricSpec(
            "CpuUtilizationPercentage",
            "CPU Utilization Percentage",
            "Percent",
            ("instanceId",),
            "Percentage of CPU utilization of an instance",
        ),
        MetricSpec(
            "CpuMemoryUtilizationPercentage",
            "CPU Memory Utilization Percentage",
            "Percent",
            ("instanceId",),
            "Percentage of memory utilization of an instance",
        ),
        MetricSpec(
            "DeploymentCapacity",
            "Deployment Capacity",
            "Count",
            ("instanceId", "State"),
            "The number of instances in the deployment",
        ),
        MetricSpec(
            "RequestsPerMinute",
            "Requests Per Minute",
            "Count",
            ("envoy_response_code",),
            "The number of requests sent to online deployment within a minute",
        ),
    )
}

#: Requests per hour of day, percent of the daily mean (business-hours peak, quiet nights).
_HOURLY = (35, 30, 28, 27, 30, 40, 60, 90, 125, 145, 150, 148, 140, 142, 146, 144, 135, 120, 100, 85, 70, 58, 48, 40)

_INTERVALS = {
    "PT1M": timedelta(minutes=1),
    "PT5M": timedelta(minutes=5),
    "PT15M": timedelta(minutes=15),
    "PT30M": timedelta(minutes=30),
    "PT1H": timedelta(hours=1),
    "PT6H": timedelta(hours=6),
    "PT12H": timedelta(hours=12),
    "P1D": timedelta(days=1),
}
_AGGREGATIONS = ("average", "minimum", "maximum", "total", "count")
_STATUS_CLASSES = ("2xx", "4xx", "5xx")


def _jitter(*parts: str) -> float:
    """A deterministic number in [0.9, 1.1) from the inputs (sha256, not ``random``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return 0.9 + (int.from_bytes(digest[:4], "big") % 2000) / 10_000


def _profile(start: datetime, step: timedelta) -> float:
    """Mean load factor over [start, start+step) from the hourly profile."""
    hours = max(1, int(step.total_seconds() // 3600))
    total = sum(_HOURLY[(start.hour + i) % 24] for i in range(min(hours, 24)))
    return total / min(hours, 24) / 100


def parse_dimension_filter(text: str | None) -> dict[str, str]:
    """``dim eq 'v' and dim2 eq '*'`` -> {dim: v, dim2: *} (lower-case names)."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+eq\s+'([^']*)'\s*", clause)
        if m is None:
            raise MetricsError(f"Invalid $filter: '{text}'. Use <dimension> eq '<value>' joined by 'and'.")
        out[m.group(1).lower()] = m.group(2)
    return out


@dataclass(frozen=True)
class Target:
    """The resource a metrics request is about."""

    resource_id: str
    endpoint: Endpoint
    deployment: Deployment | None


def query(
    tenant: Tenant,
    target: Target,
    *,
    timespan: str | None,
    interval: str | None,
    metricnames: str | None,
    aggregation: str | None,
    flt: str | None,
    metricnamespace: str | None,
) -> Json:
    catalogue = DEPLOYMENT_METRICS if target.deployment else ENDPOINT_METRICS
    namespace = DEPLOYMENT_NS if target.deployment else ENDPOINT_NS
    if metricnamespace and metricnamespace.lower() != namespace.lower():
        raise MetricsError(
            f"Metric namespace '{metricnamespace}' is not valid for this resource; expected '{namespace}'."
        )
    names = [n.strip() for n in (metricnames or "").split(",") if n.strip()] or [next(iter(catalogue.values())).name]
    specs = []
    for n in names:
        spec = catalogue.get(n.lower())
        if spec is None:
            valid = ", ".join(s.name for s in catalogue.values())
            raise MetricsError(
                f"Failed to find metric configuration for provider: Microsoft.MachineLearningServices, "
                f"resource Type: {namespace.split('/', 1)[1]}, metric: {n}, Valid metrics: {valid}"
            )
        specs.append(spec)
    aggs = [a.strip().lower() for a in (aggregation or "average").split(",") if a.strip()]
    for a in aggs:
        if a not in _AGGREGATIONS:
            raise MetricsError(f"Invalid aggregation '{a}'. Valid values: Average, Minimum, Maximum, Total, Count.")
    if timespan:
        try:
            start_text, end_text = timespan.split("/")
            start, end = parse_timestamp(start_text), parse_timestamp(end_text)
        except ValueError as exc:
            raise MetricsError(f"Invalid timespan '{timespan}': expected <start>/<end> in ISO 8601.") from exc
    else:
        end = tenant.now
        start = end - timedelta(hours=1)
    if end <= start:
        raise MetricsError(f"Invalid timespan '{timespan}': the end must be after the start.")
    interval_text = (interval or "PT1M").upper()
    if interval_text == "FULL":
        step = end - start
    elif interval_text in _INTERVALS:
        step = _INTERVALS[interval_text]
    else:
        raise MetricsError(f"Invalid interval '{interval}'. Valid: {', '.join(_INTERVALS)}, FULL.")
    dims = parse_dimension_filter(flt)
    for spec in specs:
        supported = {d.lower() for d in spec.dimensions}
        extra = [d for d in dims if d not in supported]
        if extra:
            raise MetricsError(
                f"Metric: {spec.name} does not support requested dimension combination: {', '.join(sorted(extra))}, "
                f"supported ones are: {', '.join(spec.dimensions) or 'none'}"
            )
    times = []
    at = start
    while at < end:
        times.append(at)
        at += step
    values = []
    cost = 0
    for spec in specs:
        series = [
            {
                "metadatavalues": [
                    {"name": {"value": name, "localizedValue": name}, "value": value} for name, value in combo
                ],
                "data": [_point(tenant, target, spec, combo, t, step, aggs) for t in times],
            }
            for combo in _combinations(target, spec, dims)
        ]
        cost += len(times) * max(1, len(series))
        values.append(
            {
                "id": f"{target.resource_id}/providers/Microsoft.Insights/metrics/{spec.name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": spec.name, "localizedValue": spec.localized},
                "displayDescription": spec.description,
                "unit": spec.unit,
                "timeseries": series,
                "errorCode": "Success",
            }
        )
    return {
        "cost": cost,
        "timespan": f"{isoformat(start)}/{isoformat(end)}",
        "interval": "FULL" if interval_text == "FULL" else interval_text,
        "value": values,
        "namespace": namespace,
        "resourceregion": tenant.location,
    }


def _instances(d: Deployment) -> list[str]:
    # Kubernetes-style pod names, stable per deployment.
    token = hashlib.sha256(d.name.encode()).hexdigest()[:9]
    return [f"{d.name}-{token}-{i}" for i in range(d.instance_count)]


def _combinations(target: Target, spec: MetricSpec, dims: dict[str, str]) -> list[tuple[tuple[str, str], ...]]:
    """One tuple of (dimension, value) per series the filter asks for, in a stable order."""
    if not dims:
        return [()]
    axes: list[list[tuple[str, str]]] = []
    for name, wanted in dims.items():
        if name == "deployment":
            options = [d for d in target.endpoint.traffic if target.endpoint.traffic[d] > 0] or [
                d.name for d in target.endpoint.deployments
            ]
        elif name == "statuscodeclass":
            options = list(_STATUS_CLASSES)
        elif name == "instanceid" and target.deployment is not None:
            options = _instances(target.deployment)
        elif name == "state":
            options = ["Succeeded"]
        else:
            options = ["200"]
        chosen = options if wanted == "*" else [o for o in options if o.lower() == wanted.lower()]
        axes.append([(name, o) for o in sorted(chosen)])
    combos: list[tuple[tuple[str, str], ...]] = [()]
    for axis in axes:
        combos = [(*c, v) for c in combos for v in axis]
    return combos


def _point(
    tenant: Tenant,
    target: Target,
    spec: MetricSpec,
    combo: tuple[tuple[str, str], ...],
    at: datetime,
    step: timedelta,
    aggs: list[str],
) -> Json:
    point: Json = {"timeStamp": isoformat(at)}
    created = target.deployment.created_at if target.deployment else target.endpoint.created_at
    dims = dict(combo)
    dep_name = dims.get("deployment")
    if dep_name:
        for d in target.endpoint.deployments:
            if d.name == dep_name:
                created = max(created, d.created_at)
    if at + step <= created or at >= tenant.now:
        return point  # no data before the resource existed, or in the future: only the time stamp
    load = target.endpoint.load
    jitter = _jitter(target.resource_id.lower(), spec.name, repr(combo), isoformat(at))
    profile = _profile(at, step)
    name = spec.name.lower()
    if name == "requestsperminute" and target.deployment is None:
        share = 1.0
        if dep_name:
            share = target.endpoint.traffic.get(dep_name, 0) / 100
        klass = dims.get("statuscodeclass")
        if klass == "4xx":
            share *= load.error_rate_4xx
        elif klass == "5xx":
            share *= load.error_rate_5xx
        elif klass == "2xx":
            share *= 1 - load.error_rate_4xx - load.error_rate_5xx
        value = load.requests_per_minute * profile * share * jitter
    elif name.startswith("requestlatency"):
        factor = {
            "requestlatency": 1.2,
            "requestlatency_p50": 1.0,
            "requestlatency_p90": 1.6,
            "requestlatency_p95": 2.0,
            "requestlatency_p99": 3.1,
        }[name]
        value = load.latency_p50_ms * factor * (0.85 + 0.15 * profile) * jitter
    elif name == "requestsperminute":
        assert target.deployment is not None
        share = (
            target.endpoint.traffic.get(target.deployment.name, 0)
            + target.endpoint.mirror_traffic.get(target.deployment.name, 0)
        ) / 100
        value = load.requests_per_minute * profile * share * jitter
    elif name == "cpuutilizationpercentage":
        value = min(95.0, 12 + 30 * profile * jitter)
    elif name == "cpumemoryutilizationpercentage":
        value = 38 + 6 * jitter
    elif name == "deploymentcapacity":
        count = target.deployment.instance_count if target.deployment else 1
        value = 1.0 if "instanceid" in dims else float(count)
    else:
        value = 1 + 3 * profile * jitter
    minutes = max(1, int(step.total_seconds() // 60))
    for agg in aggs:
        if agg == "average":
            point["average"] = round(value, 4)
        elif agg == "minimum":
            point["minimum"] = round(value * 0.8, 4)
        elif agg == "maximum":
            point["maximum"] = round(value * 1.25, 4)
        elif agg == "total":
            point["total"] = round(value * minutes, 4)
        else:
            point["count"] = float(minutes)
    return point
