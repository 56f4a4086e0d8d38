"""Collection against a simulated tenant with ARM latency and throttling, compared with its physical limit.

    python benchmarks/bench_collect.py --profile small              # all modes, each in a fresh process
    python benchmarks/bench_collect.py --profile large --sequential estimate
    python benchmarks/bench_collect.py --profile small --mode pool  # one mode, in this process

Every mode runs the product's own collection path: ``run_collection`` (the collectors' parts in
the bounded worker pool) through ``simulated_session`` (EvidenceTap -> ThrottledTransport ->
SimulatedAzure with per-request latency and ARM's read bucket per subscription), every response
streamed to disk by ``RawStore`` as ``build_package`` does, then records normalised by streaming
over the stored raw files.

* ``pool``: ``--workers`` threads (default 16, the CLI's ``--concurrency`` default).
* ``sequential``: the same parts with one worker, one request at a time.
* ``count``: sequential without latency or throttling: the request count and the client's own
  CPU time, from which ``--sequential estimate`` prices the sequential baseline at
  ``requests x latency + CPU`` instead of running it (about 6 minutes on ``large``).

Figures: wall time, requests (as the simulator counted them), the throttle floor (per
subscription ``max(latency, (requests - 250) / 25)`` seconds: the least time any client needs,
since it may burst 250 and then gets 25 per second, and no request takes less than one round
trip; the run's floor is the largest), ratio to the floor, 429s the service sent and 429s that
reached a gap, peak RSS (``ru_maxrss``) after collection and after normalising, and the time to
normalise the stored raw files into records.

The simulator runs in a child process by default (``RemoteAzure``): in process, its CPU
(filtering and serialising 150,000 events) would share the client's GIL and count as the
client's CPU, and its tenant would count in the client's RSS. ``--in-process`` keeps it in.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tenant_gen import NOW, PROFILES, WINDOW_DAYS, MultiSubscriptionAzure, RemoteAzure, build_tenants, scope_workspaces

from evidence.azure.session import limiter_of, simulated_session
from evidence.azure.simulator import Throttle
from evidence.clock import FixedClock
from evidence.collect.runner import default_collectors, run_collection
from evidence.collect.store import RawStore, load_raw, normalise_all, write_records
from evidence.domain import Scope, Window

BUCKET, REFILL = 250, 25.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(profile: str, mode: str, latency: float, workers: int, in_process: bool = False) -> dict[str, Any]:
    tenants = build_tenants(PROFILES[profile])
    throttle = Throttle(BUCKET, REFILL) if mode != "count" else None
    wire_latency = latency if mode != "count" else 0.0
    sim: Any
    if in_process:
        sim = MultiSubscriptionAzure(tenants, latency=wire_latency, throttle=throttle)
        sim.warm()
    else:
        sim = RemoteAzure(profile, latency=wire_latency, throttle=throttle)
    # The child's CPU once its tenants are built: what it spends after this is serving requests,
    # on the same (shared) cores as the client.
    sim_cpu_setup = float("nan") if in_process else float(sim.stats()["cpu"])
    rss_sim = _rss_mb()
    clock = FixedClock(NOW)
    # The product's own chain: EvidenceTap -> ThrottledTransport -> (simulated) wire.
    session = simulated_session(sim, clock=clock)
    limiter = limiter_of(session)
    assert limiter is not None
    scope = Scope(workspaces=scope_workspaces(tenants), organisation="bench")
    window = Window(NOW - timedelta(days=WINDOW_DAYS), NOW)
    collectors = default_collectors()
    n_workers = workers if mode == "pool" else 1
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        root = Path(tmp)
        store = RawStore(root)
        load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # As build_package does: every response streams to disk as it arrives.
        with session.tap.streaming(store):
            run = run_collection(
                clients=session.clients,
                tap=session.tap,
                scope=scope,
                window=window,
                clock=clock,
                collectors=collectors,
                workers=n_workers,
            )
        provenance, _ = store.finish()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        peak_collect = _peak_mb()
        # Records, streamed from the stored raw files (one file in memory at a time).
        cpu1, wall1 = time.process_time(), time.perf_counter()
        records = normalise_all(collectors, load_raw(root, provenance))
        write_records(records, root)
        norm_wall, norm_cpu = time.perf_counter() - wall1, time.process_time() - cpu1
        raw_bytes = sum(f.stat().st_size for f in (root / "data" / "raw").rglob("*") if f.is_file())
    gaps = list(run.gaps)
    sim_cpu = float("nan")  # in process: part of the client's CPU
    if in_process:
        per_sub, service_429 = dict(sim.requests_by_subscription()), sim.throttled()
        events = sum(len(s.activity_log.events) for s in sim.sims.values())
    else:
        remote = sim.stats()
        per_sub, service_429, events = remote["requests_by_subscription"], remote["throttled"], remote["events"]
        sim_cpu = remote["cpu"]
        sim.close()
    floor = max(max(latency, (n - BUCKET) / REFILL) for n in per_sub.values()) if latency else 0.0
    stats = limiter.stats()
    return {
        "profile": profile,
        "mode": mode,
        "workers": n_workers,
        "tasks": run.tasks,
        "latency": latency,
        "wall": wall,
        "cpu": cpu,
        "requests": sum(per_sub.values()),
        "requests_by_subscription": per_sub,
        "exchanges": len(provenance),
        "floor": floor,
        "service_429": service_429,
        "limiter_waits": stats.waits,
        "limiter_waited_s": stats.waited_seconds,
        "gaps": len(gaps),
        "gaps_429": sum(1 for g in gaps if g.status == 429),
        "rss_sim_mb": rss_sim,
        "peak_rss_collect_mb": peak_collect,
        "peak_rss_mb": _peak_mb(),
        "normalise_wall": norm_wall,
        "normalise_cpu": norm_cpu,
        "raw_mb": raw_bytes / 1e6,
        "records": {k: len(v) for k, v in records.items()},
        "events": events,
        "simulator": "in process" if in_process else "child process",
        "simulator_cpu": sim_cpu,
        "simulator_serving_cpu": sim_cpu - sim_cpu_setup,
        "load_start": load_start,
        "load_end": load_end,
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
        *(["--in-process"] if args.in_process else []),
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
        f"(client CPU {pool['cpu']:.1f} s; simulator CPU {pool['simulator_cpu']:.1f} s incl. set-up, "
        f"{pool['simulator_serving_cpu']:.1f} s serving)",
        f"{'1-minute load average: start / end of run':<44} {pool['load_start']:.2f} / {pool['load_end']:.2f}",
        f"{'requests':<44} {pool['requests']:,} ({', '.join(str(n) for n in pool['requests_by_subscription'].values())}"
        " per subscription)",
        f"{'throttle floor':<44} {pool['floor']:.1f} s",
        f"{'ratio to floor':<44} {pool['wall'] / pool['floor']:.2f}x" if pool["floor"] else "",
        f"{'sequential baseline':<44} {seq_wall:.1f} s ({seq_note})",
        f"{'speed-up over sequential':<44} {seq_wall / pool['wall']:.1f}x",
        f"{'429s sent by the service / reaching a gap':<44} {pool['service_429']} / {pool['gaps_429']}",
        f"{'limiter waits':<44} {pool['limiter_waits']} ({pool['limiter_waited_s']:.1f} s summed over threads)",
        f"{'peak RSS: collection / with records':<44} {pool['peak_rss_collect_mb']:.0f} MB / "
        f"{pool['peak_rss_mb']:.0f} MB (simulator {pool['simulator']}; {pool['rss_sim_mb']:.0f} MB before "
        "collecting)",
        f"{'normalise stored raw into records':<44} {pool['normalise_wall']:.1f} s "
        f"(CPU {pool['normalise_cpu']:.1f} s, {pool['raw_mb']:.0f} MB raw, "
        f"{pool['records'].get('activity_events', 0):,} activity events kept)",
        f"{'parts (pool tasks)':<44} {pool['tasks']}",
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
    parser.add_argument(
        "--sequential",
        choices=("run", "estimate"),
        default="run",
        help="run the sequential baseline, or estimate it from a zero-latency count run",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the simulator in the client's process (its CPU then counts as the client's, under one GIL)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line (used between processes)")
    args = parser.parse_args(argv)
    if args.mode != "all":
        result = run_mode(args.profile, args.mode, args.latency, args.workers, args.in_process)
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
