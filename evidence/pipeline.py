"""The whole flow in one place: collect, check, render, bundle and sign, into one zip.

``build_package`` takes its collaborators (clients, tap, clock, signer, collectors, controls)
instead of building them, so the CLI, the demo and the tests all run the same code with different
parts plugged in. Everything is written under a temporary folder next to the output and renamed
into place at the end: a crash never leaves a half-written package where a finished one should be.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence import __version__
from evidence.check.interface import Control
from evidence.check.runner import ControlResult
from evidence.clock import Clock
from evidence.collect.interface import Collector
from evidence.collect.output import collect_into
from evidence.collect.pool import DEFAULT_WORKERS
from evidence.config import PolicyConfig
from evidence.derive import (
    DECISIONS_TEMPLATE,
    FINDINGS_JSON,
    Attachments,
    Request,
    derive,
    write_derived,
    write_inputs,
)
from evidence.domain import Gap, Scope, Window
from evidence.errors import PackageError

if TYPE_CHECKING:
    from evidence.azure.clients import AzureClients
    from evidence.azure.tap import EvidenceTap
    from evidence.sign.interface import Signer

Observer = Callable[[str], None]

FINDINGS_FILE = FINDINGS_JSON
REPORT_HTML = "data/report/report.html"
REPORT_PDF = "data/report/report.pdf"
VERIFY_FILE = "VERIFY.txt"


@dataclass(frozen=True)
class PackageRequest:
    scope: Scope
    window: Window
    out_dir: Path
    kind: str = "audit"
    mode: str = "live"  # live | replay | record: recorded in collection.json
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    page_size: str = "A4"
    release_model: str | None = None
    release_version: str | None = None
    #: ``--kind release``: "registration", "since" or "window" (evidence.derive.RELEASE_WINDOW_STARTS).
    release_window_start: str | None = None
    attachments: Attachments = field(default_factory=Attachments)  # waivers, decisions, previous review
    #: Collection threads (``--concurrency``). Not recorded: the package does not depend on it.
    concurrency: int = DEFAULT_WORKERS


@dataclass(frozen=True)
class PackageResult:
    root: str
    zip_path: Path
    zip_sha256: str
    html_path: Path
    pdf_path: Path
    package_id: str
    gaps: tuple[Gap, ...]
    controls: tuple[ControlResult, ...]
    records: dict[str, int]  # record kind -> count
    signer_fingerprint: str | None
    decisions_template: Path | None = None  # access review: the reviewer sheet, beside the zip
    pending_removals: tuple[str, ...] = ()  # access review with --decisions: "remove" still assigned


def package_root_name(request: PackageRequest) -> str:
    org = re.sub(r"[^a-z0-9]+", "-", request.scope.organisation.lower()).strip("-") or "azureml"
    start = request.window.start.strftime("%Y%m%dT%H%MZ").replace("T0000Z", "")
    end = request.window.end.strftime("%Y%m%dT%H%MZ").replace("T0000Z", "")
    return f"evidence-{org}-{request.kind}-{start}-{end}"


def build_package(
    request: PackageRequest,
    *,
    clients: AzureClients,
    tap: EvidenceTap,
    clock: Clock,
    collectors: Sequence[Collector],
    controls: Sequence[Control],
    signer: Signer | None = None,
    observer: Observer | None = None,
) -> PackageResult:
    say = observer or (lambda _message: None)
    out_dir = request.out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PackageError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    root = package_root_name(request)
    staging = Path(tempfile.mkdtemp(prefix=f".{root}.", suffix=".partial", dir=out_dir))
    try:
        bag = staging / root
        bag.mkdir()
        result = _build_into(request, bag, root, clients, tap, clock, collectors, controls, signer, say)
        zip_path = out_dir / f"{root}.zip"
        say(f"writing {zip_path}")
        from evidence.bundle.archive import write_zip

        zip_sha = write_zip(bag, zip_path, root=root, date_time=clock.now())
        html_path = _publish(bag / REPORT_HTML, out_dir / f"{root}.html")
        pdf_path = _publish(bag / REPORT_PDF, out_dir / f"{root}.pdf")
        template = bag / DECISIONS_TEMPLATE
        sheet = _publish(template, out_dir / f"{root}.decisions.csv") if template.is_file() else None
        return PackageResult(
            root=root,
            zip_path=zip_path,
            zip_sha256=zip_sha,
            html_path=html_path,
            pdf_path=pdf_path,
            decisions_template=sheet,
            **result,
        )
    except OSError as exc:
        raise PackageError(f"could not write the package under {out_dir}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(source: Path, target: Path) -> Path:
    """Copy a file out of the bag for convenience, atomically (temp name, then rename)."""
    temp = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, temp)
    os.replace(temp, target)
    return target


def _build_into(
    request: PackageRequest,
    bag: Path,
    root: str,
    clients: AzureClients,
    tap: EvidenceTap,
    clock: Clock,
    collectors: Sequence[Collector],
    controls: Sequence[Control],
    signer: Signer | None,
    say: Observer,
) -> dict[str, Any]:
    # 1. collect: raw responses as received (redacted), and what was asked for; the same step
    # `evidence collect` runs (collect.output.collect_into): each response is written to disk as it
    # arrives and named in sequential-run order at the end, so memory does not grow with the log
    # and the bytes do not depend on --concurrency.
    summary = collect_into(
        bag,
        clients=clients,
        tap=tap,
        scope=request.scope,
        window=request.window,
        clock=clock,
        collectors=collectors,
        mode=request.mode,
        observer=say,
        workers=request.concurrency,
    )
    _release_free_memory()
    write_inputs(bag, _recorded_request(request, signer))

    # 2. derive and check: records, serving timeline, findings and the report's input, from the
    # files just written (never from memory), by the function `evidence verify --rebuild` reruns.
    # write_to=bag: the record files go straight into the bag, and the report reads its rows back
    # from them, so the records are not held in memory while the report renders (issue 7).
    derivation = derive(bag, collectors=collectors, controls=controls, write_to=bag)
    write_derived(bag, derivation)
    say(f"derived {sum(len(r) for r in derivation.records.values())} records from {len(summary.requests)} responses")
    _release_free_memory()  # the rows the checks held, before WeasyPrint builds its layout

    # 3. render: the report names the evidence by digest, which derive computed.
    package_id = derivation.package_id
    report = derivation.report
    from evidence.render.html import render_html
    from evidence.render.pdf import render_pdf

    say("rendering report")
    _write_text(bag / REPORT_HTML, render_html(report))
    pdf = render_pdf(report, page_size=request.page_size)
    if signer is not None:
        from evidence.sign.pades import sign_pdf

        pdf = sign_pdf(pdf, signer, signed_at=clock.now(), reason=f"Evidence package {package_id[:16]}")
    (bag / REPORT_PDF).write_bytes(pdf)

    # 4. bundle and sign
    if signer is not None:
        from evidence.sign.package_signature import verify_instructions

        _write_text(bag / VERIFY_FILE, verify_instructions(root, signer.key_id(), algorithm=signer.algorithm))
    from evidence.bundle.bagit import write_bag

    write_bag(
        bag,
        bag_info={
            "Bagging-Date": summary.finished_at[:10],
            "Bag-Software-Agent": f"evidence {__version__}",
            "External-Identifier": root,
            "Package-Id": package_id,
            "Source-Organization": request.scope.organisation or "unknown",
            "Evidence-Kind": request.kind,
            "Evidence-Window": str(request.window),
        },
    )
    if signer is not None:
        from evidence.sign.package_signature import sign_tag_manifest

        say("signing")
        signed = sign_tag_manifest((bag / "tagmanifest-sha256.txt").read_bytes(), signer, signed_at=clock.now())
        for rel, data in signed.items():
            target = bag / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return {
        "package_id": package_id,
        "gaps": derivation.gaps,
        "controls": derivation.results,
        "records": {k: len(v) for k, v in sorted(derivation.records.items())},
        "signer_fingerprint": signer.key_id() if signer is not None else None,
        "pending_removals": tuple((derivation.review or {}).get("pending_removals") or ()),
    }


def _release_free_memory() -> None:
    """Hand memory freed by the phase just finished back to the system, between phases.

    Collection parses pages on 16 threads, and glibc keeps what is freed in each thread's malloc
    arena; WeasyPrint's layout (~300 MB for the large benchmark tenant's report) then came on top
    of memory the process no longer used. ``malloc_trim`` returns the free pages of every arena:
    on the large tenant the RSS when rendering starts went from 524 to 414 MB and the package's
    peak from 776 to 733 MB (benchmarks/bench_package.py, issue 7). It changes no data, so the
    package's bytes cannot depend on it. Elsewhere (not glibc) this only runs a collection.
    """
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _recorded_request(request: PackageRequest, signer: Signer | None) -> Request:
    return Request(
        kind=request.kind,
        scope=request.scope,
        window=request.window,
        policy=request.policy,
        page_size=request.page_size,
        release_model=request.release_model,
        release_version=request.release_version,
        release_window_start=request.release_window_start,
        signer=_signer_info(signer),
        attachments=request.attachments,
    )


def _signer_info(signer: Signer | None) -> dict[str, Any] | None:
    if signer is None:
        return None
    from evidence.sign.demo import is_demo_key

    return {
        "label": signer.label,
        "fingerprint": signer.key_id(),
        "algorithm": str(signer.algorithm),
        "insecure_demo": is_demo_key(signer.public_key()),
    }
