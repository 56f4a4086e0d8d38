"""Collection against a simulated tenant with ARM latency and throttling, compared with its physical limit.

    python benchmarks/bench_collect.py --profile small              # all modes, each in a fresh process
    python benchmarks/bench_collect.py --profile large --sequential estimate
    python benchmarks/bench_collect.py --profile small --mode pool  # one mode, in this process

Modes (each one runs the real collectors and the real SDKs, through EvidenceTap -> ThrottledTransport
-> SimulatedAzure with per-request latency and ARM's read bucket per subscription):

* ``sequential``: ``evidence.collect.runner.run_collection`` with the default collectors, one
  request at a time (the runner as it is today).
* ``pool``: the same collectors split into independent tasks (``collection_tasks`` below: per
  workspace, per subscription, per Activity Log time slice) run by ``evidence.collect.pool``. This
  is the concurrent path the runner is meant to adopt; it runs the pool directly because the
  runner is not concurrent yet.
* ``count``: sequential without latency or throttling: the request count and the client's own
  CPU time, from which ``--sequential estimate`` prices the sequential baseline at
  ``requests x latency + CPU`` instead of running it (about 6 minutes on ``large``).

Figures: wall time, requests (as the simulator counted them), the throttle floor (per
subscription ``max(latency, (requests - 250) / 25)`` seconds: the least time any client needs,
since it may burst 250 and then gets 25 per second, and no request takes less than one round
trip; the run's floor is the largest), ratio to the floor, 429s the service sent and 429s that
reached a gap, peak RSS (``ru_maxrss``) and the RSS the simulator itself holds before collection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tenant_gen import NOW, PROFILES, WINDOW_DAYS, MultiSubscriptionAzure, build_tenants, scope_workspaces

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.limiter import ThrottledTransport
from evidence.azure.simulator import Throttle
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.activity import ActivityLogCollector
from evidence.collect.interface import Collector, CollectSession
from evidence.collect.pool import Task, WorkerPool
from evidence.collect.rbac import RoleAssignmentsCollector
from evidence.collect.runner import default_collectors, run_collection
from evidence.domain import Gap, Scope, Window

BUCKET, REFILL = 250, 25.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def collection_tasks(
    collectors: list[Collector],
    clients: AzureClients,
    scope: Scope,
    window: Window,
    clock: FixedClock,
    *,
    activity_slices: int,
) -> tuple[list[Task[None]], list[CollectSession]]:
    """Split the default collectors into independent tasks, in a fixed order.

    Every task gets its own ``CollectSession`` (so gaps never interleave); the order of the list
    is the order a sequential run would make the same calls in.

    * model versions, endpoints, metrics: one task per workspace;
    * role assignments: one per subscription (its role-definition look-ups are per task);
    * Activity Log: one per subscription and time slice (a 90-day log of 50,000 events is 250
      pages that can only be fetched one after another; slices page in parallel).
    """
    tasks: list[Task[None]] = []
    sessions: list[CollectSession] = []

    def add(collector: Collector, sub_scope: Scope, sub_window: Window, subscription: str) -> None:
        session = CollectSession(
            clients=clients, scope=sub_scope, window=sub_window, clock=clock, collector=collector.name
        )
        sessions.append(session)
        tasks.append(
            Task(
                lambda c=collector, s=session: c.collect(s),  # type: ignore[misc]
                channel=collector.name,
                subscription=subscription,
            )
        )

    by_sub: dict[str, list[Any]] = {}
    for ws in scope.workspaces:
        by_sub.setdefault(ws.subscription_id, []).append(ws)
    for collector in collectors:
        if isinstance(collector, RoleAssignmentsCollector):
            for sub in sorted(by_sub):
                add(collector, replace(scope, workspaces=tuple(by_sub[sub])), window, sub)
        elif isinstance(collector, ActivityLogCollector):
            step = (window.end - window.start) / activity_slices
            for sub in sorted(by_sub):
                for i in range(activity_slices):
                    start = window.start + step * i
                    end = window.end if i == activity_slices - 1 else start + step
                    add(collector, replace(scope, workspaces=tuple(by_sub[sub])), Window(start, end), sub)
        else:
            for ws in scope.workspaces:
                add(collector, replace(scope, workspaces=(ws,)), window, ws.subscription_id)
    return tasks, sessions


def run_mode(profile: str, mode: str, latency: float, workers: int, slices: int) -> dict[str, Any]:
    tenants = build_tenants(PROFILES[profile])
    throttle = Throttle(BUCKET, REFILL) if mode != "count" else None
    sim = MultiSubscriptionAzure(tenants, latency=latency if mode != "count" else 0.0, throttle=throttle)
    sim.warm()
    rss_sim = _rss_mb()
    limiter = ThrottledTransport(sim)
    clock = FixedClock(NOW)
    tap = EvidenceTap(limiter, clock)
    clients = AzureClients(StaticCredential(), tap)
    scope = Scope(workspaces=scope_workspaces(tenants), organisation="bench")
    window = Window(NOW - timedelta(days=WINDOW_DAYS), NOW)
    collectors = default_collectors()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    gaps: list[Gap]
    if mode == "pool":
        tasks, sessions = collection_tasks(collectors, clients, scope, window, clock, activity_slices=slices)
        WorkerPool(workers).run(tasks)
        gaps = [g for s in sessions for g in s.gaps]
    else:
        run = run_collection(clients=clients, tap=tap, scope=scope, window=window, clock=clock, collectors=collectors)
        gaps = list(run.gaps)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    per_sub = sim.requests_by_subscription()
    floor = max(max(latency, (n - BUCKET) / REFILL) for n in per_sub.values()) if latency else 0.0
    stats = limiter.stats()
    return {
        "profile": profile,
        "mode": mode,
        "workers": workers if mode == "pool" else 1,
        "latency": latency,
        "wall": wall,
        "cpu": cpu,
        "requests": sum(per_sub.values()),
        "requests_by_subscription": per_sub,
        "exchanges": len(tap.exchanges()),
        "floor": floor,
        "service_429": sim.throttled(),
        "limiter_waits": stats.waits,
        "limiter_waited_s": stats.waited_seconds,
        "gaps": len(gaps),
        "gaps_429": sum(1 for g in gaps if g.status == 429),
        "rss_sim_mb": rss_sim,
        "peak_rss_mb": _peak_mb(),
        "events": sum(len(s.activity_log.events) for s in sim.sims.values()),
    }


def _child(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--profile",
        args.profile,
        "--mode",
        mode,
        "--latency",
        str(args.latency),
        "--workers",
        str(args.workers),
        "--slices",
        str(args.slices),
        "--json",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def table(results: dict[str, dict[str, Any]], latency: float) -> str:
    pool = results["pool"]
    count = results.get("count")
    seq = results.get("sequential")
    if seq is not None:
        seq_wall, seq_note = seq["wall"], "measured"
    elif count is not None:
        seq_wall = count["requests"] * latency + count["cpu"]
        seq_note = f"estimated: {count['requests']} requests x {latency * 1000:.0f} ms + {count['cpu']:.1f} s CPU"
    else:
        seq_wall, seq_note = float("nan"), "not run"
    lines = [
        f"profile {pool['profile']}: {pool['events']:,} Activity Log events in the simulator, "
        f"latency {latency * 1000:.0f} ms, bucket {BUCKET} / {REFILL:.0f} per s per subscription",
        f"{'figure':<44} value",
        f"{'concurrent wall time (pool, ' + str(pool['workers']) + ' workers)':<44} {pool['wall']:.1f} s "
        f"(client CPU {pool['cpu']:.1f} s)",
        f"{'requests':<44} {pool['requests']:,} ({', '.join(str(n) for n in pool['requests_by_subscription'].values())}"
        " per subscription)",
        f"{'throttle floor':<44} {pool['floor']:.1f} s",
        f"{'ratio to floor':<44} {pool['wall'] / pool['floor']:.2f}x" if pool["floor"] else "",
        f"{'sequential baseline':<44} {seq_wall:.1f} s ({seq_note})",
        f"{'speed-up over sequential':<44} {seq_wall / pool['wall']:.1f}x",
        f"{'429s sent by the service / reaching a gap':<44} {pool['service_429']} / {pool['gaps_429']}",
        f"{'limiter waits':<44} {pool['limiter_waits']} ({pool['limiter_waited_s']:.1f} s summed over threads)",
        f"{'peak RSS (simulator holds before collection)':<44} {pool['peak_rss_mb']:.0f} MB "
        f"({pool['rss_sim_mb']:.0f} MB)",
    ]
    if seq is not None:
        lines.append(
            f"{'sequential: requests / 429s / gaps / peak RSS':<44} {seq['requests']:,} / {seq['service_429']} / "
            f"{seq['gaps']} / {seq['peak_rss_mb']:.0f} MB"
        )
    return "\n".join(line for line in lines if line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--mode", choices=("all", "pool", "sequential", "count"), default="all")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request (default 0.1)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--slices", type=int, default=6, help="Activity Log time slices per subscription")
    parser.add_argument(
        "--sequential",
        choices=("run", "estimate"),
        default="run",
        help="run the sequential baseline, or estimate it from a zero-latency count run",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line (used between processes)")
    args = parser.parse_args(argv)
    if args.mode != "all":
        result = run_mode(args.profile, args.mode, args.latency, args.workers, args.slices)
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0
    results = {"pool": _child(args, "pool")}
    if args.sequential == "run":
        results["sequential"] = _child(args, "sequential")
    else:
        results["count"] = _child(args, "count")
    print(table(results, args.latency))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
