"""``evidence verify --rebuild``: re-derive the package's derived views and compare digests.

Step 5 of the verifier. :func:`evidence.derive.derive` (the same function the pipeline used to
write the package) recomputes, from the package's inputs alone (``data/raw/**``,
``data/collection.json``, ``data/inputs/**``), every derived file (records, findings, the access
review sheet) and the report's input; the HTML report is re-rendered from it. Each is compared
with what the package holds, by SHA-256, and every mismatch is reported naming the file:

* ``rebuild.derived``: every derived file the package holds equals its re-derivation, none is
  missing, none is extra;
* ``rebuild.report``: ``data/report/report.html`` equals the re-rendered report (the PDF carries a
  signature made at signing time, so it is checked through the HTML and its own PAdES check);
* ``rebuild.package_id``: ``Package-Id`` in ``bag-info.txt`` equals the re-derived ID.

Nothing is extracted to disk: ``derive`` reads members straight from the archive-safe
:class:`OpenedPackage` (a path named inside ``collection.json``, such as ``../../x``, is only a key
that is not in the package). The derivation and rendering modules are imported only here, when
``--rebuild`` is asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evidence.bundle import layout
from evidence.errors import EvidenceError, VerificationError
from evidence.verify.package import CorruptMemberError, OpenedPackage
from evidence.verify.report import CheckResult, failed, indeterminate, passed

if TYPE_CHECKING:
    from evidence.render.interface import ReportInput

NAME = "rebuild"
REPORT_HTML = "data/report/report.html"


def rebuild_check(package: OpenedPackage, trust: Sequence[object], /) -> list[CheckResult]:
    """Re-derive and compare; one result per mismatching file, or one PASSED per comparison."""
    from evidence.derive import DerivationError, derive, is_derived

    try:
        derivation = derive(package)
    except DerivationError as exc:
        return [indeterminate(NAME, f"cannot re-derive from this package: {exc.diagnostics()}")]
    except VerificationError:
        raise  # a member could not be read back: verify_package reports it as FAILED
    except EvidenceError as exc:
        # derive's UsageError: a recorded decisions sheet that does not match the population, which
        # the pipeline refuses before it writes a package, so this package was not made that way.
        return [failed(NAME, f"the recorded inputs contradict each other: {exc.diagnostics()}")]
    except Exception as exc:  # a malformed input must be reported, never crash verify
        reason = f"re-deriving raised {type(exc).__name__}: {exc} (a malformed input, or a bug)"
        return [indeterminate(NAME, reason)]

    from evidence import __version__

    # The templates and normalisers belong to a tool version: say so when they differ.
    made_by = derivation.collected.tool_version
    note = "" if made_by == __version__ else f" (made by evidence {made_by}, re-derived by {__version__})"
    results: list[CheckResult] = []
    stored = {rel for rel in package.payload_files if is_derived(rel)}
    expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in derivation.files.items()}
    actual = dict(_digests(package, sorted(stored, key=layout.sort_key), results))
    mismatches: list[CheckResult] = []
    for rel in sorted(stored | set(expected), key=layout.sort_key):
        if rel not in stored:
            mismatches.append(failed("rebuild.derived", "re-deriving produces it, but the package lacks it", rel))
        elif rel not in expected:
            mismatches.append(failed("rebuild.derived", "in the package, but re-deriving does not produce it", rel))
        elif rel in actual and actual[rel] != expected[rel]:
            reason = f"differs from its re-derivation: package SHA-256 {actual[rel]}, re-derived {expected[rel]}{note}"
            mismatches.append(failed("rebuild.derived", reason, rel))
    results.extend(mismatches)
    if not mismatches and not results:
        results.append(passed("rebuild.derived", f"all {len(expected)} derived files equal their re-derivation"))

    results.append(_compare_report(package, derivation.report, note))
    results.append(_compare_package_id(package, derivation.package_id))
    return results


def _digests(package: OpenedPackage, relpaths: Sequence[str], problems: list[CheckResult]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for rel, outcome in package.sha256_many(relpaths):
        if isinstance(outcome, CorruptMemberError):
            problems.append(failed("rebuild.derived", f"corrupt member: {outcome.reason}", rel))
        else:
            out.append((rel, outcome[0]))
    return out


def _compare_report(package: OpenedPackage, report: ReportInput, note: str) -> CheckResult:
    from evidence.render.html import render_html

    name = "rebuild.report"
    rendered = hashlib.sha256(render_html(report).encode("utf-8")).hexdigest()
    if REPORT_HTML not in package:
        return failed(name, "the package has no HTML report to compare with the re-rendered one", REPORT_HTML)
    try:
        found, _ = package.sha256(REPORT_HTML)
    except CorruptMemberError as exc:
        return failed(name, f"corrupt member: {exc.reason}", REPORT_HTML)
    if found != rendered:
        reason = f"differs from the re-rendered report: package SHA-256 {found}, re-rendered {rendered}{note}"
        return failed(name, reason, REPORT_HTML)
    return passed(name, "equals the report re-rendered from the re-derived records and findings", REPORT_HTML)


def _compare_package_id(package: OpenedPackage, package_id: str) -> CheckResult:
    name = "rebuild.package_id"
    declared = None
    if layout.BAG_INFO_TXT in package:
        for line in package.read(layout.BAG_INFO_TXT).decode("utf-8", "replace").splitlines():
            label, sep, value = line.partition(":")
            if sep and label == "Package-Id":
                declared = value.strip()
                break
    if declared is None:
        return failed(name, "bag-info.txt has no Package-Id", layout.BAG_INFO_TXT)
    if declared != package_id:
        reason = f"Package-Id is {declared}, the re-derived evidence gives {package_id}"
        return failed(name, reason, layout.BAG_INFO_TXT)
    return passed(name, f"Package-Id {package_id} follows from the evidence", layout.BAG_INFO_TXT)
