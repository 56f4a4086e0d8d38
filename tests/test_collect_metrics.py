"""Endpoint and deployment metrics through azure-ai-ml (listing) and azure-mgmt-monitor (metrics.list).

Metric bodies follow the azure-rest-api-specs Metrics_List examples (api-version 2024-02-01):
``value[].name.value``, ``unit``, ``timeseries[].metadatavalues`` and ``data[].timeStamp``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from azure_shapes import ARM, DEPLOYMENTS_API, ENDPOINTS_API, RG, SUB, WS, WS_ID, arm_error, deployment, endpoint, get

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.interface import CollectSession, RawResponse, Record
from evidence.collect.metrics import MAX_SERIES, MetricsCollector, interval_for
from evidence.collect.store import load_raw, write_raw
from evidence.domain import Gap, Provenance, Scope, Window, Workspace

WORKSPACE = Workspace(SUB, RG, WS)
SCOPE = Scope(workspaces=(WORKSPACE,))
EP = f"{WS_ID}/onlineEndpoints/ep-credit"
BLUE = f"{EP}/deployments/blue"
GREEN = f"{EP}/deployments/green"
NOW = datetime(2026, 10, 1, 6, tzinfo=UTC)
CLOCK = FixedClock(NOW)
WINDOW = Window(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
TIMESPAN = "2026-09-01T00:00:00Z/2026-10-01T00:00:00Z"
EP_NS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEP_NS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
DEP_METRICS = "CpuUtilizationPercentage,CpuMemoryUtilizationPercentage,DeploymentCapacity"


def metrics_url(
    resource: str,
    names: str,
    aggregation: str,
    namespace: str,
    flt: str | None = None,
    timespan: str = TIMESPAN,
    interval: str = "PT6H",
) -> str:
    params = {
        "timespan": timespan,
        "interval": interval,
        "metricnames": names,
        "aggregation": aggregation,
        "api-version": "2024-02-01",
        "metricnamespace": namespace,
    }
    if flt:
        params |= {"$filter": flt, "top": str(MAX_SERIES)}
    return f"{ARM}{resource}/providers/Microsoft.Insights/metrics?{urlencode(params)}"


def dim(name: str, value: str) -> dict[str, Any]:
    return {"name": {"value": name, "localizedValue": name}, "value": value}


def series(dims: list[dict[str, Any]], points: list[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    return {"metadatavalues": dims, "data": [{"timeStamp": t, **v} for t, v in points]}


def metric(resource: str, name: str, unit: str, timeseries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
        "type": "Microsoft.Insights/metrics",
        "name": {"value": name, "localizedValue": name.replace("_", " ")},
        "displayDescription": f"{name} of the online endpoint",
        "unit": unit,
        "timeseries": timeseries,
        "errorCode": "Success",
    }


def response(resource: str, namespace: str, *metrics: dict[str, Any], interval: str = "PT6H") -> dict[str, Any]:
    return {
        "cost": 0,
        "timespan": TIMESPAN,
        "interval": interval,
        "value": list(metrics),
        "namespace": namespace,
        "resourceregion": "westeurope",
    }


T0, T1 = "2026-09-01T00:00:00Z", "2026-09-01T06:00:00Z"
RPM = response(
    EP,
    EP_NS,
    metric(
        EP,
        "RequestsPerMinute",
        "Count",
        [
            series([dim("deployment", "green"), dim("statuscodeclass", "2xx")], [(T0, {"average": 3.0}), (T1, {})]),
            series([dim("deployment", "blue"), dim("statuscodeclass", "5xx")], [(T0, {"average": 0.25}), (T1, {})]),
            series(
                [dim("deployment", "blue"), dim("statuscodeclass", "2xx")],
                [(T0, {"average": 12.5}), (T1, {"average": 11.0})],
            ),
        ],
    ),
)
LATENCY = response(
    EP,
    EP_NS,
    metric(EP, "RequestLatency_P50", "MilliSeconds", [series([dim("deployment", "blue")], [(T0, {"average": 41.0})])]),
    metric(EP, "RequestLatency_P99", "MilliSeconds", [series([dim("deployment", "blue")], [(T0, {"average": 180.0})])]),
)


def deployment_metrics(resource: str) -> dict[str, Any]:
    return response(
        resource,
        DEP_NS,
        metric(
            resource, "CpuUtilizationPercentage", "Percent", [series([], [(T0, {"average": 20.0, "maximum": 55.0})])]
        ),
        metric(
            resource,
            "CpuMemoryUtilizationPercentage",
            "Percent",
            [series([], [(T0, {"average": 30.0, "maximum": 35.0})])],
        ),
        metric(resource, "DeploymentCapacity", "Count", [series([], [(T0, {"average": 2.0, "maximum": 2.0})])]),
    )


MODEL = f"{WS_ID}/models/credit-risk/versions/3"


def listing() -> list[Entry]:
    return [
        get(
            f"{ARM}{WS_ID}/onlineEndpoints?api-version={ENDPOINTS_API}",
            {"value": [endpoint("ep-credit", {"blue": 90, "green": 10})]},
        ),
        get(
            f"{ARM}{WS_ID}/onlineEndpoints/ep-credit/deployments?api-version={DEPLOYMENTS_API}",
            {"value": [deployment("ep-credit", "green", MODEL), deployment("ep-credit", "blue", MODEL)]},
        ),
    ]


def cassette() -> list[Entry]:
    return [
        *listing(),
        get(
            metrics_url(EP, "RequestsPerMinute", "Average", EP_NS, "deployment eq '*' and statusCodeClass eq '*'"), RPM
        ),
        get(metrics_url(EP, "RequestLatency_P50,RequestLatency_P99", "Average", EP_NS, "deployment eq '*'"), LATENCY),
        get(metrics_url(BLUE, DEP_METRICS, "Average,Maximum", DEP_NS), deployment_metrics(BLUE)),
        get(metrics_url(GREEN, DEP_METRICS, "Average,Maximum", DEP_NS), deployment_metrics(GREEN)),
    ]


Run = tuple[dict[str, list[Record]], list[Gap], ReplayTransport]


def run(entries: list[Entry], tmp_path: Path, *, window: Window = WINDOW) -> Run:
    collector = MetricsCollector()
    transport = ReplayTransport(entries)
    tap = EvidenceTap(transport, CLOCK)
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap), scope=SCOPE, window=window, clock=CLOCK, collector=collector.name
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    raw = load_raw(tmp_path, provenance)
    return dict(collector.normalise(raw.get(collector.name, []))), session.gaps, transport


def test_queries_sent_match_the_documented_names_filters_and_interval(tmp_path: Path) -> None:
    _, gaps, transport = run(cassette(), tmp_path)
    assert gaps == []
    assert transport.unused() == []  # every query in the cassette, with its exact parameters, was sent
    queries = [dict(parse_qsl(urlsplit(s.url).query)) for s in transport.served if "/metrics" in s.url]
    assert [(q["metricnames"], q.get("$filter"), q["interval"], q["timespan"]) for q in queries] == [
        ("RequestsPerMinute", "deployment eq '*' and statusCodeClass eq '*'", "PT6H", TIMESPAN),
        ("RequestLatency_P50,RequestLatency_P99", "deployment eq '*'", "PT6H", TIMESPAN),
        (DEP_METRICS, None, "PT6H", TIMESPAN),
        (DEP_METRICS, None, "PT6H", TIMESPAN),
    ]


def test_one_row_per_series_and_aggregation_sorted(tmp_path: Path) -> None:
    records, _, _ = run(cassette(), tmp_path)
    rows = records["metrics"]
    keys = [(r["resource_id"], r["metric"], r["aggregation"], tuple(sorted(r["dimensions"].items()))) for r in rows]
    assert keys == sorted(keys, key=lambda k: (k[0].lower(), k[1], k[2], k[3]))
    assert len(rows) == 3 + 2 + 2 * 3 * 2  # 3 RPM series, 2 latency series, 2 deployments x 3 metrics x 2 aggs
    rpm = [r for r in rows if r["metric"] == "RequestsPerMinute"]
    assert [r["dimensions"] for r in rpm] == [
        {"deployment": "blue", "statuscodeclass": "2xx"},
        {"deployment": "blue", "statuscodeclass": "5xx"},
        {"deployment": "green", "statuscodeclass": "2xx"},
    ]
    assert rpm[0] == {
        "resource_id": EP,
        "metric": "RequestsPerMinute",
        "aggregation": "Average",
        "unit": "Count",
        "interval": "PT6H",
        "dimensions": {"deployment": "blue", "statuscodeclass": "2xx"},
        "points": [{"timestamp": T0, "value": 12.5}, {"timestamp": T1, "value": 11.0}],
    }
    # A point with no data stays in the series as None: absence is shown, not hidden.
    assert rpm[2]["points"] == [{"timestamp": T0, "value": 3.0}, {"timestamp": T1, "value": None}]
    cpu = [r for r in rows if r["resource_id"] == BLUE and r["metric"] == "CpuUtilizationPercentage"]
    assert [(r["aggregation"], r["points"][0]["value"]) for r in cpu] == [("Average", 20.0), ("Maximum", 55.0)]


def test_deterministic_across_runs(tmp_path: Path) -> None:
    first, _, _ = run(cassette(), tmp_path / "a")
    second, _, _ = run(cassette(), tmp_path / "b")
    assert first == second


def test_intervals_keep_long_windows_small() -> None:
    assert interval_for(timedelta(days=1)) == "PT1H"
    assert interval_for(timedelta(days=7)) == "PT1H"
    assert interval_for(timedelta(days=7, seconds=1)) == "PT6H"
    assert interval_for(timedelta(days=31)) == "PT6H"
    assert interval_for(timedelta(days=90)) == "P1D"


def test_window_reaching_past_93_days_gets_a_gap_and_queries_only_the_retained_part(tmp_path: Path) -> None:
    window = Window(NOW - timedelta(days=94), datetime(2026, 10, 1, tzinfo=UTC))
    retained = "2026-06-30T06:00:00Z/2026-10-01T00:00:00Z"
    entries = [
        *listing(),
        get(
            metrics_url(
                EP,
                "RequestsPerMinute",
                "Average",
                EP_NS,
                "deployment eq '*' and statusCodeClass eq '*'",
                timespan=retained,
                interval="P1D",
            ),
            response(EP, EP_NS),
        ),
        get(
            metrics_url(
                EP,
                "RequestLatency_P50,RequestLatency_P99",
                "Average",
                EP_NS,
                "deployment eq '*'",
                timespan=retained,
                interval="P1D",
            ),
            response(EP, EP_NS),
        ),
        get(
            metrics_url(BLUE, DEP_METRICS, "Average,Maximum", DEP_NS, timespan=retained, interval="P1D"),
            response(BLUE, DEP_NS),
        ),
        get(
            metrics_url(GREEN, DEP_METRICS, "Average,Maximum", DEP_NS, timespan=retained, interval="P1D"),
            response(GREEN, DEP_NS),
        ),
    ]
    records, gaps, transport = run(entries, tmp_path, window=window)
    assert transport.unused() == []
    assert [(g.collector, g.scope, g.error_code, g.message) for g in gaps] == [
        (
            "metrics",
            WS_ID,
            "RetentionExceeded",
            "Azure Monitor keeps metrics for 93 days: 2026-06-29T06:00:00Z to 2026-06-30T06:00:00Z is not covered; "
            "metrics for that part of the window no longer exist",
        )
    ]
    assert records == {"metrics": []}


def test_window_inside_retention_has_no_retention_gap(tmp_path: Path) -> None:
    window = Window(NOW - timedelta(days=93), NOW - timedelta(days=92))
    span = "2026-06-30T06:00:00Z/2026-07-01T06:00:00Z"
    entries = [
        *listing(),
        get(
            metrics_url(
                EP,
                "RequestsPerMinute",
                "Average",
                EP_NS,
                "deployment eq '*' and statusCodeClass eq '*'",
                timespan=span,
                interval="PT1H",
            ),
            response(EP, EP_NS),
        ),
        get(
            metrics_url(
                EP,
                "RequestLatency_P50,RequestLatency_P99",
                "Average",
                EP_NS,
                "deployment eq '*'",
                timespan=span,
                interval="PT1H",
            ),
            response(EP, EP_NS),
        ),
        get(
            metrics_url(BLUE, DEP_METRICS, "Average,Maximum", DEP_NS, timespan=span, interval="PT1H"),
            response(BLUE, DEP_NS),
        ),
        get(
            metrics_url(GREEN, DEP_METRICS, "Average,Maximum", DEP_NS, timespan=span, interval="PT1H"),
            response(GREEN, DEP_NS),
        ),
    ]
    _, gaps, transport = run(entries, tmp_path, window=window)
    assert gaps == [] and transport.unused() == []


def test_window_entirely_past_retention_asks_nothing(tmp_path: Path) -> None:
    _, gaps, transport = run(
        [], tmp_path, window=Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    )
    assert transport.served == []
    assert [g.error_code for g in gaps] == ["RetentionExceeded"]


def test_one_failing_metrics_request_is_a_gap_and_the_rest_is_collected(tmp_path: Path) -> None:
    entries = cassette()
    entries[3] = get(
        entries[3].request_uri,
        arm_error(
            "AuthorizationFailed",
            "The client does not have authorization to perform action 'Microsoft.Insights/metrics/read'.",
        ),
        status=403,
    )
    records, gaps, _ = run(entries, tmp_path)
    assert [(g.scope, g.status, g.error_code) for g in gaps] == [
        (f"{EP}/providers/Microsoft.Insights/metrics", 403, "AuthorizationFailed")
    ]
    assert {r["metric"] for r in records["metrics"]} == {
        "RequestsPerMinute",
        "CpuUtilizationPercentage",
        "CpuMemoryUtilizationPercentage",
        "DeploymentCapacity",
    }


def test_endpoint_listing_failure_is_a_gap_and_nothing_else_is_asked(tmp_path: Path) -> None:
    entries = [
        get(
            f"{ARM}{WS_ID}/onlineEndpoints?api-version={ENDPOINTS_API}",
            arm_error("AuthorizationFailed", "no read on onlineEndpoints"),
            status=403,
        )
    ]
    records, gaps, transport = run(entries, tmp_path)
    assert [(g.scope, g.status) for g in gaps] == [(f"{WS_ID}/onlineEndpoints", 403)]
    assert len(transport.served) == 1 and records == {"metrics": []}


def test_series_limit_reached_is_reported(tmp_path: Path) -> None:
    many = response(
        EP,
        EP_NS,
        metric(
            EP,
            "RequestsPerMinute",
            "Count",
            [
                series([dim("deployment", f"d{i:03d}"), dim("statuscodeclass", "2xx")], [(T0, {"average": 1.0})])
                for i in range(MAX_SERIES)
            ],
        ),
    )
    entries = cassette()
    entries[2] = get(entries[2].request_uri, many)
    records, gaps, _ = run(entries, tmp_path)
    assert [(g.error_code, g.message) for g in gaps] == [
        (
            "SeriesLimitReached",
            f"RequestsPerMinute: {MAX_SERIES} series returned, the most one request asks for; more may exist",
        )
    ]
    assert sum(r["metric"] == "RequestsPerMinute" for r in records["metrics"]) == MAX_SERIES


def test_normalise_ignores_listing_pages_errors_and_non_json() -> None:
    def raw(url: str, body: Any, status: int = 200) -> RawResponse:
        prov = Provenance("metrics", "GET", url, "2024-02-01", status, None, "2026-10-01T06:00:00Z", None)
        return RawResponse(prov, body)

    responses = [
        raw(f"{ARM}{WS_ID}/onlineEndpoints?api-version={ENDPOINTS_API}", {"value": [endpoint("ep-credit", {})]}),
        raw(metrics_url(EP, "RequestLatency_P50,RequestLatency_P99", "Average", EP_NS, "deployment eq '*'"), LATENCY),
        raw(metrics_url(BLUE, DEP_METRICS, "Average,Maximum", DEP_NS), arm_error("x", "y"), 500),
        raw(metrics_url(GREEN, DEP_METRICS, "Average,Maximum", DEP_NS), "<html>bad gateway</html>"),
    ]
    rows = MetricsCollector().normalise(responses)["metrics"]
    assert [(r["metric"], r["points"]) for r in rows] == [
        ("RequestLatency_P50", [{"timestamp": T0, "value": 41.0}]),
        ("RequestLatency_P99", [{"timestamp": T0, "value": 180.0}]),
    ]


# ----------------------------------------------------------------------------- against SimulatedAzure
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso" / "tenant.toml"


def test_simulated_tenant_series_per_deployment_and_status_class(tmp_path: Path) -> None:
    from evidence.azure.simulator import SimulatedAzure, load_tenant

    tenant = load_tenant(SAMPLE)
    sim = SimulatedAzure(tenant, sleep=lambda _: None, strict=True)
    clock = FixedClock(tenant.now)
    scope = Scope(workspaces=(Workspace(tenant.subscription_id, tenant.resource_group, "mlw-credit-prod"),))
    window = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
    tap = EvidenceTap(sim, clock)
    collector = MetricsCollector()
    session = CollectSession(
        clients=AzureClients(StaticCredential(), tap), scope=scope, window=window, clock=clock, collector=collector.name
    )
    with tap.channel(collector.name):
        collector.collect(session)
    provenance, _ = write_raw(tap.exchanges(), tmp_path)
    rows = collector.normalise(load_raw(tmp_path, provenance)[collector.name])["metrics"]
    assert session.gaps == []
    rpm = [r for r in rows if r["metric"] == "RequestsPerMinute"]
    assert {r["dimensions"]["deployment"] for r in rpm} >= {"blue", "green"}
    assert all(r["interval"] == "P1D" and len(r["points"]) == 89 for r in rows)
    assert {r["metric"] for r in rows if "/deployments/" in r["resource_id"]} == {
        "CpuUtilizationPercentage",
        "CpuMemoryUtilizationPercentage",
        "DeploymentCapacity",
    }
