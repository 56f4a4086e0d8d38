"""PAdES signatures on the PDF report (pyHanko), made before bagging so a forwarded PDF still
shows who signed it; and their validation, with intact / valid / trusted kept apart.

Any ``evidence.sign.interface.Signer`` can sign: ``_PyHankoAdapter`` turns it into a pyHanko
``Signer`` whose ``async_sign_raw`` calls ``Signer.sign``. With ``KeyVaultSigner`` that means only
the digest of the CMS signed attributes leaves the machine, and pyHanko's sizing dry run never
reaches the vault.

Reproducibility: pyHanko stamps the signing time, ``/ModDate`` and a random second ``/ID`` half.
Here all three come from ``signed_at`` and the input, so with a deterministic scheme (RSA PKCS#1
v1.5, Ed25519) and no timestamp authority the signed PDF is byte-identical across runs
(tests/test_pades.py). A visible box is not: pyHanko names the embedded font subset with a random
prefix.

Ed25519: pyHanko signs and validates it (RFC 8419, with SHA-512 as the CMS digest), but poppler's
``pdfsig`` (NSS) rejects such signatures ("Document isn't signed or corrupted data") and Adobe
Reader does not support EdDSA, so use RSA or ECDSA P-256 when the PDF must verify in readers.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from evidence.clock import isoformat
from evidence.errors import UsageError, VerificationError
from evidence.sign.demo import DEMO_KEY_FINGERPRINT
from evidence.sign.interface import (
    Algorithm,
    PublicKey,
    Signer,
    SigningError,
    Status,
    as_public_key,
    fingerprint,
)

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

FIELD_NAME = "EvidenceSignature"
#: Box of the optional visible signature on the cover page, in PDF points from the bottom left of
#: an A4 page (595 x 842): 70 mm x 22 mm, 15 mm from the left and bottom edges.
VISIBLE_BOX = (43, 43, 241, 105)
STAMP_TEXT = "Digitally signed by %(signer)s\nDate: %(ts)s\nReason: %(reason)s"
_FONT = "DejaVuSans.ttf"

# The CMS digest and the pyHanko signature mechanism for each scheme. RFC 8419 pairs Ed25519 with
# SHA-512 for the message digest; the others hash with SHA-256, as Signer.sign does.
_DIGEST = {
    Algorithm.ED25519: "sha512",
    Algorithm.ECDSA_P256_SHA256: "sha256",
    Algorithm.RSA_PKCS1V15_SHA256: "sha256",
    Algorithm.RSA_PSS_SHA256: "sha256",
}


def _mechanism(algorithm: Algorithm) -> Any:
    from asn1crypto import algos

    if algorithm is Algorithm.ED25519:
        return algos.SignedDigestAlgorithm({"algorithm": "ed25519"})
    if algorithm is Algorithm.ECDSA_P256_SHA256:
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if algorithm is Algorithm.RSA_PKCS1V15_SHA256:
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    params = algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
            "trailer_field": "trailer_field_bc",
        }
    )
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})


def _placeholder_size(key: PublicKey) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size // 8
    if isinstance(key, ec.EllipticCurvePublicKey):
        return 72  # the longest DER SEQUENCE{r, s} for P-256
    return 64


def _asn1_cert(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _adapter(signer: Signer) -> Any:
    """A pyHanko ``Signer`` that delegates the one private-key operation to ``signer``."""
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = signer.certificate()
    if cert is None:
        raise SigningError(
            "a PAdES signature needs the signer's X.509 certificate",
            hint="pass the certificate with the key (evidence keygen makes one)",
        )
    algorithm = signer.algorithm
    asn1_cert = _asn1_cert(cert)
    placeholder = _placeholder_size(signer.public_key())

    class _PyHankoAdapter(signers.Signer):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if digest_algorithm != _DIGEST[algorithm]:
                raise SigningError(f"pyHanko asked for {digest_algorithm}; {algorithm} signs with {_DIGEST[algorithm]}")
            if dry_run:  # pyHanko sizes the /Contents placeholder with this: never call the key
                return bytes(placeholder)
            return signer.sign(data)

    return _PyHankoAdapter(
        signing_cert=asn1_cert,
        cert_registry=SimpleCertificateStore.from_certs([asn1_cert]),  # type: ignore[no-untyped-call]
        signature_mechanism=_mechanism(algorithm),
    )


def _pinned_writer(pdf_bytes: bytes, signed_at: datetime) -> Any:
    """An incremental writer whose /ModDate and new /ID half come from the inputs, not the clock."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.metadata.model import DocumentMetadata
    from pyhanko.pdf_utils.misc import PdfError

    class _PinnedMetadata(DocumentMetadata):
        # pyHanko's writer assigns last_modified = "now" right before writing (writer._update_meta);
        # a read-only property keeps the package clock instead.
        @property
        def last_modified(self) -> datetime:
            return signed_at

        @last_modified.setter
        def last_modified(self, value: object) -> None:
            pass

    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes), strict=False)
    except (PdfError, ValueError, KeyError) as exc:
        raise SigningError(f"the report is not a readable PDF ({exc})") from None
    # NOTE: private attributes, checked against pyHanko 0.38 (writer.py BasePdfFileWriter.__init__):
    # _document_id's second half is os.urandom(16) and _meta feeds the Info dict and XMP.
    # The first half is kept when the input has an /ID (ISO 32000 14.4); else pyHanko drew it randomly.
    id1 = (
        writer._document_id[0]
        if "/ID" in writer.prev.trailer
        else generic.ByteStringObject(hashlib.sha256(pdf_bytes).digest()[:16])
    )
    seed = hashlib.sha256(pdf_bytes + isoformat(signed_at).encode()).digest()[:16]
    writer._document_id = generic.ArrayObject([id1, generic.ByteStringObject(seed)])
    writer._meta = _PinnedMetadata()
    return writer


def sign_pdf(
    pdf_bytes: bytes,
    signer: Signer,
    *,
    signed_at: datetime,
    reason: str,
    location: str = "",
    tsa_url: str | None = None,
    timestamper: TimeStamper | None = None,
    visible: bool = False,
) -> bytes:
    """Sign ``pdf_bytes`` PAdES-B-B (B-T when ``tsa_url`` or ``timestamper`` is given).

    ``signed_at`` (the package clock) is the signing time written into the signature. An
    unreachable timestamp authority is an error, never a silent fallback to B-B.
    """
    if signed_at.tzinfo is None:
        raise ValueError("signed_at must be timezone-aware")
    from pyhanko.sign import signers, timestamps
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
    from pyhanko.sign.general import SigningError as PyHankoSigningError
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError

    if tsa_url is not None and timestamper is not None:
        raise UsageError("give either a timestamp authority URL or a timestamper, not both")
    if tsa_url is not None:
        if not tsa_url.startswith(("http://", "https://")):
            raise UsageError(f"timestamp authority URL {tsa_url!r} is not http(s)", hint="e.g. https://tsa.example/tsr")
        timestamper = timestamps.HTTPTimeStamper(tsa_url, timeout=10)

    adapter = _adapter(signer)
    algorithm = signer.algorithm
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm=_DIGEST[algorithm],
        reason=reason,
        location=location or None,
    )
    stamp_style = None
    field_spec = None
    if visible:
        stamp_style = _stamp_style()
        field_spec = SigFieldSpec(FIELD_NAME, on_page=0, box=VISIBLE_BOX)
    at = signed_at.astimezone(UTC)

    class _PinnedTimePdfSigner(signers.PdfSigner):
        # pyHanko 0.38 has no public knob for the signing time: PdfSigningSession takes
        # system_time, but PdfSigner.init_signing_session never passes it. Set it afterwards.
        def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
            session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
            session.system_time = at
            return session

    pdf_signer = _PinnedTimePdfSigner(
        meta, signer=adapter, timestamper=timestamper, stamp_style=stamp_style, new_field_spec=field_spec
    )
    writer = _pinned_writer(pdf_bytes, at)
    try:
        with _quiet("fontTools.subset"):
            out = pdf_signer.sign_pdf(writer, appearance_text_params={"reason": reason} if visible else None)
    except TimestampRequestError as exc:
        raise SigningError(
            f"the timestamp authority {tsa_url or 'given'} could not be reached or refused the request ({exc})",
            hint="check --tsa-url and the network, or sign without a timestamp (PAdES-B-B)",
        ) from None
    except PyHankoSigningError as exc:
        raise SigningError(f"pyHanko could not sign the report: {exc}") from None
    result: bytes = out.getvalue()
    return result


def _stamp_style() -> Any:
    try:
        from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise UsageError(
            "a visible signature needs pyhanko[opentype] (uharfbuzz) for its embedded font",
            hint="pip install 'pyhanko[opentype]', or sign invisibly",
        ) from None
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    font = resources.files("evidence").joinpath("assets", "fonts", _FONT).read_bytes()

    class _InMemoryFontFactory(GlyphAccumulatorFactory):
        # pyHanko's factory open()s the font file and never closes it (a ResourceWarning per
        # signature); reading the font from memory avoids the leaked handle.
        def create_font_engine(self, writer: Any, obj_stream: Any = None) -> Any:
            if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
                obj_stream = writer.prepare_object_stream()
            return GlyphAccumulator(
                writer=writer, font_handle=io.BytesIO(font), font_size=self.font_size, obj_stream=obj_stream
            )

    # An embedded TrueType font: pyHanko's default stamp font is non-embedded Courier, which a
    # PDF/A report may not contain.
    return TextStampStyle(
        stamp_text=STAMP_TEXT,
        text_box_style=TextBoxStyle(font=_InMemoryFontFactory(_FONT, font_size=7)),
        border_width=1,
    )


# -- validation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdfSignatureVerdict:
    """One PAdES signature, as pyHanko judges it.

    ``intact``: the signed byte ranges hash to the signed digest. ``valid``: the signature over
    that digest verifies with the signing certificate. ``trusted``: the certificate chains to a
    given trust root. ``whole_file``: nothing was appended after signing.
    """

    intact: bool
    valid: bool
    trusted: bool
    whole_file: bool
    reason: str
    signer_subject: str | None = None
    key_fingerprint: str | None = None
    signing_time: str | None = None
    timestamp_time: str | None = None
    subfilter: str | None = None

    @property
    def passed(self) -> bool:
        return self.intact and self.valid and self.trusted and self.whole_file

    @property
    def bottom_line(self) -> bool:
        return self.passed

    @property
    def status(self) -> Status:
        if not (self.intact and self.valid and self.whole_file):
            return Status.FAILED
        return Status.PASSED if self.trusted else Status.INDETERMINATE

    @property
    def demo_key(self) -> bool:
        return self.key_fingerprint == DEMO_KEY_FINGERPRINT

    def raise_for_failure(self) -> None:
        if not self.passed:
            raise VerificationError(f"PDF signature {self.status}: {self.reason}")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "whole_file": self.whole_file,
            "reason": self.reason,
            "signer_subject": self.signer_subject,
            "key_fingerprint": self.key_fingerprint,
            "demo_key": self.demo_key,
            "signing_time": self.signing_time,
            "timestamp_time": self.timestamp_time,
            "subfilter": self.subfilter,
        }


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence library loggers around a call whose failures we report as values.

    pyHanko logs tracebacks for tampered files and unknown issuers; fontTools warns about font
    tables it drops while subsetting the stamp font.
    """
    loggers = [logging.getLogger(name) for name in names]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, before, strict=True):
            lg.disabled = was


def _stamp(dt: datetime | None) -> str | None:
    return isoformat(dt) if dt is not None else None


#: ``PdfSignatureVerdict.reason`` for a PDF that carries no signature at all.
UNSIGNED_REASON = "the PDF is not signed"


def validate_pdf(
    pdf_bytes: bytes | IO[bytes],
    trust_certs: Sequence[x509.Certificate],
    *,
    tsa_trust_certs: Sequence[x509.Certificate] = (),
    validation_time: datetime | None = None,
) -> PdfSignatureVerdict:
    """Validate the report's PAdES signature (the one named ``EvidenceSignature``, else the only one).

    Offline: no OCSP/CRL fetching. ``validation_time`` defaults to now. Never raises for a bad PDF;
    the problem is the verdict's ``reason``. ``pdf_bytes`` may be a seekable binary file (the
    verifier spools the report out of the zip rather than holding it in memory).
    """
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko_certvalidator import ValidationContext

    def failed(reason: str, **known: Any) -> PdfSignatureVerdict:
        return PdfSignatureVerdict(
            intact=known.pop("intact", False), valid=False, trusted=False, whole_file=False, reason=reason, **known
        )

    with _quiet("pyhanko", "pyhanko_certvalidator"):
        try:
            stream = io.BytesIO(pdf_bytes) if isinstance(pdf_bytes, bytes) else pdf_bytes
            reader = PdfFileReader(stream, strict=False)
            embedded = reader.embedded_signatures
        except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
            return failed(f"not a readable PDF ({exc})")
        if not embedded:
            return failed(UNSIGNED_REASON)
        named = [s for s in embedded if s.field_name == FIELD_NAME]
        if len(named) != 1 and len(embedded) != 1:
            return failed(f"expected one {FIELD_NAME} signature, found {len(embedded)} signatures")
        sig = named[0] if named else embedded[0]
        moment = validation_time or datetime.now(UTC)
        vc = ValidationContext(trust_roots=[_asn1_cert(c) for c in trust_certs], allow_fetching=False, moment=moment)
        ts_vc = ValidationContext(
            trust_roots=[_asn1_cert(c) for c in tsa_trust_certs], allow_fetching=False, moment=moment
        )
        try:
            status = validate_pdf_signature(sig, vc, ts_validation_context=ts_vc)
        except (SignatureValidationError, PdfError, ValueError, KeyError) as exc:
            return failed(f"the signature cannot be validated: {exc}")

    from pyhanko.sign.validation.status import SignatureCoverageLevel

    try:
        cert = x509.load_der_x509_certificate(status.signing_cert.dump())
        subject: str | None = cert.subject.rfc4514_string()
        key_fp: str | None = fingerprint(as_public_key(cert.public_key()))
    except (ValueError, SigningError):
        subject, key_fp = None, None
    whole_file = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    tst = status.timestamp_validity
    if not status.intact:
        reason = "the PDF was changed after signing (digest mismatch)"
    elif not status.valid:
        reason = "the signature does not verify with the signing certificate"
    elif not whole_file:
        reason = "content was added to the PDF after it was signed"
    elif not status.trusted:
        reason = f"the signing certificate ({subject}) does not chain to a trusted certificate"
    else:
        reason = f"signed by {subject}"
    return PdfSignatureVerdict(
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        whole_file=whole_file,
        reason=reason,
        signer_subject=subject,
        key_fingerprint=key_fp,
        signing_time=_stamp(status.signer_reported_dt),
        timestamp_time=_stamp(tst.timestamp) if tst is not None else None,
        subfilter=str(sig.sig_object.get("/SubFilter")),
    )


def load_certificates(paths: Sequence[str | Path]) -> list[x509.Certificate]:
    """Certificates for ``validate_pdf`` from PEM/DER files; ``UsageError`` naming a bad file."""
    from evidence.sign.local import load_certificate

    return [load_certificate(Path(p)) for p in paths]
