"""Run the collectors over a scope and window, concurrently; return what the tap saw and the gaps.

Every collector is split into its parts (``Collector.parts``: per workspace, per subscription and
filter, ...) and all parts of all collectors go to one bounded worker pool
(``evidence.collect.pool``), so the Activity Log of one subscription pages while the model lists
of another workspace are read. How fast requests leave is not the pool's business: the
``ThrottledTransport`` under the tap keeps each subscription within its ARM read budget.

The result does not depend on the number of workers or on timing:

* part ``i`` of the flattened list is pool task ``i``, and the tap records each exchange with
  that index and its place within the task; the store names raw files in that order, which is the
  order a sequential run makes the same calls in (each collector lists its parts in that order);
* each part has its own ``CollectSession``; gaps are concatenated in part order.

``workers=1`` (the default here) runs the same parts inline, one after another: the sequential
baseline, and what the sample generator records with (its simulated remaining-reads headers
depend on arrival order). ``build_package`` runs with ``DEFAULT_WORKERS`` or ``--concurrency``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from evidence.azure.clients import AzureClients
from evidence.azure.tap import EvidenceTap, Exchange
from evidence.clock import Clock, isoformat
from evidence.collect.interface import Collector, CollectSession, Part
from evidence.collect.pool import Task, WorkerPool
from evidence.domain import Gap, Scope, Window


def default_collectors(*, log_analytics_workspace: str | None = None) -> list[Collector]:
    """Every collector, in the order they run (and appear in the package).

    ``log_analytics_workspace`` (``[azure] log_analytics_workspace``): the workspace ID that
    receives the Activity Log, read for the part of the window older than its 90-day retention.
    """
    from evidence.collect.activity import SLICE, ActivityLogCollector
    from evidence.collect.endpoints import EndpointsCollector
    from evidence.collect.metrics import MetricsCollector
    from evidence.collect.models import ModelVersionsCollector
    from evidence.collect.rbac import RoleAssignmentsCollector

    return [
        ModelVersionsCollector(),
        EndpointsCollector(),
        RoleAssignmentsCollector(),
        # Slices page concurrently: a 90-day log of a busy resource group is 250 pages in one chain.
        ActivityLogCollector(log_analytics_workspace or None, slice_length=SLICE),
        MetricsCollector(),
    ]


@dataclass(frozen=True)
class CollectionRun:
    started_at: str
    finished_at: str
    exchanges: tuple[Exchange, ...]  # empty when the tap streamed to a store
    gaps: tuple[Gap, ...]
    tasks: int = 0


#: Progress reaches the CLI through an observer; the library never prints. A plain callable gets
#: messages; an ``evidence.progress.Progress`` also gets structured per-task events.
Observer = Callable[[str], None]


def _run_part(part: Part, session: CollectSession) -> None:
    part.run(session)


def plan_tasks(
    *,
    clients: AzureClients,
    scope: Scope,
    window: Window,
    clock: Clock,
    collectors: Sequence[Collector],
) -> tuple[list[Task[None]], list[CollectSession]]:
    """Every collector's parts as pool tasks, in collector order then part order, with their sessions."""
    tasks: list[Task[None]] = []
    sessions: list[CollectSession] = []
    for collector in collectors:
        planning = CollectSession(clients=clients, scope=scope, window=window, clock=clock, collector=collector.name)
        parts = list(collector.parts(planning))
        if planning.gaps:
            sessions.append(planning)  # gaps a collector records while planning come first for it
        first = len(tasks)
        for part in parts:
            session = CollectSession(clients=clients, scope=scope, window=window, clock=clock, collector=collector.name)
            sessions.append(session)
            tasks.append(
                Task(
                    partial(_run_part, part, session),
                    channel=collector.name,
                    subscription=part.subscription,
                    label=part.label,
                    after=tuple(first + i for i in part.after),
                    start_early=part.start_early,
                )
            )
    return tasks, sessions


def _planned(observer: Any, tasks: Sequence[Task[None]]) -> None:
    method = getattr(observer, "planned", None)
    if not callable(method):
        return
    counts: dict[tuple[str, str], int] = {}
    for task in tasks:
        key = (task.channel or "", task.subscription)
        counts[key] = counts.get(key, 0) + 1
    for (collector, subscription), n in counts.items():
        method(collector, subscription, n)


def run_collection(
    *,
    clients: AzureClients,
    tap: EvidenceTap,
    scope: Scope,
    window: Window,
    clock: Clock,
    collectors: Sequence[Collector],
    observer: Observer | None = None,
    workers: int = 1,
) -> CollectionRun:
    """Collect with ``workers`` threads (1: inline, the sequential baseline; the package builder
    passes ``DEFAULT_WORKERS`` or ``--concurrency``)."""
    started = isoformat(clock.now())
    tasks, sessions = plan_tasks(clients=clients, scope=scope, window=window, clock=clock, collectors=collectors)
    if observer is not None:
        observer(
            f"collecting {', '.join(c.name for c in collectors)}: {len(tasks)} tasks, "
            f"{min(workers, max(1, len(tasks)))} at a time"
        )
        _planned(observer, tasks)
    WorkerPool(workers, observer=observer).run(tasks)
    gaps = [gap for session in sessions for gap in session.gaps]
    if observer is not None:
        by_collector: dict[str, int] = {}
        for gap in gaps:
            by_collector[gap.collector] = by_collector.get(gap.collector, 0) + 1
        for name, n in by_collector.items():
            observer(f"{name}: {n} gap(s) recorded")
    return CollectionRun(
        started_at=started,
        finished_at=isoformat(clock.now()),
        exchanges=tuple(sorted(tap.exchanges(), key=lambda e: e.order_key)),
        gaps=tuple(gaps),
        tasks=len(tasks),
    )
