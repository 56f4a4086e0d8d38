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

**Long chains first.** A task marked ``start_early`` (an Activity Log slice: tens of pages, one
after another) is submitted before the others ready at the same time. Started last, such chains
were the tail of a large run, with the other tasks long done and the subscription's read budget
unused (issue 7). Only the start order changes; results and raw-file order stay by index.

**Dependencies.** A task may name earlier tasks (``after``, by index) that must end before it
starts: e.g. role-definition look-ups after the role-assignment lists that name them. Tasks whose
dependencies have ended start at once; nothing waits on a stage barrier. A task whose dependency
failed does not run (the dependency's failure is the one raised).

``workers=1`` runs every task inline, in order, on the calling thread: the sequential baseline
and a debugging aid, through the same code path.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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

    ``after``: indices of earlier tasks that must end first. ``subscription`` and ``label`` are
    only for progress reporting. ``start_early``: submitted before the other tasks that are ready
    at the same time (a long chain of requests; see ``collect.interface.Part``).
    """

    run: Callable[[], T]
    channel: str | None = None
    subscription: str = ""
    label: str = ""
    after: tuple[int, ...] = ()
    start_early: bool = False


class _Skipped(Exception):
    """A task not run because a task it depends on failed."""


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
        # The tap orders what this task fetched by (index, order within the task): sequential order.
        with EvidenceTap.task((index,)):
            if task.channel is not None:
                with EvidenceTap.channel(task.channel):
                    return task.run()
            return task.run()
    finally:
        _notify(observer, "finished", task)


def _check_dependencies(items: Sequence[Task[Any]]) -> None:
    for index, task in enumerate(items):
        for dep in task.after:
            if not 0 <= dep < index:
                raise ValueError(f"task {index} can only depend on earlier tasks, not {dep}")


class WorkerPool:
    """Runs tasks on at most ``workers`` threads; see the module docstring for the guarantees."""

    def __init__(self, workers: int = DEFAULT_WORKERS, *, observer: Any = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.observer = observer

    def run(self, tasks: Sequence[Task[T] | Callable[[], T]]) -> list[T]:
        """Run every task; return their results in submission order.

        Every task runs to its end even when another fails (except those depending on a failed
        one); then the failure of the earliest submitted failing task is raised (so which error
        you see does not depend on timing).
        """
        items: list[Task[T]] = [t if isinstance(t, Task) else Task(t) for t in tasks]
        _check_dependencies(items)
        if self.workers == 1 or len(items) <= 1:
            return self._run_inline(items)
        futures: dict[int, Future[T]] = {}
        waiting = set(range(len(items)))
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)), thread_name_prefix="collect") as pool:
            while waiting or any(not f.done() for f in futures.values()):
                # Submit every waiting task whose dependencies have all ended: long chains first,
                # then in index order (the executor starts them first in, first out).
                for index in sorted(waiting, key=lambda i: (not items[i].start_early, i)):
                    deps = [futures.get(d) for d in items[index].after]
                    if all(f is not None and f.done() for f in deps):
                        waiting.discard(index)
                        if any(f is not None and f.exception() is not None for f in deps):
                            skipped: Future[T] = Future()
                            skipped.set_exception(_Skipped())
                            futures[index] = skipped
                            continue
                        context = contextvars.copy_context()
                        futures[index] = pool.submit(context.run, _run_one, index, items[index], self.observer)
                running = [f for f in futures.values() if not f.done()]
                if running:
                    wait(running, return_when=FIRST_COMPLETED)
        return self._results([futures[i] for i in range(len(items))])

    @staticmethod
    def _results(futures: Sequence[Future[T]]) -> list[T]:
        for future in futures:
            error = future.exception()
            if error is not None and not isinstance(error, _Skipped):
                raise error
        return [f.result() for f in futures]

    def _run_inline(self, items: Sequence[Task[T]]) -> list[T]:
        futures: list[Future[T]] = []
        for index, task in enumerate(items):
            future: Future[T] = Future()
            if any(futures[d].exception() is not None for d in task.after):
                future.set_exception(_Skipped())
            else:
                context = contextvars.copy_context()
                try:
                    future.set_result(context.run(_run_one, index, task, self.observer))
                except Exception as exc:  # kept and re-raised below, as the threaded path does
                    future.set_exception(exc)
            futures.append(future)
        return self._results(futures)


def run_tasks(
    tasks: Sequence[Task[T] | Callable[[], T]], *, workers: int = DEFAULT_WORKERS, observer: Any = None
) -> list[T]:
    """``WorkerPool(workers, observer=observer).run(tasks)``."""
    return WorkerPool(workers, observer=observer).run(tasks)
