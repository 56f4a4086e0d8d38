"""Benchmark (not a test): bagging, zipping and verifying a large package.

    python benchmarks/bench_verify.py [--size-mb 256] [--files 64] [--kind text|random]
    python benchmarks/bench_verify.py --package PACKAGE.zip [--trust CERT]   # a real package

A synthetic payload shows the hashing path alone; ``--package`` measures ``verify_package`` on a
package made by ``evidence package`` (e.g. ``bench_package.py --profile large --keep DIR``),
with its real mix of members (thousands of small raw pages beside a few large record files) and
every check it runs (signature, PAdES), against raw SHA-256 of the same members' bytes
(extracted to a temporary directory first).

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
import zipfile
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


def raw_sha256(bag: Path, folder: str = "data") -> None:
    for path in sorted((bag / folder).rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                hashlib.file_digest(f, "sha256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--kind", choices=["text", "random"], default="text")
    parser.add_argument("--repeat", type=int, default=3, help="runs of raw SHA-256 and verify (best kept)")
    parser.add_argument("--package", type=Path, help="verify this package zip instead of a synthetic one")
    parser.add_argument("--trust", type=Path, action="append", default=[], help="certificate to trust (--package)")
    args = parser.parse_args()
    if args.package is not None:
        verify_existing(args.package, args.trust, args.repeat)
        return
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


def verify_existing(package: Path, trust: list[Path], repeat: int) -> None:
    """``verify_package`` on a real package against raw SHA-256 of its members' bytes."""
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        extracted = Path(tmp) / "bag"
        with zipfile.ZipFile(package) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            for info in members:  # archive safety is verify's job; this is our own benchmark input
                zf.extract(info, extracted)
        total = sum(i.file_size for i in members)
        largest = max(members, key=lambda i: i.file_size)
        raw_sha256(extracted, ".")  # warm the page cache
        t_raw, cpu_raw, _ = best_of(repeat, lambda: raw_sha256(extracted, "."))
    verify_package(package, trust=trust)  # warm the package's pages and the imports (pyHanko, cryptography)
    t, cpu, report = best_of(repeat, lambda: verify_package(package, trust=trust))
    verdict = "passed" if getattr(report, "passed", False) else "DID NOT PASS (trust the signer with --trust)"
    mb = total / 1e6
    print(
        f"package: {package.name}, {package.stat().st_size / 1e6:.1f} MB zip, {mb:.0f} MB in {len(members)} members "
        f"(largest {largest.file_size / 1e6:.0f} MB); {default_workers()} workers; verify {verdict}"
    )
    print(f"load average before: {load_before}; after: {load()}")
    print(f"{'operation':<36} {'seconds':>8} {'CPU s':>7} {'MB/s':>8}  note")
    print(f"{'raw hashlib SHA-256 (1 thread)':<36} {t_raw:>8.2f} {cpu_raw:>7.2f} {mb / t_raw:>8.0f}  yardstick")
    note = f"{t_raw / t:.0%} of raw SHA-256 (every check, signature and PAdES included)"
    print(f"{f'verify_package ({INFLATER} inflate)':<36} {t:>8.2f} {cpu:>7.2f} {mb / t:>8.0f}  {note}")


if __name__ == "__main__":
    main()
