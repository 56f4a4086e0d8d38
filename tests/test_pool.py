"""The worker pool: submission-order results, context in worker threads, deterministic failures.

Completion order is forced with events (never with sleeps), so the tests prove ordering without
depending on timing.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.pipeline.transport import HttpRequest, HttpTransport

from evidence.azure.replay import CannedResponse
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock, parse_timestamp
from evidence.collect.pool import Task, WorkerPool, current_task, run_tasks

WAIT = 30.0  # a safety net against a deadlock in a broken pool, not a timing assertion


def test_results_come_back_in_submission_order_whatever_the_completion_order() -> None:
    n = 6
    # Task i finishes only after task i+1: completion order is n-1, ..., 0.
    done = [threading.Event() for _ in range(n)]
    finished: list[str] = []
    lock = threading.Lock()

    def task(i: int) -> Callable[[], int]:
        def run() -> int:
            if i + 1 < n:
                assert done[i + 1].wait(WAIT)
            with lock:
                finished.append(str(i))
            done[i].set()
            return i * 10

        return run

    results = WorkerPool(n).run([task(i) for i in range(n)])
    assert results == [0, 10, 20, 30, 40, 50]
    assert finished == ["5", "4", "3", "2", "1", "0"]  # they really did finish in reverse


def test_first_failure_in_submission_order_is_raised_after_all_tasks_ran() -> None:
    n = 4
    done = [threading.Event() for _ in range(n)]
    ran: list[int] = []

    def task(i: int) -> Callable[[], None]:
        def run() -> None:
            if i + 1 < n:
                assert done[i + 1].wait(WAIT)
            ran.append(i)
            done[i].set()
            if i in (1, 3):  # task 3 fails first in time, task 1 first in submission order
                raise RuntimeError(f"task {i}")

        return run

    with pytest.raises(RuntimeError, match="task 1"):
        WorkerPool(n).run([task(i) for i in range(n)])
    assert sorted(ran) == [0, 1, 2, 3]
    # The inline (workers=1) path keeps the same rule.
    with pytest.raises(RuntimeError, match="task 1"):
        WorkerPool(1).run([_raiser(0, fail=False), _raiser(1), _raiser(3)])


def _raiser(i: int, *, fail: bool = True) -> Callable[[], None]:
    def run() -> None:
        if fail:
            raise RuntimeError(f"task {i}")

    return run


_marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


def test_submitters_context_reaches_worker_threads_with_the_task_index() -> None:
    token = _marker.set("from-submitter")
    try:
        seen = run_tasks([lambda: (_marker.get(), current_task(), threading.current_thread().name)] * 3, workers=3)
    finally:
        _marker.reset(token)
    assert [(m, i) for m, i, _ in seen] == [("from-submitter", 0), ("from-submitter", 1), ("from-submitter", 2)]
    assert all(name.startswith("collect") for _, _, name in seen)
    assert current_task() is None  # nothing leaks back into the caller


class _Recorder(HttpTransport[Any, Any]):
    """Answers 200 and records which pool task each request came from, in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int | None, str]] = []
        self._lock = threading.Lock()

    def send(self, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.arrivals.append((current_task(), request.url))
        return CannedResponse(request, 200, {"Content-Type": "application/json"}, b"{}")

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def test_tap_channel_is_set_inside_workers_and_task_order_restores_sequential_order() -> None:
    recorder = _Recorder()
    tap = EvidenceTap(recorder, FixedClock(parse_timestamp("2026-09-28T06:00:00Z")))
    n = 4
    gates = [threading.Event() for _ in range(n)]

    def task(i: int) -> Callable[[], None]:
        def run() -> None:
            # Interleave: every task sends its first request, then waits for the next task's.
            tap.send(HttpRequest("GET", f"https://x/{i}/a"))
            gates[i].set()
            if i + 1 < n:
                assert gates[i + 1].wait(WAIT)
            tap.send(HttpRequest("GET", f"https://x/{i}/b"))

        return run

    tasks = [Task(task(i), channel="model_versions" if i % 2 == 0 else "endpoints") for i in range(n)]
    WorkerPool(n).run(tasks)
    by_url = {e.url: e for e in tap.exchanges()}
    assert {u: e.collector for u, e in by_url.items()} == {
        f"https://x/{i}/{s}": ("model_versions" if i % 2 == 0 else "endpoints") for i in range(n) for s in "ab"
    }
    arrival_urls = [u for _, u in recorder.arrivals]
    sequential = [f"https://x/{i}/{s}" for i in range(n) for s in "ab"]
    assert arrival_urls != sequential  # they did interleave
    # The proposed store ordering: by (task index, arrival within the task) is the sequential order.
    ordered = [u for _, u in sorted(recorder.arrivals, key=lambda a: a[0] if a[0] is not None else -1)]
    assert ordered == sequential


class _Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        raise AssertionError("the pool sends structured events only")

    def started(self, collector: str, subscription: str) -> None:
        with self._lock:
            self.events.append(("started", collector, subscription))

    def finished(self, collector: str, subscription: str) -> None:
        with self._lock:
            self.events.append(("finished", collector, subscription))


def test_structured_observer_events_and_plain_callables_are_both_accepted() -> None:
    events = _Events()
    WorkerPool(1, observer=events).run([Task(lambda: None, channel="rbac", subscription="s1")])
    assert events.events == [("started", "rbac", "s1"), ("finished", "rbac", "s1")]
    messages: list[str] = []
    assert WorkerPool(2, observer=messages.append).run([lambda: 1, lambda: 2]) == [1, 2]
    assert messages == []


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(0)


def test_long_chains_start_first_and_results_stay_in_submission_order() -> None:
    started: list[int] = []
    lock = threading.Lock()
    early = {3, 5}
    # The two early tasks wait for each other, so both workers hold one until both have started:
    # the first two starts are then exactly the first two tasks the pool handed out.
    both_started = threading.Barrier(2, timeout=WAIT)

    def task(i: int) -> Callable[[], int]:
        def run() -> int:
            with lock:
                started.append(i)
            if i in early:
                both_started.wait()
            return i

        return run

    tasks = [Task(task(i), start_early=i in early) for i in range(7)]
    results = WorkerPool(2).run(tasks)  # 2 workers: through the executor, first in, first out
    assert results == list(range(7))  # results by index, whatever ran first
    assert set(started[:2]) == early


def test_a_long_chain_still_waits_for_its_dependencies() -> None:
    order: list[str] = []
    lock = threading.Lock()

    def step(name: str) -> Callable[[], str]:
        def run() -> str:
            with lock:
                order.append(name)
            return name

        return run

    tasks = [Task(step("list")), Task(step("chain"), start_early=True, after=(0,)), Task(step("other"))]
    assert WorkerPool(4).run(tasks) == ["list", "chain", "other"]
    assert order.index("list") < order.index("chain")
