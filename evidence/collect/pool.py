"""A bounded worker pool for independent collection tasks, with results in submission order.

azure-ai-ml is synchronous, and the time goes into waiting for Resource Manager, so threads are
the right tool: ``ThreadPoolExecutor`` with a bound (the per-subscription limiter under the tap
decides how fast requests leave; the bound only caps how many wait at once).

Two things make concurrent collection produce the same package as a sequential one:

* **Results come back in submission order**, whatever order the tasks finish in, and the first
  failure (in submission order, not in time) is the one raised, after every task has ended.
* **Context travels with the task.** ``contextvars`` do not propagate into pool threads, so each
  task runs in a copy of the submitter's context (``contextvars.copy_context().run``), with the
  evidence tap's channel set to the task's collector and ``current_task()`` set to the task's
  index. The tap can record that index with each exchange, and the store can then order raw
  responses by (task index, order within the task), which is exactly the sequential order.

``workers=1`` runs every task inline, in order, on the calling thread: the sequential baseline
and a debugging aid, through the same code path.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from evidence.azure.tap import EvidenceTap

T = TypeVar("T")

#: The index of the pool task this code runs in (None outside a pool).
_current_task: contextvars.ContextVar[int | None] = contextvars.ContextVar("evidence_pool_task", default=None)

#: The default bound: enough to keep three subscriptions' buckets busy at 100 ms per request
#: (25 reads/s x 0.1 s = 2.5 in flight each), with room for CPU-bound parsing between requests.
DEFAULT_WORKERS = 16


def current_task() -> int | None:
    """The submission index of the pool task running this code, or None outside a pool."""
    return _current_task.get()


@dataclass(frozen=True)
class Task(Generic[T]):
    """One unit of work: ``run()``, attributed to ``channel`` (the collector) for the evidence tap.

    ``subscription`` and ``label`` are only for progress reporting.
    """

    run: Callable[[], T]
    channel: str | None = None
    subscription: str = ""
    label: str = ""


def _notify(observer: Any, event: str, task: Task[Any]) -> None:
    # Plain callables (the library's historical Observer) get nothing: structured events are
    # optional methods, so an observer opts in by having them (see evidence.progress).
    method = getattr(observer, event, None)
    if callable(method):
        method(task.channel or "", task.subscription)


def _run_one(index: int, task: Task[T], observer: Any) -> T:
    _current_task.set(index)
    _notify(observer, "started", task)
    try:
        if task.channel is not None:
            with EvidenceTap.channel(task.channel):
                return task.run()
        return task.run()
    finally:
        _notify(observer, "finished", task)


class WorkerPool:
    """Runs tasks on at most ``workers`` threads; see the module docstring for the guarantees."""

    def __init__(self, workers: int = DEFAULT_WORKERS, *, observer: Any = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.observer = observer

    def run(self, tasks: Sequence[Task[T] | Callable[[], T]]) -> list[T]:
        """Run every task; return their results in submission order.

        Every task runs to its end even when another fails; then the failure of the earliest
        submitted failing task is raised (so which error you see does not depend on timing).
        """
        items: list[Task[T]] = [t if isinstance(t, Task) else Task(t) for t in tasks]
        if self.workers == 1 or len(items) <= 1:
            return self._run_inline(items)
        futures: list[Future[T]] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)), thread_name_prefix="collect") as pool:
            for index, task in enumerate(items):
                context = contextvars.copy_context()
                futures.append(pool.submit(context.run, _run_one, index, task, self.observer))
            wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def _run_inline(self, items: Sequence[Task[T]]) -> list[T]:
        results: list[T] = []
        first_error: BaseException | None = None
        for index, task in enumerate(items):
            context = contextvars.copy_context()
            try:
                results.append(context.run(_run_one, index, task, self.observer))
            except Exception as exc:  # kept and re-raised below, as the threaded path does
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error
        return results


def run_tasks(
    tasks: Sequence[Task[T] | Callable[[], T]], *, workers: int = DEFAULT_WORKERS, observer: Any = None
) -> list[T]:
    """``WorkerPool(workers, observer=observer).run(tasks)``."""
    return WorkerPool(workers, observer=observer).run(tasks)
