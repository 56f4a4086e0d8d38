"""verify stage: check a package zip offline, failing closed, and report every check.

``verify_package`` runs, in order: (1) archive safety from the zip directory alone, before any
member is read; (2) the BagIt checks, streaming every member through SHA-256; (3) the detached
signature over the tag manifest, through pluggable :class:`Check` callables (the signing stage
provides them); (4) the report PDF's PAdES signature; (5) any further checks and ``--rebuild``.
An unsafe archive stops after (1).

This package must not import ``azure.*`` (nor anything that does): ``evidence verify`` has to
start fast on an auditor's laptop. A test enforces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from evidence.errors import VerificationError
from evidence.sign.package_signature import TrustAnchor
from evidence.verify.archive_safety import DEFAULT_LIMITS, ArchiveProblem, Limits
from evidence.verify.bag import check_bag
from evidence.verify.package import (
    CorruptMemberError,
    NotAZipError,
    OpenedPackage,
    PackageUnreadableError,
    UnsafeArchiveError,
)
from evidence.verify.pades import REPORT_PDF, PadesCheck, pades_check
from evidence.verify.rebuild import rebuild_check as default_rebuild_check
from evidence.verify.report import (
    CheckResult,
    Status,
    VerificationReport,
    exit_code_for,
    failed,
    indeterminate,
    passed,
)
from evidence.verify.signature import package_signature_check

#: A trust anchor as ``--trust`` gives it (a certificate or public key file), its bytes, or one
#: already loaded by the signing stage.
TrustSpec = Path | str | bytes | TrustAnchor

__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveProblem",
    "Check",
    "CheckResult",
    "CorruptMemberError",
    "Limits",
    "NotAZipError",
    "OpenedPackage",
    "PackageUnreadableError",
    "PadesCheck",
    "Status",
    "TrustSpec",
    "UnsafeArchiveError",
    "VerificationReport",
    "exit_code_for",
    "failed",
    "indeterminate",
    "package_signature_check",
    "pades_check",
    "passed",
    "verify_package",
]


class Check(Protocol):
    """A check over an opened, archive-safe package (e.g. the detached signature, PAdES).

    Return one or more results; raising a :class:`VerificationError` is reported as FAILED with
    its diagnostics. Any other exception propagates: a :class:`UsageError` (a bad ``--trust``
    file) is the caller's to report, anything else is a bug.
    """

    def __call__(self, package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]: ...


SIGNATURE_CHECK = "signature"


def verify_package(
    path: Path,
    *,
    trust: Sequence[TrustSpec] = (),
    signature_checks: Sequence[Check] | None = None,
    checks: Sequence[Check] = (),
    pdf_checks: Sequence[Check] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    require_signature: bool | None = None,
    rebuild: bool = False,
    rebuild_check: Check | None = None,
) -> VerificationReport:
    """Verify the package zip at ``path``; never raises for a bad package, only reports.

    ``signature_checks`` verify the detached signature against ``trust``; ``None`` means the
    package signature of :mod:`evidence.sign.package_signature`, ``()`` means none (the signature
    is then reported INDETERMINATE). The signature is required (anything but PASSED keeps the
    package from passing) when ``require_signature`` is true, which defaults to "trust anchors were
    given"; without trust anchors an integrity-only verification can pass, and says so.

    ``pdf_checks`` validate the report PDF's own signature when the package has
    ``data/report/report.pdf``; ``None`` means :data:`evidence.verify.pades.pades_check` (PAdES,
    trusted through the same ``trust``), ``()`` none. Their INDETERMINATE results are required
    exactly when the package signature is.

    ``rebuild`` asks for ``rebuild_check`` (re-deriving records, findings and the HTML report from
    the raw evidence and comparing digests), by default :func:`evidence.verify.rebuild.rebuild_check`.

    Raises only :class:`evidence.errors.UsageError` for an unreadable trust anchor.
    """
    if signature_checks is None:
        signature_checks = (package_signature_check,)
    if pdf_checks is None:
        pdf_checks = (pades_check,)
    shown = str(path)
    try:
        pkg = OpenedPackage.open(Path(path), limits=limits)
    except PackageUnreadableError as exc:
        return VerificationReport(shown, (indeterminate("archive.open", exc.diagnostics()),), could_not_run=True)
    except NotAZipError as exc:
        return VerificationReport(shown, (failed("archive.open", exc.message),))
    except UnsafeArchiveError as exc:
        # Fail closed: nothing inside an unsafe archive is read, so no other check runs.
        unsafe = tuple(failed("archive.safety", p.reason, p.member) for p in exc.problems)
        return VerificationReport(shown, (passed("archive.open", "readable zip archive"), *unsafe))

    required = bool(trust) if require_signature is None else require_signature
    with pkg:
        results: list[CheckResult] = [
            passed("archive.open", "readable zip archive"),
            passed(
                "archive.safety",
                f"{len(pkg.files)} members under {pkg.root + '/'!r}, safe names, within limits",
            ),
        ]
        if pdf_checks and REPORT_PDF in pkg:
            pkg.keep_spooled(REPORT_PDF)  # the PDF checks need a file: copy it while hashing it
        results.extend(check_bag(pkg))
        if signature_checks:
            for check in signature_checks:
                results.extend(_run(check, pkg, trust, SIGNATURE_CHECK, required=required))
        else:
            results.append(_unsigned(pkg, required=required))
        if REPORT_PDF in pkg:
            for check in pdf_checks:
                results.extend(_run(check, pkg, trust, _name_of(check), required=required))
        for check in checks:
            results.extend(_run(check, pkg, trust, _name_of(check), required=True))
        if rebuild:
            check = default_rebuild_check if rebuild_check is None else rebuild_check
            results.extend(_run(check, pkg, trust, "rebuild", required=True))
    return VerificationReport(shown, tuple(results))


def _unsigned(pkg: OpenedPackage, *, required: bool) -> CheckResult:
    if pkg.signature_files:
        reason = (
            f"package carries {', '.join(pkg.signature_files)} but no signature checker was given; "
            "signature not verified"
        )
    else:
        reason = "package is not signed"
    if not required:
        reason += " (integrity checked only; pass --trust to require a trusted signature)"
    return indeterminate(SIGNATURE_CHECK, reason, required=required)


def _run(
    check: Check, pkg: OpenedPackage, trust: Sequence[TrustSpec], name: str, *, required: bool
) -> list[CheckResult]:
    try:
        out = list(check(pkg, trust))
    except VerificationError as exc:
        return [failed(name, exc.diagnostics())]
    if not out:
        # Fail closed: a checker that says nothing has not shown anything to be good.
        return [indeterminate(name, "the check reported no result", required=required)]
    if not required:
        out = [
            CheckResult(r.name, r.status, r.reason, r.subject, False) if r.status is Status.INDETERMINATE else r
            for r in out
        ]
    return out


def _name_of(check: Check) -> str:
    return str(getattr(check, "__name__", type(check).__name__))
