"""PAdES signatures on the report: sign, validate, tamper, timestamp, reproducibility."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence.errors import UsageError, VerificationError
from evidence.sign.demo import DEMO_KEY_FINGERPRINT, demo_signer
from evidence.sign.interface import SigningError, Status
from evidence.sign.keygen import new_private_key, self_signed_certificate
from evidence.sign.memory import InMemorySigner
from evidence.sign.pades import FIELD_NAME, sign_pdf, validate_pdf

SIGNED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)
VALIDATE_AT = datetime(2025, 6, 1, tzinfo=UTC)
KINDS = ["ed25519", "ecdsa-p256", "rsa-3072"]
PDFSIG = shutil.which("pdfsig")

_SIGNERS: dict[str, InMemorySigner] = {}


def signer_for(kind: str) -> InMemorySigner:
    if kind not in _SIGNERS:
        key = new_private_key(kind)
        _SIGNERS[kind] = InMemorySigner(key, self_signed_certificate(key, f"PDF {kind}", VALID_FROM))
    return _SIGNERS[kind]


def cert_of(signer: InMemorySigner) -> x509.Certificate:
    cert = signer.certificate()
    assert cert is not None
    return cert


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    """A small two-page PDF standing in for the rendered report."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_blank_page(595, 842)
    writer.add_metadata({"/Title": "Evidence report"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign(pdf: bytes, signer: InMemorySigner, **kwargs: Any) -> bytes:
    return sign_pdf(pdf, signer, signed_at=SIGNED_AT, reason="Audit evidence", location="CI", **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_sign_and_validate_each_key_type(kind: str, report_pdf: bytes) -> None:
    signer = signer_for(kind)
    signed = sign(report_pdf, signer)
    assert signed.startswith(report_pdf), "pyHanko signs by incremental update"
    verdict = validate_pdf(signed, [cert_of(signer)], validation_time=VALIDATE_AT)
    assert verdict.passed and verdict.status is Status.PASSED, verdict.reason
    assert (verdict.intact, verdict.valid, verdict.trusted, verdict.whole_file) == (True, True, True, True)
    assert verdict.signer_subject == f"CN=PDF {kind}"
    assert verdict.signing_time == "2025-03-01T12:00:00Z"
    assert verdict.key_fingerprint == signer.key_id()
    assert verdict.subfilter == "/ETSI.CAdES.detached"
    verdict.raise_for_failure()


def test_tampered_after_signing_is_not_intact(report_pdf: bytes) -> None:
    signer = signer_for("ecdsa-p256")
    signed = bytearray(sign(report_pdf, signer))
    at = signed.index(b"/Title")
    signed[at + 8] ^= 0x01  # one byte inside the signed, original revision
    verdict = validate_pdf(bytes(signed), [cert_of(signer)], validation_time=VALIDATE_AT)
    assert not verdict.intact and verdict.status is Status.FAILED
    assert "changed after signing" in verdict.reason
    with pytest.raises(VerificationError):
        verdict.raise_for_failure()


def test_content_appended_after_signing_fails(report_pdf: bytes) -> None:
    signer = signer_for("ecdsa-p256")
    signed = sign(report_pdf, signer)
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root["/Lang"] = generic.TextStringObject("xx")
    writer.update_root()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    verdict = validate_pdf(out.getvalue(), [cert_of(signer)], validation_time=VALIDATE_AT)
    assert verdict.intact and not verdict.whole_file and verdict.status is Status.FAILED
    assert "added to the PDF after it was signed" in verdict.reason


def test_untrusted_certificate_is_indeterminate(report_pdf: bytes) -> None:
    signed = sign(report_pdf, signer_for("rsa-3072"))
    verdict = validate_pdf(signed, [cert_of(signer_for("ecdsa-p256"))], validation_time=VALIDATE_AT)
    assert (verdict.intact, verdict.valid, verdict.trusted) == (True, True, False)
    assert verdict.status is Status.INDETERMINATE and not verdict.passed
    assert "does not chain to a trusted certificate" in verdict.reason


def test_unsigned_and_unreadable_pdfs(report_pdf: bytes) -> None:
    assert validate_pdf(report_pdf, []).reason == "the PDF is not signed"
    assert validate_pdf(b"not a pdf", []).status is Status.FAILED


def test_signer_without_certificate_is_refused(report_pdf: bytes) -> None:
    with pytest.raises(SigningError, match=r"needs the signer's X\.509 certificate"):
        sign(report_pdf, InMemorySigner(new_private_key("ed25519")))


class CountingSigner(InMemorySigner):
    """Counts private-key operations, to show pyHanko's sizing dry run never reaches the key."""

    calls = 0

    def sign(self, data: bytes) -> bytes:
        type(self).calls += 1
        return super().sign(data)


def test_one_key_operation_per_signature(report_pdf: bytes) -> None:
    base = signer_for("ecdsa-p256")
    counting = CountingSigner(base.private_key, base.certificate())
    sign(report_pdf, counting)
    assert CountingSigner.calls == 1


@pytest.mark.parametrize("kind", ["rsa-3072", "ed25519"])
def test_deterministic_schemes_give_byte_identical_pdfs(kind: str, report_pdf: bytes) -> None:
    signer = signer_for(kind)
    assert sign(report_pdf, signer) == sign(report_pdf, signer)


def test_signing_time_comes_from_the_package_clock(report_pdf: bytes) -> None:
    signer = signer_for("rsa-3072")
    later = sign_pdf(report_pdf, signer, signed_at=SIGNED_AT + timedelta(hours=1), reason="r", location="l")
    verdict = validate_pdf(later, [cert_of(signer)], validation_time=VALIDATE_AT)
    assert verdict.signing_time == "2025-03-01T13:00:00Z"
    assert b"/ModDate (D\\07220250301130000Z)" in later  # "\072" is ":" escaped by pyHanko


def test_visible_signature_embeds_its_font(report_pdf: bytes) -> None:
    signer = signer_for("rsa-3072")
    signed = sign(report_pdf, signer, visible=True)
    assert validate_pdf(signed, [cert_of(signer)], validation_time=VALIDATE_AT).passed
    reader = pypdf.PdfReader(io.BytesIO(signed))
    widgets = [a.get_object() for a in reader.pages[0].get("/Annots", [])]
    field = next(w for w in widgets if w.get("/T") == FIELD_NAME)
    assert [round(float(v)) for v in field["/Rect"]] == [43, 43, 241, 105]
    fonts = field["/AP"]["/N"]["/Resources"]["/Font"]
    font = next(iter(fonts.values())).get_object()
    assert "DejaVuSans" in font["/BaseFont"]
    assert "/FontFile2" in font["/DescendantFonts"][0].get_object()["/FontDescriptor"]


def _tsa() -> tuple[object, x509.Certificate]:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.timestamps import DummyTimeStamper

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # DummyTimeStamper is RSA-only
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_FROM + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    stamper = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
        fixed_dt=SIGNED_AT + timedelta(seconds=5),
    )
    return stamper, cert


def test_pades_b_t_with_a_timestamp_authority(report_pdf: bytes) -> None:
    stamper, tsa_cert = _tsa()
    signer = signer_for("ecdsa-p256")
    signed = sign(report_pdf, signer, timestamper=stamper)
    verdict = validate_pdf(signed, [cert_of(signer)], tsa_trust_certs=[tsa_cert], validation_time=VALIDATE_AT)
    assert verdict.passed, verdict.reason
    assert verdict.timestamp_time == "2025-03-01T12:00:05Z"


def test_unreachable_timestamp_authority_is_an_error_not_a_downgrade(report_pdf: bytes) -> None:
    with pytest.raises(SigningError, match=r"timestamp authority http://127\.0\.0\.1:9/tsr could not be reached"):
        sign(report_pdf, signer_for("ecdsa-p256"), tsa_url="http://127.0.0.1:9/tsr")
    with pytest.raises(UsageError, match="is not http"):
        sign(report_pdf, signer_for("ecdsa-p256"), tsa_url="ftp://tsa.example")


def test_demo_key_signature_is_recognised(report_pdf: bytes) -> None:
    signer = demo_signer()
    signed = sign(report_pdf, signer)
    verdict = validate_pdf(signed, [], validation_time=VALIDATE_AT)
    assert verdict.demo_key and verdict.key_fingerprint == DEMO_KEY_FINGERPRINT
    assert verdict.status is Status.INDETERMINATE


@pytest.mark.skipif(PDFSIG is None, reason="poppler's pdfsig is not installed")
def test_poppler_accepts_the_rsa_signature(report_pdf: bytes, tmp_path: Path) -> None:
    """An independent validator (NSS): the demo key's RSA PAdES signature reads as valid."""
    path = tmp_path / "signed.pdf"
    path.write_bytes(sign(report_pdf, demo_signer()))
    done = subprocess.run([str(PDFSIG), str(path)], capture_output=True, text=True, check=False)
    assert "Signature Validation: Signature is Valid." in done.stdout
