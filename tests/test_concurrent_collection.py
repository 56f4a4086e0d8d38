"""Concurrency does not change the package: the same recording gives the same zip with 1 or 16 workers.

The recording is the bundled Contoso sample, replayed through the real SDK pipelines. A small
delay per request (in a transport wrapper, below the tap) makes worker threads overlap for real,
and the test checks they did: requests arrived in an order a sequential run never makes, yet the
zip is byte-identical. No timing is asserted.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from azure.core.pipeline.transport import HttpTransport

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport, load_cassette
from evidence.azure.tap import EvidenceTap
from evidence.check.runner import default_controls
from evidence.clock import FixedClock, parse_timestamp
from evidence.collect.activity import SLICE
from evidence.collect.runner import default_collectors
from evidence.collect.store import RAW_DIR
from evidence.config import load_config
from evidence.pipeline import PackageRequest, build_package
from evidence.resources import bundled

SAMPLE = bundled("samples") / "contoso"


class _Slow(HttpTransport[Any, Any]):
    """Sleeps a little before each request and notes the arrival order of request URLs."""

    def __init__(self, inner: HttpTransport[Any, Any], delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.arrivals: list[str] = []
        self._lock = threading.Lock()

    def send(self, request: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        with self._lock:
            self.arrivals.append(str(request.url))
        return self.inner.send(request, **kwargs)

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _Slow:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def sleep(self, duration: float) -> None:
        return None


def _build(out: Path, workers: int, delay: float) -> tuple[Path, list[str]]:
    cassette = load_cassette(SAMPLE / "cassette")
    clock = FixedClock(parse_timestamp(str(cassette.variables["recorded_at"])))
    slow = _Slow(ReplayTransport(cassette), delay)
    tap = EvidenceTap(slow, clock)
    config = load_config(SAMPLE / "evidence.toml")
    request = PackageRequest(
        scope=config.scope.to_scope(),
        window=config.window.resolve(clock.now()),
        out_dir=out,
        mode="replay",
        policy=config.policy,
        concurrency=workers,
    )
    result = build_package(
        request,
        clients=AzureClients(StaticCredential(), tap),
        tap=tap,
        clock=clock,
        collectors=default_collectors(),
        controls=default_controls(),
    )
    return result.zip_path, slow.arrivals


def test_concurrent_and_sequential_runs_give_the_identical_zip(tmp_path: Path) -> None:
    sequential_zip, sequential_order = _build(tmp_path / "sequential", workers=1, delay=0.0)
    concurrent_zip, concurrent_order = _build(tmp_path / "concurrent", workers=16, delay=0.01)
    # Same requests, but they really did arrive in another order...
    assert sorted(concurrent_order) == sorted(sequential_order)
    assert concurrent_order != sequential_order
    # ...and the package is the same, byte for byte.
    assert (
        hashlib.sha256(concurrent_zip.read_bytes()).hexdigest()
        == hashlib.sha256(sequential_zip.read_bytes()).hexdigest()
    )


def test_streamed_raw_files_leave_no_temporary_folder(tmp_path: Path) -> None:
    import zipfile

    zip_path, _ = _build(tmp_path, workers=4, delay=0.0)
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert not [n for n in names if "/.incoming" in n]
    assert any(f"/{RAW_DIR}/activity_log/00001.json" in n for n in names)


def test_simulated_session_keeps_each_subscription_within_its_bucket_and_no_429_becomes_a_gap() -> None:
    from evidence.azure.limiter import Limits
    from evidence.azure.session import limiter_of, simulated_session
    from evidence.azure.simulator import SimulatedAzure, Throttle, load_tenant
    from evidence.collect.runner import run_collection

    tenant = load_tenant(SAMPLE / "tenant.toml")
    # A tiny bucket (8, refilled at 80 per second) so a 16-thread run must wait for tokens.
    simulator = SimulatedAzure(tenant, throttle=Throttle(8, 80.0))
    clock = FixedClock(tenant.now)
    session = simulated_session(simulator, clock=clock, limits=Limits(8, 80.0))
    config = load_config(SAMPLE / "evidence.toml")
    run = run_collection(
        clients=session.clients,
        tap=session.tap,
        scope=config.scope.to_scope(),
        window=config.window.resolve(clock.now()),
        clock=clock,
        collectors=default_collectors(),
        workers=16,
    )
    assert [g for g in run.gaps if g.status == 429] == []
    limiter = limiter_of(session)
    assert limiter is not None
    stats = limiter.stats()
    assert stats.waits > 0  # it did slow down
    assert stats.gave_up == 0
    assert stats.requests >= len(run.exchanges)


def test_time_slices_cover_the_window_in_whole_seconds() -> None:
    from datetime import timedelta

    from evidence.collect.activity import SLICE, time_slices

    start = parse_timestamp("2026-07-01T00:00:00Z")
    end = parse_timestamp("2026-09-28T06:00:00Z")
    slices = time_slices(start, end)
    assert slices[0][0] == start and slices[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    assert all(e - s <= SLICE and (e - s).microseconds == 0 for s, e in slices)
    assert len(slices) == 6
    assert time_slices(start, start + timedelta(days=3)) == [(start, start + timedelta(days=3))]


def _stream_sample_collection(root: Path, collector: Any, workers: int) -> tuple[Any, list[Any]]:
    """Collect the sample tenant with ``collector``, streaming every response into a RawStore at
    ``root`` as ``evidence package`` does; return the run and the stored provenance."""
    from evidence.azure.session import simulated_session
    from evidence.azure.simulator import SimulatedAzure, load_tenant
    from evidence.collect.runner import run_collection
    from evidence.collect.store import RawStore

    tenant = load_tenant(SAMPLE / "tenant.toml")
    clock = FixedClock(tenant.now)
    config = load_config(SAMPLE / "evidence.toml")
    session = simulated_session(SimulatedAzure(tenant), clock=clock)
    store = RawStore(root)
    with session.tap.streaming(store):
        run = run_collection(
            clients=session.clients,
            tap=session.tap,
            scope=config.scope.to_scope(),
            window=config.window.resolve(clock.now()),
            clock=clock,
            collectors=[collector],
            workers=workers,
        )
    provenance, _ = store.finish()
    return run, provenance


def test_sliced_activity_log_gives_the_same_records_as_one_read_per_filter(tmp_path: Path) -> None:
    from evidence.collect.activity import ActivityLogCollector
    from evidence.collect.store import load_raw, normalise_all

    found = []
    for name, collector in (("one", ActivityLogCollector()), ("sliced", ActivityLogCollector(slice_length=SLICE))):
        run, provenance = _stream_sample_collection(tmp_path / name, collector, workers=8)
        assert run.gaps == ()
        found.append((len(provenance), normalise_all([collector], load_raw(tmp_path / name, provenance))))
    (one_requests, one), (sliced_requests, sliced) = found
    assert sliced_requests > one_requests  # it really read in slices
    assert sliced == one and len(one["activity_events"]) > 0


def test_each_streamed_activity_log_page_is_parsed_once(tmp_path: Path, monkeypatch: Any) -> None:
    """The store's parse of a page serves the pager's nextLink too (issue 7: parsing each
    200-event page two or three times was a large part of the client's CPU)."""
    from evidence.collect import store as store_module
    from evidence.collect.activity import ActivityLogCollector

    parsed: list[int] = []
    real_loads = store_module._loads

    def counting_loads(data: bytes) -> Any:
        parsed.append(len(data))
        return real_loads(data)

    monkeypatch.setattr(store_module, "_loads", counting_loads)
    run, provenance = _stream_sample_collection(tmp_path, ActivityLogCollector(), workers=4)
    pages = [p for p in provenance if p.file is not None]
    assert run.gaps == ()
    assert len(pages) > 1
    assert len(parsed) == len(pages)  # once by the store; the pager took that parse
