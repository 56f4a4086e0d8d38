"""Every benchmark in one command: collection, a whole package, rendering and bundling/verification.

    python benchmarks/run.py                       # small profile (the CI smoke test)
    python benchmarks/run.py --profile large --sequential estimate

Each script runs in its own process (so each peak RSS is its own) and prints its own table; this
script prints the machine first, so a pasted result always says where it ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}{load}"


def _run(title: str, args: list[str]) -> int:
    print(f"\n== {title}", flush=True)
    return subprocess.run([sys.executable, *args], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("small", "large"), default="small")
    parser.add_argument("--sequential", choices=("run", "estimate"), default="run")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--skip-others", action="store_true", help="only the collection benchmark")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    failures = _run(
        f"collection ({args.profile})",
        [
            str(HERE / "bench_collect.py"),
            "--profile",
            args.profile,
            "--sequential",
            args.sequential,
            "--latency",
            str(args.latency),
        ],
    )
    if not args.skip_others:
        # bench_package.py: one whole `evidence package` (collect -> ... -> zip) in a fresh process,
        # for its wall time and peak RSS end to end.
        package = ["--profile", args.profile, "--latency", str(args.latency)]
        for name, extra in (("bench_package.py", package), ("bench_render.py", []), ("bench_verify.py", [])):
            script = HERE / name
            if script.exists():
                failures += _run(
                    name.removesuffix(".py").replace("bench_", "") + " (" + name + ")", [str(script), *extra]
                )
            else:
                print(f"\n== {name}: not present, skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
