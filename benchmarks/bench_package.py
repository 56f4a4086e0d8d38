"""One whole ``evidence package`` in one fresh process, against the simulated tenant: wall, CPU, peak RSS.

    python benchmarks/bench_package.py --profile large            # 100 ms latency and ARM's bucket
    python benchmarks/bench_package.py --profile large --latency 0 --no-throttle   # memory only, faster

``build_package`` (evidence/pipeline.py) end to end, as the CLI runs it: collect (``run_collection``
through ``simulated_session``, raw responses streamed to disk) -> derive (records, serving
timeline, checks, findings, the report's input) -> render HTML and PDF -> sign the PDF -> bag ->
sign the tag manifest -> zip. The demo signer stands in for a real key (same algorithm and code
path; only the key's origin differs).

The simulated Resource Manager runs in a child process (``RemoteAzure``, as in
``bench_collect.py``), so the peak RSS (``ru_maxrss``) is the package builder's alone. The peak is
also sampled when the pipeline announces each phase (its observer messages), which says which
phase set it. Issue 7's target: under 600 MB on ``large``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tenant_gen import NOW, PROFILES, WINDOW_DAYS, RemoteAzure, build_tenants, scope_workspaces

from evidence.azure.session import simulated_session
from evidence.azure.simulator import Throttle
from evidence.clock import FixedClock
from evidence.domain import Scope, Window

BUCKET, REFILL = 250, 25.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_once(profile: str, latency: float, throttled: bool, workers: int, keep: Path | None = None) -> dict[str, Any]:
    from evidence.check.runner import default_controls
    from evidence.collect.runner import default_collectors
    from evidence.pipeline import PackageRequest, build_package
    from evidence.sign.demo import demo_signer

    tenants = build_tenants(PROFILES[profile])
    scope = Scope(workspaces=scope_workspaces(tenants), organisation="bench")
    del tenants  # the child process builds its own; only the scope is needed here
    sim = RemoteAzure(profile, latency=latency, throttle=Throttle(BUCKET, REFILL) if throttled else None)
    clock = FixedClock(NOW)
    session = simulated_session(sim, clock=clock)
    window = Window(NOW - timedelta(days=WINDOW_DAYS), NOW)
    start_peak = _peak_mb()
    phases: list[tuple[str, float, float, float]] = []  # (message, seconds since start, peak so far, RSS now)
    wall0, cpu0 = time.perf_counter(), time.process_time()

    def observe(message: str) -> None:
        # Only the pipeline's own phase lines (not per-part progress): the peak so far at each.
        if message.startswith(("derived", "rendering", "signing", "writing")):
            phases.append((message.split(" from ")[0][:60], time.perf_counter() - wall0, _peak_mb(), _rss_mb()))

    with tempfile.TemporaryDirectory(prefix="bench-package-") as tmp:
        result = build_package(
            PackageRequest(scope=scope, window=window, out_dir=Path(tmp), kind="audit", concurrency=workers),
            clients=session.clients,
            tap=session.tap,
            clock=clock,
            collectors=default_collectors(),
            controls=default_controls(),
            signer=demo_signer(),
            observer=observe,
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        zip_mb = result.zip_path.stat().st_size / 1e6
        pdf_mb = result.pdf_path.stat().st_size / 1e6
        if keep is not None:  # after the figures above: copying is not part of the run
            keep.mkdir(parents=True, exist_ok=True)
            for made in Path(tmp).iterdir():
                shutil.copy2(made, keep / made.name)
    remote = sim.stats()
    sim.close()
    return {
        "profile": profile,
        "latency": latency,
        "throttled": throttled,
        "workers": workers,
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mb": _peak_mb(),
        "peak_rss_before_mb": start_peak,
        "phases": phases,
        "records": result.records,
        "controls": len(result.controls),
        "gaps": len(result.gaps),
        "zip_mb": zip_mb,
        "pdf_mb": pdf_mb,
        "zip_sha256": result.zip_sha256,
        "package_id": result.package_id,
        "requests": sum(remote["requests_by_subscription"].values()),
        "events": remote["events"],
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"profile {r['profile']}: {r['events']:,} Activity Log events in the simulator, latency "
        f"{r['latency'] * 1000:.0f} ms, {'ARM bucket' if r['throttled'] else 'no throttling'}, "
        f"{r['workers']} workers",
        f"{'figure':<44} value",
        f"{'build_package wall time':<44} {r['wall']:.1f} s (CPU {r['cpu']:.1f} s)",
        f"{'peak RSS (ru_maxrss), whole process':<44} {r['peak_rss_mb']:.0f} MB "
        f"({r['peak_rss_before_mb']:.0f} MB before build_package)",
    ]
    for message, at, peak, now in r["phases"]:
        label = "  peak so far at " + repr(message[:26])
        lines.append(f"{label:<44} {peak:.0f} MB (t = {at:.1f} s; RSS then {now:.0f} MB)")
    lines += [
        f"{'requests / gaps / controls':<44} {r['requests']:,} / {r['gaps']} / {r['controls']}",
        f"{'records':<44} {sum(r['records'].values()):,} ({r['records'].get('activity_events', 0):,} activity events)",
        f"{'zip / PDF':<44} {r['zip_mb']:.1f} MB / {r['pdf_mb']:.1f} MB",
        f"{'package ID / zip sha256':<44} {r['package_id'][:16]} / {r['zip_sha256'][:16]}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request (default 0.1)")
    parser.add_argument("--no-throttle", action="store_true", help="no token bucket (memory runs)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON line (used between processes)")
    parser.add_argument("--here", action="store_true", help="run in this process (default: a fresh child)")
    parser.add_argument("--keep", type=Path, help="copy the package (zip, certificate) into this folder")
    args = parser.parse_args(argv)
    if args.here:
        result = run_once(args.profile, args.latency, not args.no_throttle, args.workers, args.keep)
        print(json.dumps(result) if args.json else table(result))
        return 0
    # A fresh process, so ru_maxrss is this package's alone (not the parent's imports or earlier runs).
    cmd = [
        sys.executable,
        __file__,
        "--profile",
        args.profile,
        "--latency",
        str(args.latency),
        "--workers",
        str(args.workers),
        *(["--no-throttle"] if args.no_throttle else []),
        *(["--keep", str(args.keep)] if args.keep else []),
        "--here",
        "--json",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
