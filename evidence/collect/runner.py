"""Run the collectors over a scope and window; return what the tap saw and the gaps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evidence.azure.clients import AzureClients
from evidence.azure.tap import EvidenceTap, Exchange
from evidence.clock import Clock, isoformat
from evidence.collect.interface import Collector, CollectSession
from evidence.domain import Gap, Scope, Window


def default_collectors(*, log_analytics_workspace: str | None = None) -> list[Collector]:
    """Every collector, in the order they run (and appear in the package).

    ``log_analytics_workspace`` (``[azure] log_analytics_workspace``): the workspace ID that
    receives the Activity Log, read for the part of the window older than its 90-day retention.
    """
    from evidence.collect.activity import ActivityLogCollector
    from evidence.collect.endpoints import EndpointsCollector
    from evidence.collect.metrics import MetricsCollector
    from evidence.collect.models import ModelVersionsCollector
    from evidence.collect.rbac import RoleAssignmentsCollector

    return [
        ModelVersionsCollector(),
        EndpointsCollector(),
        RoleAssignmentsCollector(),
        ActivityLogCollector(log_analytics_workspace or None),
        MetricsCollector(),
    ]


@dataclass(frozen=True)
class CollectionRun:
    started_at: str
    finished_at: str
    exchanges: tuple[Exchange, ...]
    gaps: tuple[Gap, ...]


#: Progress reaches the CLI through an observer; the library never prints.
Observer = Callable[[str], None]


def run_collection(
    *,
    clients: AzureClients,
    tap: EvidenceTap,
    scope: Scope,
    window: Window,
    clock: Clock,
    collectors: Sequence[Collector],
    observer: Observer | None = None,
) -> CollectionRun:
    started = isoformat(clock.now())
    gaps: list[Gap] = []
    for collector in collectors:
        if observer:
            observer(f"collecting {collector.name}")
        session = CollectSession(clients=clients, scope=scope, window=window, clock=clock, collector=collector.name)
        with tap.channel(collector.name):
            collector.collect(session)
        gaps.extend(session.gaps)
        if observer and session.gaps:
            observer(f"{collector.name}: {len(session.gaps)} gap(s) recorded")
    return CollectionRun(
        started_at=started,
        finished_at=isoformat(clock.now()),
        exchanges=tuple(tap.exchanges()),
        gaps=tuple(gaps),
    )
