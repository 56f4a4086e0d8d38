"""The per-subscription limiter, against the simulated Resource Manager and its token bucket.

Everything runs on ``VirtualTime``: the limiter's waits and the simulator's bucket share one
virtual clock, so the tests are instant and the numbers exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline.transport import HttpRequest, HttpTransport

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.limiter import (
    Limits,
    ThrottledTransport,
    bucket_key,
    retry_after_seconds,
)
from evidence.azure.replay import CannedResponse
from evidence.azure.simulator import Fault, SimulatedAzure, Tenant, Throttle, VirtualTime, load_tenant
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock, parse_timestamp

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "contoso" / "tenant.toml"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant(SAMPLE)


def _url(tenant: Tenant, n: int = 0) -> str:
    return (
        f"https://management.azure.com{tenant.subscription_scope}/providers/Microsoft.Authorization/"
        f"roleDefinitions?api-version=2022-04-01&n={n}"
    )


def _throttled_sim(tenant: Tenant, clock: VirtualTime, throttle: Throttle) -> SimulatedAzure:
    return SimulatedAzure(tenant, throttle=throttle, clock=clock.now, sleep=clock.sleep)


def _limiter(inner: HttpTransport[Any, Any], clock: VirtualTime, limits: Limits, **kw: Any) -> ThrottledTransport:
    return ThrottledTransport(inner, limits=limits, clock=clock.now, sleep=clock.sleep, **kw)


def test_bucket_keys_follow_the_subscription_in_the_path() -> None:
    assert bucket_key("https://management.azure.com/subscriptions/ABC/resourceGroups/x?a=1") == (
        "management.azure.com/abc"
    )
    assert bucket_key("https://management.azure.com/providers/Microsoft.Management/managementGroups/mg") == (
        "management.azure.com/tenant"
    )
    assert bucket_key(
        "https://management.azure.com/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01"
    ) == ("management.azure.com/resourcegraph")
    # The subscription inside an encoded scope parameter still counts.
    assert bucket_key("https://management.azure.com/%2Fsubscriptions%2Fs1%2Fproviders/x") == "management.azure.com/s1"


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now_epoch=4.0) == 6.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-3") is None
    assert retry_after_seconds(None) is None


def test_never_more_than_the_bucket_allows_so_the_service_never_throttles(tenant: Tenant) -> None:
    clock = VirtualTime()
    throttle = Throttle(capacity=5, refill_per_second=2.0)
    sim = _throttled_sim(tenant, clock, throttle)
    limiter = _limiter(sim, clock, Limits(capacity=5, refill_per_second=2.0))
    statuses = [limiter.send(HttpRequest("GET", _url(tenant, i))).status_code for i in range(25)]
    assert statuses == [200] * 25
    assert [r.status for r in sim.requests] == [200] * 25  # not one 429 reached the service's answer
    stats = limiter.stats()
    assert (stats.requests, stats.throttled, stats.retried) == (25, 0, 0)
    # 5 from the burst, then 20 more at 2 per second: exactly 10 virtual seconds of waiting.
    assert stats.waited_seconds == pytest.approx(10.0)
    assert clock.now() == pytest.approx(10.0)


def test_remaining_reads_header_corrects_the_estimate_downwards(tenant: Tenant) -> None:
    """Another tool spending the same principal's bucket: the header says less than we think."""
    clock = VirtualTime()
    sim = _throttled_sim(tenant, clock, Throttle(capacity=10, refill_per_second=1.0))
    for i in range(8):  # someone else spends 8 of the 10 reads
        sim.send(HttpRequest("GET", _url(tenant, 100 + i)))
    limiter = _limiter(sim, clock, Limits(capacity=10, refill_per_second=1.0))
    statuses = [limiter.send(HttpRequest("GET", _url(tenant, i))).status_code for i in range(6)]
    assert statuses == [200] * 6
    assert [r.status for r in sim.requests].count(429) == 0
    stats = limiter.stats()
    assert stats.bucket(tenant.subscription_id) is not None
    assert stats.buckets[0].corrections >= 1
    assert stats.throttled == 0


def test_429_pauses_the_bucket_for_retry_after_and_recovers(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(tenant, clock=clock.now, sleep=clock.sleep)
    fault = sim.inject(Fault.throttled("roleDefinitions", retry_after=7, times=2))
    limiter = _limiter(sim, clock, Limits())
    response = limiter.send(HttpRequest("GET", _url(tenant)))
    assert response.status_code == 200
    assert fault.used == 2
    assert clock.sleeps == [7.0, 7.0]  # the limiter waited, azure-core never saw a 429
    stats = limiter.stats()
    assert (stats.throttled, stats.retried, stats.gave_up) == (2, 2, 0)


def test_429s_through_the_sdk_never_reach_the_caller(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = SimulatedAzure(tenant, clock=clock.now, sleep=clock.sleep)
    sim.inject(Fault.throttled("roleAssignments", retry_after=3, times=5))  # more than azure-core's 3 retries
    limiter = _limiter(sim, clock, Limits())
    tap = EvidenceTap(limiter, FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    auth = AzureClients(StaticCredential(), tap).authorization(tenant.subscription_id)
    assert list(auth.role_assignments.list_for_scope(tenant.workspace_id("mlw-fraud-prod"), filter="atScope()"))
    assert [e.status for e in tap.exchanges()] == [200]  # the evidence holds the answer, not the 429s
    assert limiter.stats().throttled == 5


class _Scripted(HttpTransport[Any, Any]):
    """Answers POSTs from a list of statuses (429 without Retry-After, as Resource Graph sends)."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.sent = 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent += 1
        status = self.statuses.pop(0) if self.statuses else 200
        body = b'{"error":{"code":"RateLimiting"}}' if status == 429 else b'{"data":[]}'
        headers = {"Content-Type": "application/json", **(self.headers if status != 429 else {})}
        return CannedResponse(request, status, headers, body)

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _Scripted:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


ARG_URL = "https://management.azure.com/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01"


def test_post_429_without_retry_after_is_retried_with_backoff() -> None:
    """azure-core gives up on these at once (azure-sdk-feasibility.md section 4); we do not."""
    clock = VirtualTime()
    inner = _Scripted([429, 429, 429, 200])
    limiter = _limiter(inner, clock, Limits(), backoff=0.5)
    response = limiter.send(HttpRequest("POST", ARG_URL, data=b"{}"))
    assert response.status_code == 200
    assert inner.sent == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_retries_are_bounded_then_the_429_goes_to_the_caller() -> None:
    clock = VirtualTime()
    inner = _Scripted([429] * 10)
    limiter = _limiter(inner, clock, Limits(), max_retries=2, backoff=1.0)
    response = limiter.send(HttpRequest("POST", ARG_URL, data=b"{}"))
    assert response.status_code == 429
    assert inner.sent == 3
    stats = limiter.stats()
    assert (stats.throttled, stats.retried, stats.gave_up) == (3, 2, 1)


def test_resource_graph_quota_header_pauses_its_bucket() -> None:
    clock = VirtualTime()
    inner = _Scripted([], headers={"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:04"})
    limiter = _limiter(inner, clock, Limits())
    limiter.send(HttpRequest("POST", ARG_URL, data=b"{}"))
    limiter.send(HttpRequest("POST", ARG_URL, data=b"{}"))
    assert clock.sleeps == [4.0]
    assert limiter.stats().bucket("resourcegraph") is not None


def test_subscriptions_have_separate_buckets() -> None:
    clock = VirtualTime()
    inner = _Scripted([])
    limiter = _limiter(inner, clock, Limits(capacity=2, refill_per_second=1.0))
    for sub in ("s1", "s2", "s1", "s2"):
        limiter.send(HttpRequest("GET", f"https://management.azure.com/subscriptions/{sub}/x?api-version=1"))
    assert clock.sleeps == []  # two each: both bursts fit
    limiter.send(HttpRequest("GET", "https://management.azure.com/subscriptions/s1/x?api-version=1"))
    assert clock.sleeps == [pytest.approx(1.0)]
    assert [b.requests for b in limiter.stats().buckets] == [3, 2]


def test_concurrent_senders_never_get_a_429_to_the_caller(tenant: Tenant) -> None:
    clock = VirtualTime()
    sim = _throttled_sim(tenant, clock, Throttle(capacity=20, refill_per_second=5.0))
    limiter = _limiter(sim, clock, Limits(capacity=20, refill_per_second=5.0))
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(offset: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(15):
                status = limiter.send(HttpRequest("GET", _url(tenant, offset * 100 + i))).status_code
                with lock:
                    statuses.append(status)

        return run

    threads = [threading.Thread(target=worker(t)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 120
    stats = limiter.stats()
    assert stats.requests - stats.retried == 120
    assert stats.gave_up == 0
