"""Synthetic tenants for the collection benchmark, as the simulator's own ``Tenant`` values.

Profiles (issue 7):

* ``small``: 1 subscription, 3 workspaces, 20 models x 3 versions, 4 endpoints x 2 deployments,
  120 role assignments, about 5,000 Activity Log events: a CI smoke test.
* ``large``: 3 subscriptions, 30 workspaces, 600 models x 5 versions, 60 endpoints x 2 deployments,
  3,000 role assignments, about 150,000 Activity Log events, 90-day window.

The simulator's ``Tenant`` describes one subscription, so a profile is one ``Tenant`` per
subscription, and ``MultiSubscriptionAzure`` routes each request to the simulator of the
subscription in its path: each subscription then has its own ARM token bucket, as in Azure.

Deterministic: the same profile always gives the same tenants (ids are uuid5 of names).
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.pipeline.transport import HttpTransport

from evidence.azure.sim.activity import RETENTION, ActivityFilter, ActivityLog
from evidence.azure.sim.tenant import (
    Deployment,
    Endpoint,
    Model,
    ModelVersion,
    Principal,
    RecurringActivity,
    RoleAssignment,
    Tenant,
    Workspace,
    derived_id,
)
from evidence.azure.simulator import SimulatedAzure, Throttle
from evidence.clock import parse_timestamp
from evidence.domain import Workspace as ScopeWorkspace

NOW = datetime(2026, 9, 28, 6, 0, tzinfo=UTC)
WINDOW_DAYS = 90


@dataclass(frozen=True)
class Profile:
    name: str
    subscriptions: int
    workspaces: int  # in total, spread evenly over the subscriptions
    models: int  # in total
    versions: int  # per model
    endpoints: int  # in total
    deployments: int  # per endpoint
    role_assignments: int  # in total
    activity_events: int  # in total (approximate: each write logs a Started and an end event)
    users: int = 200
    pipelines: int = 20


PROFILES: dict[str, Profile] = {
    "small": Profile("small", 1, 3, 20, 3, 4, 2, 120, 5_000, users=20, pipelines=3),
    "large": Profile("large", 3, 30, 600, 5, 60, 2, 3_000, 150_000),
    # ``large`` with a fifth more Activity Log: its package holds about 1 GB (1,018 MB in 2,174
    # members), the size issue 6's verify benchmark names (``bench_package.py --keep``, then
    # ``bench_verify.py --package``).
    "large-1gb": Profile("large-1gb", 3, 30, 600, 5, 60, 2, 3_000, 180_000),
}

ROLES = ("Reader", "AzureML Data Scientist", "Contributor", "Owner", "User Access Administrator")


def _principals(p: Profile) -> tuple[Principal, ...]:
    users = [
        Principal(derived_id("user", str(i)), f"user{i:03d}@contoso.example", "User", f"User {i}")
        for i in range(p.users)
    ]
    pipes = [
        Principal(
            derived_id("sp", str(i)),
            f"sp-pipeline-{i:02d}",
            "ServicePrincipal",
            f"Pipeline {i}",
            app_id=derived_id("app", str(i)),
        )
        for i in range(p.pipelines)
    ]
    return tuple(users + pipes)


def build_tenants(profile: Profile) -> list[Tenant]:
    """One ``Tenant`` per subscription of the profile."""
    principals = _principals(profile)
    users = [x.name for x in principals if x.type == "User"]
    pipes = [x.name for x in principals if x.type == "ServicePrincipal"]
    start = NOW - timedelta(days=WINDOW_DAYS)
    ws_per_sub = profile.workspaces // profile.subscriptions
    models_per_ws = profile.models // profile.workspaces
    eps_per_ws = max(1, profile.endpoints // profile.workspaces)
    ra_per_sub = profile.role_assignments // profile.subscriptions
    # Events the description implies (2 per write), the rest come from recurring training jobs.
    implied = 2 * (profile.models * profile.versions + profile.endpoints * (1 + profile.deployments))
    implied += 2 * profile.role_assignments
    recurring_events = max(0, profile.activity_events - implied)
    occurrences_per_ws = max(1, recurring_events // 2 // profile.workspaces)
    every = timedelta(minutes=max(1, (WINDOW_DAYS * 24 * 60) // occurrences_per_ws))
    tenants: list[Tenant] = []
    for s in range(profile.subscriptions):
        sub_id = derived_id("subscription", profile.name, str(s))
        workspaces = tuple(
            Workspace(f"mlw-{s}-{w:02d}", start - timedelta(days=400), pipes[w % len(pipes)]) for w in range(ws_per_sub)
        )
        models: list[Model] = []
        endpoints: list[Endpoint] = []
        recurring: list[RecurringActivity] = []
        for w, ws in enumerate(workspaces):
            for m in range(models_per_ws):
                versions = tuple(
                    ModelVersion(
                        version=str(v + 1),
                        created_at=start + timedelta(days=(m * 7 + v * 13) % WINDOW_DAYS, hours=v),
                        created_by=pipes[(m + v) % len(pipes)],
                        stage="Production" if v == profile.versions - 1 else "Development",
                        tags={"approval_ticket": f"MRM-{s}{w:02d}{m:03d}{v}"} if v else {},
                        job_name=f"train-{ws.name}-{m:03d}-{v}",
                    )
                    for v in range(profile.versions)
                )
                models.append(Model(ws.name, f"model-{m:03d}", f"Model {m}", versions))
            for e in range(eps_per_ws):
                deps = tuple(
                    Deployment(
                        name=("blue", "green", "red", "black")[d % 4],
                        model=f"model-{(e + d) % models_per_ws:03d}:{profile.versions}",
                        instance_type="Standard_DS3_v2",
                        instance_count=2,
                        created_at=start + timedelta(days=10 + d),
                        created_by=pipes[(e + d) % len(pipes)],
                    )
                    for d in range(profile.deployments)
                )
                traffic = {deps[0].name: 100} if deps else {}
                endpoints.append(
                    Endpoint(
                        ws.name, f"ep-{ws.name}-{e}", "Key", traffic, {}, start + timedelta(days=5), pipes[0], deps
                    )
                )
            recurring.append(
                RecurringActivity(
                    operation="Microsoft.MachineLearningServices/workspaces/jobs/write",
                    resource=f"workspace/{ws.name}/jobs/nightly-{w:02d}-{{n}}",
                    caller=pipes[w % len(pipes)],
                    start=start + timedelta(minutes=w),
                    end=NOW,
                    every=every,
                )
            )
        assignments = []
        for i in range(ra_per_sub):
            kind = i % 20
            if kind == 0:
                scope = "subscription"
            elif kind == 1:
                scope = "resourceGroup"
            else:
                scope = f"workspace/{workspaces[i % len(workspaces)].name}"
            assignments.append(
                RoleAssignment(
                    id=derived_id("assignment", profile.name, str(s), str(i)),
                    scope=scope,
                    principal=users[i % len(users)] if i % 7 else pipes[i % len(pipes)],
                    role=ROLES[i % len(ROLES)],
                    created_on=start + timedelta(days=i % WINDOW_DAYS, minutes=i),
                    created_by=users[0],
                )
            )
        tenants.append(
            Tenant(
                tenant_id=derived_id("tenant", profile.name),
                subscription_id=sub_id,
                subscription_name=f"{profile.name}-sub-{s}",
                resource_group=f"rg-ml-{s}",
                location="westeurope",
                management_group="mg-bench",
                now=NOW,
                principals=principals,
                workspaces=workspaces,
                models=tuple(models),
                endpoints=tuple(endpoints),
                role_assignments=tuple(assignments),
                recurring=tuple(recurring),
                page_sizes={
                    "models": 100,
                    "model_versions": 100,
                    "endpoints": 100,
                    "deployments": 100,
                    "role_assignments": 100,
                    "deny_assignments": 100,
                    "eligible_assignments": 100,
                    "activity_log": 200,
                },
            )
        )
    return tenants


def scope_workspaces(tenants: Sequence[Tenant]) -> tuple[ScopeWorkspace, ...]:
    return tuple(
        sorted(ScopeWorkspace(t.subscription_id, t.resource_group, w.name) for t in tenants for w in t.workspaces)
    )


def _microseconds(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _IndexedActivityLog(ActivityLog):
    """The simulator's Activity Log, with each filter's result computed once, from a time index.

    The simulator pages with an offset and re-filters all events for every page; at 50,000 events
    per subscription and 250 pages that is the simulator's CPU, competing with the client being
    measured on the same cores. Caching per filter keeps the answers identical. The first page of
    each filter still scanned all 50,000 events (about 0.15 s of CPU each): with 36 filters asked
    for at once when a concurrent run starts, that was ~5 s of the simulator's CPU in the run's
    first seconds, a stall real Resource Manager (modelled by the latency alone) does not have.
    Events are newest first, so a time range is one contiguous run of them, found by bisection;
    ``matches`` then checks each event of that run exactly as before.
    """

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant)
        self._cache: dict[tuple[ActivityFilter, datetime], list[dict[str, Any]]] = {}
        # Ascending, for bisect: the events' times in whole microseconds (exact), negated (the
        # events are newest first).
        self._negated = [-_microseconds(parse_timestamp(e["eventTimestamp"])) for e in self.events]

    def query(self, flt: ActivityFilter, now: datetime) -> list[dict[str, Any]]:
        key = (flt, now)
        found = self._cache.get(key)
        if found is None:
            oldest = max(flt.start, now - RETENTION)
            newest = min(flt.end, now)
            first = bisect.bisect_left(self._negated, -_microseconds(newest))
            last = bisect.bisect_right(self._negated, -_microseconds(oldest))
            found = self._cache[key] = [e for e in self.events[first:last] if flt.matches(e)]
        return found


class _BenchSimulatedAzure(SimulatedAzure):
    @property
    def activity_log(self) -> ActivityLog:
        if self._activity is None:
            self._activity = _IndexedActivityLog(self.tenant)
        return self._activity


_SUB = re.compile(r"/subscriptions/([^/?]+)", re.IGNORECASE)


class MultiSubscriptionAzure(HttpTransport[Any, Any]):
    """Routes each request to the simulator of the subscription in its path."""

    def __init__(
        self,
        tenants: Sequence[Tenant],
        *,
        latency: float = 0.0,
        throttle: Throttle | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if clock is not None:
            extra["clock"] = clock
        if sleep is not None:
            extra["sleep"] = sleep
        self.sims: dict[str, SimulatedAzure] = {
            t.subscription_id.lower(): _BenchSimulatedAzure(t, latency=latency, throttle=throttle, **extra)
            for t in tenants
        }
        self._first = next(iter(self.sims.values()))

    def warm(self) -> None:
        """Build every Activity Log up front, so the benchmark times the client, not the simulator's set-up."""
        for sim in self.sims.values():
            _ = sim.activity_log.events

    def route(self, url: str) -> SimulatedAzure:
        m = _SUB.search(unquote(urlsplit(url).path))
        return self.sims.get(m.group(1).lower(), self._first) if m else self._first

    def send(self, request: Any, **kwargs: Any) -> Any:
        return self.route(str(request.url)).send(request, **kwargs)

    def requests_by_subscription(self) -> Mapping[str, int]:
        return {sub: len(sim.requests) for sub, sim in self.sims.items()}

    def throttled(self) -> int:
        return sum(1 for sim in self.sims.values() for r in sim.requests if r.status == 429)

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> MultiSubscriptionAzure:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def sleep(self, duration: float) -> None:
        self._first.sleep(duration)


# ---------------------------------------------------------------------------------- out of process
#: Not a secret: it only keeps other local processes from talking to the benchmark's simulator.
_AUTHKEY = b"evidence-bench"


@dataclass(frozen=True)
class _WireRequest:
    method: str
    url: str


def _handle(conn: Any, sim: MultiSubscriptionAzure) -> None:
    while True:
        try:
            method, url = conn.recv()
        except (EOFError, OSError):
            return
        response = sim.send(_WireRequest(method, url))
        body = response.read() if hasattr(response, "read") else response.body()
        conn.send((int(response.status_code), {str(k): str(v) for k, v in response.headers.items()}, bytes(body)))


def _serve(control: Any, profile: str, latency: float, throttle: tuple[int, float] | None) -> None:
    import threading
    import time
    from multiprocessing.connection import Listener

    tenants = build_tenants(PROFILES[profile])
    sim = MultiSubscriptionAzure(
        tenants, latency=latency, throttle=Throttle(*throttle) if throttle is not None else None
    )
    sim.warm()
    # multiprocessing's default backlog is 1: with 16 threads connecting at once, Linux completes
    # connections it then never queues for accept(), and both ends wait for each other.
    listener = Listener(("127.0.0.1", 0), authkey=_AUTHKEY, backlog=128)

    def accept() -> None:
        while True:
            conn = listener.accept()
            threading.Thread(target=_handle, args=(conn, sim), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    control.send(listener.address)
    while True:
        try:
            command = control.recv()
        except EOFError:
            return
        if command == "stats":
            control.send(
                {
                    "requests_by_subscription": dict(sim.requests_by_subscription()),
                    "throttled": sim.throttled(),
                    "events": sum(len(s.activity_log.events) for s in sim.sims.values()),
                    "cpu": time.process_time(),  # the simulator's own CPU, all threads
                }
            )
        else:
            return


class RemoteAzure(HttpTransport[Any, Any]):
    """``MultiSubscriptionAzure`` in a child process, reached over local sockets (one per thread).

    In process, the simulator's CPU (filtering 50,000 events per Activity Log query, serialising
    pages) shares the client's GIL and is counted as the client's CPU; a real client's Resource
    Manager runs elsewhere. Latency and the token bucket are applied in the child, per request,
    on as many threads as the client has connections.
    """

    def __init__(self, profile: str, *, latency: float = 0.0, throttle: Throttle | None = None) -> None:
        import multiprocessing
        import threading

        context = multiprocessing.get_context("spawn")
        self._control, child = context.Pipe()
        shape = (throttle.capacity, throttle.refill_per_second) if throttle is not None else None
        self.process = context.Process(target=_serve, args=(child, profile, latency, shape), daemon=True)
        self.process.start()
        self.address = self._control.recv()  # once the tenants are built and warm
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    def _connection(self) -> Any:
        from multiprocessing.connection import Client

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = Client(self.address, authkey=_AUTHKEY)
            with self._lock:
                self._connections.append(conn)
        return conn

    def send(self, request: Any, **kwargs: Any) -> Any:
        from evidence.azure.replay import CannedResponse

        conn = self._connection()
        conn.send((str(request.method), str(request.url)))
        status, headers, body = conn.recv()
        return CannedResponse(request, status, headers, body)

    def stats(self) -> dict[str, Any]:
        self._control.send("stats")
        return dict(self._control.recv())

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        with contextlib.suppress(OSError):
            self._control.send("stop")
        self.process.join(timeout=10)

    def open(self) -> None:
        return None

    def __enter__(self) -> RemoteAzure:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def sleep(self, duration: float) -> None:
        import time

        time.sleep(duration)
