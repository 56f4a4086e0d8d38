"""The report PDF's own PAdES signature as a :class:`evidence.verify.Check`.

Step 4 of ``evidence verify``: ``data/report/report.pdf`` carries a PAdES signature made before
bagging (so a PDF forwarded alone still shows who signed it). This check validates it with
:func:`evidence.sign.pades.validate_pdf` (pyHanko, offline) and reports pyHanko's three verdicts
apart, each as its own entry about the PDF:

* ``pades.intact``: the signed byte ranges hash to the signed digest, and cover the whole file
  (nothing was added after signing);
* ``pades.valid``: the signature over that digest verifies with the signing certificate;
* ``pades.trusted``: the signing certificate chains to a ``--trust`` certificate, or its key is
  pinned by a ``--trust`` public key (the same anchors as the package signature).

A PDF that is not signed at all fails when the package is signed (the pipeline signs both or
neither, so one without the other means a swapped report) and is INDETERMINATE otherwise.

pyHanko is imported only when a package has a report PDF: ``evidence verify`` must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from evidence.errors import VerificationError
from evidence.sign.demo import DEMO_KEY_FINGERPRINT
from evidence.verify.package import CorruptMemberError, OpenedPackage
from evidence.verify.report import CheckResult, failed, indeterminate, passed
from evidence.verify.signature import trust_anchor

NAME = "pades"
#: The report PDF, bag-relative (as evidence.pipeline writes it).
REPORT_PDF = "data/report/report.pdf"


@dataclass(frozen=True)
class PadesCheck:
    """Validate the PAdES signature of ``member``; ``validation_time`` defaults to now (pyHanko's
    default: without a timestamp, a PAdES-B-B signature is only as good as its certificate today)."""

    member: str = REPORT_PDF
    validation_time: datetime | None = None

    @property
    def __name__(self) -> str:  # how verify_package names a check that raised
        return NAME

    def __call__(self, package: OpenedPackage, trust: Sequence[object], /) -> list[CheckResult]:
        from evidence.sign import pades

        anchors = [trust_anchor(item) for item in trust]
        certs = [a.certificate for a in anchors if a.certificate is not None]
        subject = self.member
        # A temporary file, not memory: pyHanko seeks all over the PDF, and seeking backwards in a
        # DEFLATE zip member re-inflates from the start. verify_package asks for the copy to be
        # made while the bag check hashes the PDF, so it is inflated once; the package deletes it.
        try:
            spool = package.spooled(self.member)
        except CorruptMemberError as exc:
            return [failed(NAME, f"cannot read the report PDF: {exc.reason}", subject)]
        except OSError as exc:
            raise VerificationError(f"cannot spool {self.member} to a temporary file: {exc}") from exc
        verdict = pades.validate_pdf(spool, certs, validation_time=self.validation_time)

        signed_package = bool(package.signature_files)
        if verdict.reason == pades.UNSIGNED_REASON:
            if signed_package:
                return [failed(NAME, "the report PDF is not signed, but the package is (report replaced?)", subject)]
            return [indeterminate(NAME, "the report PDF is not signed", subject)]
        if verdict.signer_subject is None and verdict.key_fingerprint is None and not verdict.intact:
            # validate_pdf stopped before reaching a signature (unreadable PDF, several signatures).
            return [failed(NAME, verdict.reason, subject)]

        who = verdict.signer_subject or "an unreadable certificate"
        if verdict.key_fingerprint:
            who += f", key {verdict.key_fingerprint}"
        if verdict.key_fingerprint == DEMO_KEY_FINGERPRINT:
            who += " (the public INSECURE demo key)"
        results: list[CheckResult] = []
        if not verdict.intact:
            results.append(failed("pades.intact", "the PDF was changed after signing (digest mismatch)", subject))
        elif not verdict.whole_file:
            results.append(failed("pades.intact", "content was added to the PDF after it was signed", subject))
        else:
            results.append(passed("pades.intact", "the signed bytes are unchanged and cover the whole file", subject))
        if verdict.valid:
            results.append(passed("pades.valid", f"the signature verifies with the certificate of {who}", subject))
        else:
            reason = f"the signature does not verify with the certificate of {who}"
            results.append(failed("pades.valid", reason, subject))

        pinned = {a.fingerprint: a.source for a in anchors}
        if verdict.trusted:
            results.append(passed("pades.trusted", f"{who} chains to a --trust certificate", subject))
        elif verdict.key_fingerprint in pinned:
            # A --trust public key (no certificate) cannot be a pyHanko trust root; pinning the
            # key is the same decision the package signature check makes.
            source = pinned[verdict.key_fingerprint]
            results.append(passed("pades.trusted", f"{who}: key pinned by {source}", subject))
        elif not anchors:
            results.append(indeterminate("pades.trusted", f"no trust anchor given; {who} is not trusted", subject))
        else:
            reason = f"{who} does not chain to any of the {len(anchors)} trust anchor(s)"
            results.append(indeterminate("pades.trusted", reason, subject))
        return results


pades_check = PadesCheck()
