"""``evidence collect``: the collect stage on its own, written to a folder.

The folder holds what the collect half of a package holds, with the same layout, so it can be
inspected, diffed between runs, or handed to someone who builds the package later::

    <out>/evidence-<org>-collection-<start>-<end>/
        data/raw/<collector>/<nnnnn>.json   each response body as received (secrets redacted)
        data/records/<kind>.jsonl|csv       records normalised from those raw files
        data/collection.json                tool version, scope, window, every request, gaps, redactions

No checks, no report, no signature: nothing here vouches for the folder; only a package does.

``collect_into`` is the collect step of ``pipeline.build_package`` (raw files and
``collection.json``); ``collect_to_folder`` adds the records and the atomic publish: everything is
written under a temporary folder next to the target and renamed into place at the end, so a crash
never leaves half a collection where a finished one should be.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evidence import __version__
from evidence.collect.interface import Collector
from evidence.collect.pool import DEFAULT_WORKERS
from evidence.collect.runner import run_collection
from evidence.collect.store import (
    COLLECTION_FILE,
    RawStore,
    load_raw,
    normalise_all,
    pretty_json,
    write_records,
)
from evidence.domain import CollectionSummary, Gap, Scope, Window
from evidence.errors import PackageError

if TYPE_CHECKING:
    from evidence.azure.clients import AzureClients
    from evidence.azure.tap import EvidenceTap
    from evidence.clock import Clock

Observer = Callable[[str], None]


@dataclass(frozen=True)
class CollectRequest:
    scope: Scope
    window: Window
    out_dir: Path
    mode: str = "live"  # live | replay | record: recorded in collection.json


@dataclass(frozen=True)
class CollectResult:
    folder: Path
    gaps: tuple[Gap, ...]
    records: dict[str, int]  # record kind -> count
    requests: int


def collection_name(scope: Scope, window: Window) -> str:
    """The folder name: like a package's root, with ``collection`` where the package kind goes."""
    org = re.sub(r"[^a-z0-9]+", "-", scope.organisation.lower()).strip("-") or "azureml"
    start = window.start.strftime("%Y%m%dT%H%MZ").replace("T0000Z", "")
    end = window.end.strftime("%Y%m%dT%H%MZ").replace("T0000Z", "")
    return f"evidence-{org}-collection-{start}-{end}"


def collect_into(
    bag: Path,
    *,
    clients: AzureClients,
    tap: EvidenceTap,
    scope: Scope,
    window: Window,
    clock: Clock,
    collectors: Sequence[Collector],
    mode: str = "live",
    observer: Observer | None = None,
    workers: int = DEFAULT_WORKERS,
) -> CollectionSummary:
    """Run the collectors and write ``data/raw/**`` and ``data/collection.json`` under ``bag``."""
    # Concurrent, and each response goes to disk as it arrives (names fixed in sequential-run
    # order at the end): the folder does not depend on ``workers`` (issue 7).
    store = RawStore(bag)
    with tap.streaming(store):
        run = run_collection(
            clients=clients,
            tap=tap,
            scope=scope,
            window=window,
            clock=clock,
            collectors=collectors,
            observer=observer,
            workers=workers,
        )
    provenance, redactions = store.finish()
    summary = CollectionSummary(
        tool_version=__version__,
        scope=scope,
        window=window,
        started_at=run.started_at,
        finished_at=run.finished_at,
        requests=tuple(provenance),
        gaps=run.gaps,
        redactions=tuple(redactions),
        mode=mode,
    )
    target = bag / COLLECTION_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pretty_json(summary.to_json()), encoding="utf-8", newline="\n")
    return summary


def collect_to_folder(
    request: CollectRequest,
    *,
    clients: AzureClients,
    tap: EvidenceTap,
    clock: Clock,
    collectors: Sequence[Collector],
    observer: Observer | None = None,
) -> CollectResult:
    say = observer or (lambda _message: None)
    name = collection_name(request.scope, request.window)
    try:
        request.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PackageError(f"cannot create output folder {request.out_dir}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=request.out_dir))
    try:
        folder = staging / name
        folder.mkdir()
        summary = collect_into(
            folder,
            clients=clients,
            tap=tap,
            scope=request.scope,
            window=request.window,
            clock=clock,
            collectors=collectors,
            mode=request.mode,
            observer=say,
        )
        # Records from the raw files as stored, never from memory (as in a package).
        records = normalise_all(collectors, load_raw(folder, summary.requests))
        write_records(records, folder)
        say(f"collected {sum(len(r) for r in records.values())} records from {len(summary.requests)} requests")
        target = request.out_dir / name
        _replace_folder(folder, target, staging)
        return CollectResult(
            folder=target,
            gaps=summary.gaps,
            records={k: len(v) for k, v in sorted(records.items())},
            requests=len(summary.requests),
        )
    except OSError as exc:
        raise PackageError(f"could not write the collection under {request.out_dir}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(new: Path, target: Path, staging: Path) -> None:
    """Put ``new`` at ``target`` by rename; an earlier collection there is moved aside first.

    A folder cannot be renamed over a non-empty one, so the old one is first renamed into the
    staging folder (deleted with it afterwards). Both renames stay on one file system, so each is
    atomic; a reader sees the old collection or the new one, never a mix of the two.
    """
    if target.exists():
        os.replace(target, staging / "previous")
    os.replace(new, target)
