"""Benchmark (not a test): bagging, zipping and verifying a large package.

    python benchmarks/bench_verify.py [--size-mb 256] [--files 64] [--kind text|random]

Builds a payload of ``--files`` files totalling ``--size-mb`` MB in a temporary directory, then
times, single-threaded and with a warm page cache:

* raw SHA-256 of the payload (``hashlib.file_digest``): the yardstick (issue #6: verify should reach
  at least 80 % of it);
* ``write_bag`` (hashing every file, writing the manifests);
* ``write_zip`` at the chosen DEFLATE level, and Info-ZIP's ``zip -r -X -6`` on the same bag;
* ``verify_package`` (archive safety, inflate + SHA-256 of every member, tag manifest).

Raw SHA-256 and ``verify_package`` are run ``--repeat`` times and the best is kept; CPU seconds
are printed beside wall time and the load average before and after, because the machine is
shared (a saturated machine inflates wall time, and hides what two threads gain).

MB = 10**6 bytes, of payload.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from evidence.bundle.archive import DEFLATE_LEVEL, write_zip
from evidence.bundle.bagit import write_bag
from evidence.verify import verify_package
from evidence.verify.members import INFLATER, default_workers


def _text_block(rng: random.Random, size: int) -> bytes:
    lines: list[bytes] = []
    total = 0
    while total < size:
        line = json.dumps(
            {
                "workspace_id": f"/subscriptions/0000/resourceGroups/rg/providers/"
                f"Microsoft.MachineLearningServices/workspaces/ws{rng.randrange(3)}",
                "model_name": f"model-{rng.randrange(50)}",
                "version": str(rng.randrange(10_000)),
                "created_by": f"{rng.getrandbits(128):032x}",
                "request_id": f"{rng.getrandbits(128):032x}",
                "tags": {"owner": rng.choice(["alice", "bob", "carol"]), "approved": rng.choice(["yes", "no"])},
            },
            sort_keys=True,
        ).encode()
        lines.append(line + b"\n")
        total += len(line) + 1
    return b"".join(lines)[:size]


def make_payload(bag: Path, size_mb: int, files: int, kind: str) -> int:
    rng = random.Random(1)  # deterministic payload
    per_file = size_mb * 10**6 // files
    block = _text_block(rng, 4 << 20) if kind == "text" else rng.randbytes(4 << 20)
    total = 0
    for i in range(files):
        path = bag / "data" / f"part-{i // 16:02d}" / f"records-{i:04d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            written = 0
            while written < per_file:
                chunk = block[: per_file - written]
                # Vary each chunk a little so files differ.
                f.write(f"{i:08d}{written:012d}".encode() + chunk[20:])
                written += len(chunk)
        total += per_file
    return total


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process (all threads), result."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float, object]:
    runs = [timed(fn) for _ in range(max(1, repeat))]
    return min(runs, key=lambda run: run[0])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def raw_sha256(bag: Path) -> None:
    for path in sorted((bag / "data").rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                hashlib.file_digest(f, "sha256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--kind", choices=["text", "random"], default="text")
    parser.add_argument("--repeat", type=int, default=3, help="runs of raw SHA-256 and verify (best kept)")
    args = parser.parse_args()
    load_before = load()

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        bag = work / "bag"
        total = make_payload(bag, args.size_mb, args.files, args.kind)
        raw_sha256(bag)  # warm the page cache
        mb = total / 1e6
        rows: list[tuple[str, float, float, str]] = []

        t, cpu, _ = best_of(args.repeat, lambda: raw_sha256(bag))
        raw = t
        rows.append(("raw hashlib SHA-256 (1 thread)", t, cpu, ""))
        t, cpu, _ = timed(lambda: write_bag(bag, bag_info={"Bagging-Date": "2025-01-01"}))
        rows.append(("write_bag (hash + manifests)", t, cpu, ""))
        out = work / "package.zip"
        when = datetime(2025, 1, 1, tzinfo=UTC)
        t, cpu, _ = timed(lambda: write_zip(bag, out, root="pkg", date_time=when))
        rows.append((f"write_zip DEFLATE-{DEFLATE_LEVEL}", t, cpu, f"zip {out.stat().st_size / 1e6:.0f} MB"))
        if shutil.which("zip"):
            cli_out = work / "cli.zip"
            env = {**os.environ, "TZ": "UTC"}
            command = ["zip", "-q", "-r", "-X", f"-{DEFLATE_LEVEL}", str(cli_out), "."]
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            t, _, _ = timed(lambda: subprocess.run(command, cwd=bag, check=True, env=env))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
            rows.append((f"zip CLI -r -X -{DEFLATE_LEVEL}", t, cpu, f"zip {cli_out.stat().st_size / 1e6:.0f} MB"))
        else:
            rows.append(("zip CLI", float("nan"), float("nan"), "not installed (apt-get install -y zip)"))
        t, cpu, report = best_of(args.repeat, lambda: verify_package(out))
        assert getattr(report, "passed", False), "benchmark package did not verify"
        rows.append((f"verify_package ({INFLATER} inflate)", t, cpu, f"{raw / t:.0%} of raw SHA-256"))

        print(f"payload: {mb:.0f} MB in {args.files} files ({args.kind}); {default_workers()} workers")
        print(f"load average before: {load_before}; after: {load()}")
        print(f"{'operation':<36} {'seconds':>8} {'CPU s':>7} {'MB/s':>8}  note")
        for name, seconds, cpu_s, note in rows:
            rate = mb / seconds if seconds == seconds and seconds > 0 else float("nan")
            print(f"{name:<36} {seconds:>8.2f} {cpu_s:>7.2f} {rate:>8.0f}  {note}")


if __name__ == "__main__":
    main()
