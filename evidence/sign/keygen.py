"""``evidence keygen``: a fresh key and a self-signed certificate, for evaluation.

A self-signed certificate proves nothing on its own: it is trusted only where a verifier is told
to trust it (``--trust CERT``). For production, have a CA issue the certificate, or keep the key in
Key Vault.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from evidence.errors import UsageError
from evidence.sign.interface import PrivateKey

#: How long a generated certificate is valid.
CERT_VALIDITY = timedelta(days=3 * 365)


class KeyKind(StrEnum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    RSA_3072 = "rsa-3072"


def new_private_key(kind: str) -> PrivateKey:
    """A fresh private key of ``kind``; ``UsageError`` for anything else."""
    try:
        which = KeyKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in KeyKind)
        raise UsageError(f"unknown key type {kind!r}", hint=f"choose one of {choices}") from None
    if which is KeyKind.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if which is KeyKind.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def self_signed_certificate(
    key: PrivateKey, common_name: str, valid_from: datetime, *, validity: timedelta = CERT_VALIDITY
) -> x509.Certificate:
    """A self-signed end-entity certificate for document signing.

    KeyUsage digitalSignature + nonRepudiation (contentCommitment), critical, as PAdES validators
    expect of a signing certificate; not a CA.
    """
    if valid_from.tzinfo is None:
        raise ValueError("valid_from must be timezone-aware")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_from + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    # Ed25519 signs without a separate hash (RFC 8410); the others use SHA-256.
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def private_key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with ``password`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def generate_key(
    kind: str, common_name: str, valid_from: datetime, *, password: bytes | None = None
) -> tuple[bytes, bytes]:
    """``(key_pem, cert_pem)``: a new key of ``kind`` and its self-signed certificate."""
    key = new_private_key(kind)
    cert = self_signed_certificate(key, common_name, valid_from)
    return private_key_pem(key, password), cert.public_bytes(serialization.Encoding.PEM)
