"""A client-side mirror of Resource Manager's read throttling, so collection slows down before it is throttled.

ARM gives each subscription (per principal) a read token bucket of 250 refilled at 25 per second,
reports what is left in ``x-ms-ratelimit-remaining-subscription-reads`` and answers 429 with
``Retry-After`` when the bucket is empty (azure-limits.md section 1). Requests without a
subscription in the path draw on the separate tenant bucket. ``ThrottledTransport`` wraps the
transport under the evidence tap and keeps one bucket per (host, subscription):

* it waits *before* sending when its estimate of the bucket is empty, so a concurrent run never
  asks for more than the bucket allows;
* it corrects its estimate downwards from the remaining-reads header (other tools using the same
  principal spend the same bucket), counting requests still in flight so a stale header cannot
  hand out tokens twice;
* on a 429 it pauses that subscription's bucket for ``Retry-After`` (or an exponential back-off
  when the header is missing) and sends the request again itself, a bounded number of times.
  azure-core does not retry a POST 429 without ``Retry-After`` (azure-sdk-feasibility.md section
  4), which is exactly what Resource Graph and Log Analytics send; a read-only tool can always
  resend a query.

Resource Graph has its own quota (15 queries per 5 seconds per user, azure-limits.md section 2)
reported in ``x-ms-user-quota-remaining`` / ``x-ms-user-quota-resets-after``; its POSTs get their
own bucket, paused when the quota header says 0.

Clock and sleep are injected: tests run instantly on a virtual clock. Thread-safe: collection
tasks share one transport from a worker pool; waiting happens outside the lock.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.pipeline.transport import HttpTransport

REMAINING_READS = "x-ms-ratelimit-remaining-subscription-reads"
REMAINING_TENANT_READS = "x-ms-ratelimit-remaining-tenant-reads"
ARG_QUOTA_REMAINING = "x-ms-user-quota-remaining"
ARG_QUOTA_RESETS = "x-ms-user-quota-resets-after"

_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?]+)", re.IGNORECASE)
_RESOURCE_GRAPH = re.compile(r"/providers/Microsoft\.ResourceGraph/", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """One bucket's shape. The defaults are ARM's documented subscription read limits."""

    capacity: float = 250.0
    refill_per_second: float = 25.0


#: Resource Graph: "at most 15 queries within every 5-second window" (azure-limits.md section 2).
RESOURCE_GRAPH_LIMITS = Limits(capacity=15.0, refill_per_second=3.0)


def bucket_key(url: str) -> str:
    """Which bucket a request draws on: ``host/subscription``, ``host/tenant`` or ``host/resourcegraph``."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    host = parts.netloc.lower()
    if _RESOURCE_GRAPH.search(path):
        return f"{host}/resourcegraph"
    m = _SUBSCRIPTION.search(path)
    return f"{host}/{m.group(1).lower()}" if m else f"{host}/tenant"


@dataclass(frozen=True)
class BucketStats:
    key: str
    requests: int  # sent to the service, retries included
    waits: int  # times a request waited for a token or a pause before being sent
    waited_seconds: float
    throttled: int  # 429 responses seen
    retried: int  # 429s this transport resent itself
    gave_up: int  # 429s handed to the caller after max_retries
    corrections: int  # times a remaining-reads header lowered the estimate


@dataclass(frozen=True)
class LimiterStats:
    buckets: tuple[BucketStats, ...]

    @property
    def requests(self) -> int:
        return sum(b.requests for b in self.buckets)

    @property
    def waits(self) -> int:
        return sum(b.waits for b in self.buckets)

    @property
    def waited_seconds(self) -> float:
        return sum(b.waited_seconds for b in self.buckets)

    @property
    def throttled(self) -> int:
        return sum(b.throttled for b in self.buckets)

    @property
    def retried(self) -> int:
        return sum(b.retried for b in self.buckets)

    @property
    def gave_up(self) -> int:
        return sum(b.gave_up for b in self.buckets)

    def bucket(self, key_suffix: str) -> BucketStats | None:
        for b in self.buckets:
            if b.key.endswith(key_suffix.lower()):
                return b
        return None


#: The shortest pause before retrying a token bucket.
MIN_WAIT_SECONDS = 0.001


class _Bucket:
    """One token bucket. Callers hold the limiter's lock."""

    def __init__(self, key: str, limits: Limits, now: float) -> None:
        self.key = key
        self.limits = limits
        self.tokens = limits.capacity
        self.updated = now
        self.paused_until = now
        self.in_flight = 0
        self.requests = self.waits = self.throttled = self.retried = self.gave_up = self.corrections = 0
        self.waited = 0.0

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.limits.capacity, self.tokens + elapsed * self.limits.refill_per_second)
        self.updated = now

    def try_take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        self.refill(now)
        if now < self.paused_until:
            return self.paused_until - now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.in_flight += 1
            self.requests += 1
            return 0.0
        # Never less than a millisecond: a wait of 1e-17 s added to a clock of 10 s is lost to float
        # rounding, the bucket never refills, and the caller spins forever (seen on a virtual clock).
        return max(MIN_WAIT_SECONDS, (1.0 - self.tokens) / self.limits.refill_per_second)

    def observe_remaining(self, remaining: int) -> None:
        # The header counts what the service had left when it answered; requests of ours still in
        # flight may not have reached it yet, so they are subtracted (never hand a token out twice).
        estimate = float(remaining - max(0, self.in_flight - 1))
        if estimate < self.tokens:
            self.tokens = estimate
            self.corrections += 1

    def pause(self, now: float, seconds: float) -> None:
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.paused_until = max(self.paused_until, now + seconds)

    def snapshot(self) -> BucketStats:
        return BucketStats(
            key=self.key,
            requests=self.requests,
            waits=self.waits,
            waited_seconds=self.waited,
            throttled=self.throttled,
            retried=self.retried,
            gave_up=self.gave_up,
            corrections=self.corrections,
        )


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    value = headers.get(name)
    if value is None:
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return None if value is None else str(value)


def retry_after_seconds(value: str | None, now_epoch: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        base = time.time() if now_epoch is None else now_epoch
        return max(0.0, when.timestamp() - base)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _hms_seconds(value: str | None) -> float | None:
    """``x-ms-user-quota-resets-after``: ``hh:mm:ss``."""
    if not value:
        return None
    try:
        h, m, s = (float(p) for p in value.strip().split(":"))
    except ValueError:
        return None
    return h * 3600 + m * 60 + s


class ThrottledTransport(HttpTransport):  # type: ignore[type-arg]  # azure-core's generic params are not public API
    """An ``HttpTransport`` wrapper that keeps each subscription within ARM's read bucket.

    ``max_retries``: how many 429s per request this transport resends itself before handing the
    429 to the SDK (whose own retry policy then applies). ``backoff`` is used when a 429 carries
    no ``Retry-After``: ``backoff * 2**attempt`` seconds, at most ``max_backoff``.
    """

    def __init__(
        self,
        inner: HttpTransport[Any, Any],
        *,
        limits: Limits = Limits(),
        resource_graph_limits: Limits = RESOURCE_GRAPH_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._arg_limits = resource_graph_limits
        self._clock = clock
        self._sleep = sleep
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    @property
    def inner(self) -> HttpTransport[Any, Any]:
        return self._inner

    def stats(self) -> LimiterStats:
        with self._lock:
            return LimiterStats(tuple(b.snapshot() for _, b in sorted(self._buckets.items())))

    # -- bucket handling -------------------------------------------------------------------------
    def _bucket(self, key: str) -> _Bucket:
        # Caller holds the lock.
        bucket = self._buckets.get(key)
        if bucket is None:
            limits = self._arg_limits if key.endswith("/resourcegraph") else self._limits
            bucket = self._buckets[key] = _Bucket(key, limits, self._clock())
        return bucket

    def _acquire(self, key: str) -> None:
        waited = False
        while True:
            with self._lock:
                bucket = self._bucket(key)
                wait = bucket.try_take(self._clock())
                if wait <= 0.0:
                    return
                if not waited:
                    bucket.waits += 1
                    waited = True
                bucket.waited += wait
            self._sleep(wait)

    def _settle(self, key: str, response: Any) -> float | None:
        """Account for a response; return how long to pause before resending it (None: done)."""
        status = int(getattr(response, "status_code", 0))
        with self._lock:
            bucket = self._bucket(key)
            now = self._clock()
            for name in (REMAINING_READS, REMAINING_TENANT_READS):
                remaining = _header(response, name)
                if remaining is not None and remaining.strip().lstrip("-").isdigit():
                    bucket.observe_remaining(int(remaining))
                    break
            quota = _header(response, ARG_QUOTA_REMAINING)
            if quota is not None and quota.strip().isdigit() and int(quota) <= 0:
                resets = _hms_seconds(_header(response, ARG_QUOTA_RESETS))
                bucket.pause(now, resets if resets is not None else 5.0)
            bucket.in_flight = max(0, bucket.in_flight - 1)
            if status != 429:
                return None
            bucket.throttled += 1
            return retry_after_seconds(_header(response, "Retry-After"))

    # -- HttpTransport ---------------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> Any:
        key = bucket_key(str(request.url))
        attempt = 0
        while True:
            self._acquire(key)
            try:
                response = self._inner.send(request, **kwargs)
            except BaseException:
                with self._lock:
                    bucket = self._bucket(key)
                    bucket.in_flight = max(0, bucket.in_flight - 1)
                raise
            retry_after = self._settle(key, response)
            if int(getattr(response, "status_code", 0)) != 429:
                return response
            if attempt >= self.max_retries:
                with self._lock:
                    self._bucket(key).gave_up += 1
                return response
            pause = retry_after
            if pause is None:
                pause = min(self.max_backoff, self.backoff * (2**attempt))
            with self._lock:
                bucket = self._bucket(key)
                bucket.pause(self._clock(), pause)
                bucket.retried += 1
            attempt += 1
            _discard(response)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> ThrottledTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._inner.__exit__(*args)

    def sleep(self, duration: float) -> None:
        self._inner.sleep(duration)


def _discard(response: Any) -> None:
    """Release a 429 response we will not hand on (its connection goes back to the pool)."""
    close = getattr(response, "close", None)
    if callable(close):
        close()
