"""Endpoint and deployment metrics for the window, from Azure Monitor (``metrics.list``).

What is asked for (metric names and dimensions from azure-limits §4.1):

* each online endpoint: ``RequestsPerMinute`` split by ``deployment`` and ``statusCodeClass``, and
  ``RequestLatency_P50``/``RequestLatency_P99`` split by ``deployment`` (aggregation Average);
* each deployment: ``CpuUtilizationPercentage``, ``CpuMemoryUtilizationPercentage`` and
  ``DeploymentCapacity`` (Average and Maximum).

The collector lists endpoints and deployments itself, through the same azure-ai-ml calls as the
endpoints collector, so collectors stay independent; those list calls are therefore attributed to
``metrics`` in ``collection.json``, which is what happened.

Interval (``INTERVALS``): PT1H up to 7 days, PT6H up to 31 days, P1D beyond, so a 90-day window
is 90 points per series. Azure keeps most metrics 93 days; the part of a window older than that
is not queried and a gap names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from evidence.clock import isoformat
from evidence.collect.activity import utc_z
from evidence.collect.interface import Collector, CollectSession, Part, RawResponse, Record, run_parts
from evidence.collect.normalise import timestamp
from evidence.collect.paging import raw_items
from evidence.domain import Gap, Workspace

#: "Most metrics in Azure are stored for 93 days" (azure-limits §4.2).
METRICS_RETENTION = timedelta(days=93)

#: Longest window (inclusive) for each interval; beyond the last, one point a day.
INTERVALS: tuple[tuple[timedelta, str], ...] = ((timedelta(days=7), "PT1H"), (timedelta(days=31), "PT6H"))
LONG_INTERVAL = "P1D"

#: ``top`` caps the number of series per request when a dimension filter is given (the service
#: default is 10, too few for a deployment x status-class split). Reaching it is reported as a gap.
MAX_SERIES = 100

ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"

_METRICS_PATH = r"(?P<resource>.*?)/providers/Microsoft\.Insights/metrics/?"

# Metric value keys in the REST body, by the aggregation names the request uses.
_AGGREGATION_KEYS = {
    "average": "average",
    "minimum": "minimum",
    "maximum": "maximum",
    "total": "total",
    "count": "count",
}


@dataclass(frozen=True)
class MetricQuery:
    """One ``metrics.list`` request shape."""

    metricnames: tuple[str, ...]
    aggregation: tuple[str, ...]
    namespace: str
    filter: str | None = None


ENDPOINT_QUERIES: tuple[MetricQuery, ...] = (
    MetricQuery(
        ("RequestsPerMinute",), ("Average",), ENDPOINT_NAMESPACE, "deployment eq '*' and statusCodeClass eq '*'"
    ),
    MetricQuery(("RequestLatency_P50", "RequestLatency_P99"), ("Average",), ENDPOINT_NAMESPACE, "deployment eq '*'"),
)
DEPLOYMENT_QUERIES: tuple[MetricQuery, ...] = (
    MetricQuery(
        ("CpuUtilizationPercentage", "CpuMemoryUtilizationPercentage", "DeploymentCapacity"),
        ("Average", "Maximum"),
        DEPLOYMENT_NAMESPACE,
    ),
)


def interval_for(span: timedelta) -> str:
    for longest, interval in INTERVALS:
        if span <= longest:
            return interval
    return LONG_INTERVAL


class MetricsCollector(Collector):
    name: ClassVar[str] = "metrics"
    record_kinds: ClassVar[tuple[str, ...]] = ("metrics",)

    def collect(self, session: CollectSession) -> None:
        run_parts(self.parts(session), session)

    def parts(self, session: CollectSession) -> Sequence[Part]:
        """The retention gap, then per workspace: list its endpoints and deployments, then query them.

        The listing parts come first and each query part runs after its own workspace's listing,
        so run one after another the parts make the calls in the order they always did.
        """
        window = session.window
        cutoff = session.clock.now() - METRICS_RETENTION
        start = max(window.start, cutoff)
        parts: list[Part] = []
        if window.start < cutoff:
            parts.append(Part(partial(self._retention_gap, start=window.start, end=min(cutoff, window.end))))
        if start >= window.end:
            return parts
        timespan = f"{utc_z(start)}/{utc_z(window.end)}"
        interval = interval_for(window.end - start)
        workspaces = sorted(session.scope.workspaces)
        found: list[list[tuple[str, str, tuple[MetricQuery, ...]]]] = [[] for _ in workspaces]
        first = len(parts)
        for i, workspace in enumerate(workspaces):
            parts.append(
                Part(
                    partial(self._list_resources, workspace=workspace, found=found[i]),
                    subscription=workspace.subscription_id,
                    label=workspace.name,
                )
            )
        for i, workspace in enumerate(workspaces):
            parts.append(
                Part(
                    partial(self._query, resources=found[i], timespan=timespan, interval=interval),
                    subscription=workspace.subscription_id,
                    label=workspace.name,
                    after=(first + i,),
                )
            )
        return parts

    def _retention_gap(self, session: CollectSession, start: datetime, end: datetime) -> None:
        session.gaps.append(
            Gap(
                collector=self.name,
                scope=", ".join(w.arm_id for w in sorted(session.scope.workspaces)),
                status=None,
                error_code="RetentionExceeded",
                message=(
                    f"Azure Monitor keeps metrics for 93 days: {utc_z(start)} to {utc_z(end)} "
                    "is not covered; metrics for that part of the window no longer exist"
                ),
                at=isoformat(session.clock.now()),
            )
        )

    def _query(
        self,
        session: CollectSession,
        resources: Sequence[tuple[str, str, tuple[MetricQuery, ...]]],
        timespan: str,
        interval: str,
    ) -> None:
        for subscription, resource_id, queries in resources:
            monitor = session.clients.monitor(subscription)
            for query in queries:
                with session.attempt(f"{resource_id}/providers/Microsoft.Insights/metrics"):
                    response = raw_metrics(
                        monitor,
                        resource_id,
                        timespan=timespan,
                        interval=interval,
                        metricnames=",".join(query.metricnames),
                        aggregation=",".join(query.aggregation),
                        filter=query.filter,
                        top=MAX_SERIES if query.filter else None,
                        metricnamespace=query.namespace,
                    )
                    self._check_truncation(session, resource_id, query, response)

    def _list_resources(
        self, session: CollectSession, workspace: Workspace, found: list[tuple[str, str, tuple[MetricQuery, ...]]]
    ) -> None:
        """(subscription, resource ID, queries) per endpoint and deployment of one workspace, via the SDK."""
        ml = session.clients.ml(workspace)
        endpoints: dict[str, str] = {}
        with session.attempt(f"{workspace.arm_id}/onlineEndpoints"):
            # The SDK's own requests, paged raw (no entity objects): see evidence.collect.paging.
            for endpoint in raw_items(ml.online_endpoints.list()):
                name = str(endpoint.get("name"))
                endpoints[name] = str(endpoint.get("id") or f"{workspace.arm_id}/onlineEndpoints/{name}")
        for name in sorted(endpoints):
            endpoint_id = endpoints[name]
            sub = workspace.subscription_id
            found.append((sub, endpoint_id, ENDPOINT_QUERIES))
            deployments: list[str] = []
            with session.attempt(f"{workspace.arm_id}/onlineEndpoints/{name}/deployments"):
                deployments = [str(d.get("name")) for d in raw_items(ml.online_deployments.list(name))]
            for deployment in sorted(set(deployments)):
                found.append((sub, f"{endpoint_id}/deployments/{deployment}", DEPLOYMENT_QUERIES))

    def _check_truncation(
        self, session: CollectSession, resource_id: str, query: MetricQuery, response: Mapping[str, Any]
    ) -> None:
        if not query.filter:
            return
        for metric in response.get("value") or ():
            if not isinstance(metric, dict):
                continue
            if len(metric.get("timeseries") or ()) >= MAX_SERIES:
                name = _metric_name(metric)
                session.gaps.append(
                    Gap(
                        collector=self.name,
                        scope=f"{resource_id}/providers/Microsoft.Insights/metrics",
                        status=None,
                        error_code="SeriesLimitReached",
                        message=f"{name}: {MAX_SERIES} series returned, the most one request asks for; more may exist",
                        at=isoformat(session.clock.now()),
                    )
                )

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        rows: dict[tuple[Any, ...], Record] = {}
        for response in responses:
            if not response.ok or not isinstance(response.body, dict):
                continue
            match = response.path_matches(_METRICS_PATH)
            if match is None:
                continue
            query = {k.lower(): v for k, v in parse_qsl(urlsplit(response.provenance.url).query)}
            aggregations = [a.strip() for a in query.get("aggregation", "Average").split(",") if a.strip()]
            interval = response.body.get("interval") or query.get("interval")
            resource_id = match.group("resource").rstrip("/")
            for metric in response.body.get("value") or ():
                if not isinstance(metric, dict):
                    continue
                for row in _series_rows(resource_id, metric, aggregations, interval):
                    rows[_row_key(row)] = row  # a request answered twice is still one series
        return {"metrics": [rows[k] for k in sorted(rows)]}


def raw_metrics(monitor: Any, resource_uri: str, **parameters: Any) -> dict[str, Any]:
    """``monitor.metrics.list(resource_uri, **parameters)``'s response body, without SDK objects.

    The request the operation makes (its own request builder and api-version, the client's
    pipeline: credential, retries, transport) and its failures (its error map, then
    ``HttpResponseError`` with its ARM error model), but the body is not deserialized into
    ``Response``/``Metric``/``TimeSeriesElement``/``MetricValue`` objects: a 90-day series is 90 of
    them, built for every query only to be thrown away (records come from the stored raw bodies),
    which was about a tenth of the large benchmark's client CPU (issue 7). Mirrors
    ``MetricsOperations.list`` of azure-mgmt-monitor 7.x (generated code); if its private
    ``_client``/``_deserialize`` move, the ``AttributeError`` becomes an ``UnexpectedResponseShape``
    gap, never silence.
    """
    import sys

    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ResourceNotModifiedError,
        map_error,
    )
    from azure.mgmt.core.exceptions import ARMErrorFormat

    from evidence.collect.paging import page_json

    operations = monitor.metrics
    module = sys.modules[type(operations).__module__]
    client = operations._client
    request = module.build_list_request(resource_uri=resource_uri, **parameters)
    request.url = client.format_url(request.url)
    pipeline_response = client._pipeline.run(request, stream=False)
    response = pipeline_response.http_response
    if response.status_code != 200:
        # The operation's own error map and error model (MetricsOperations.list).
        error_map = {
            401: ClientAuthenticationError,
            404: ResourceNotFoundError,
            409: ResourceExistsError,
            304: ResourceNotModifiedError,
        }
        map_error(status_code=response.status_code, response=response, error_map=error_map)
        error = operations._deserialize.failsafe_deserialize(
            module._models.ErrorResponseAutoGenerated4, pipeline_response
        )
        raise HttpResponseError(response=response, model=error, error_format=ARMErrorFormat)
    return page_json(pipeline_response)


def _metric_name(metric: Mapping[str, Any]) -> Any:
    name = metric.get("name")
    return name.get("value") if isinstance(name, dict) else name


def _row_key(row: Record) -> tuple[Any, ...]:
    return (
        row["resource_id"].lower(),
        row["metric"],
        row["aggregation"],
        tuple(sorted((k.lower(), str(v)) for k, v in row["dimensions"].items())),
    )


def _series_rows(resource_id: str, metric: dict[str, Any], aggregations: list[str], interval: Any) -> list[Record]:
    name = metric.get("name")
    metric_name = name.get("value") if isinstance(name, dict) else name
    rows: list[Record] = []
    for series in metric.get("timeseries") or ():
        if not isinstance(series, dict):
            continue
        dimensions: dict[str, Any] = {}
        for meta in series.get("metadatavalues") or ():
            if isinstance(meta, dict):
                key = meta.get("name")
                dimensions[str(key.get("value") if isinstance(key, dict) else key)] = meta.get("value")
        data = [p for p in series.get("data") or () if isinstance(p, dict)]
        for aggregation in aggregations:
            field = _AGGREGATION_KEYS.get(aggregation.lower(), aggregation.lower())
            rows.append(
                {
                    "resource_id": resource_id,
                    "metric": metric_name,
                    "aggregation": aggregation,
                    "unit": metric.get("unit"),
                    "interval": interval,
                    "dimensions": dict(sorted(dimensions.items())),
                    "points": [{"timestamp": timestamp(p.get("timeStamp")), "value": p.get(field)} for p in data],
                }
            )
    return rows
