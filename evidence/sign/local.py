"""A signing key in a PEM file on disk (optionally password-protected), with its certificate."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from evidence.errors import UsageError
from evidence.sign.interface import Algorithm, PrivateKey, SigningError
from evidence.sign.memory import InMemorySigner

_SUPPORTED = "an Ed25519, ECDSA P-256 or RSA-3072 private key in PEM (PKCS#8 or traditional) format"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the path and its permissions"
        ) from None


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key, turning every failure into one ``UsageError`` line naming the file."""
    data = _read(path, "signing key")
    encrypted = b"ENCRYPTED" in data.split(b"\n-----END", 1)[0][:200] or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not password:
        raise UsageError(
            f"signing key {path} is password-protected and no password was given",
            hint="pass the password (e.g. through the environment variable named by --key-password-env)",
        )
    try:
        key = serialization.load_pem_private_key(data, password=password if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise UsageError(
                f"wrong password for signing key {path}", hint="check the password for this key file"
            ) from None
        raise UsageError(f"{path} is not a readable PEM private key ({exc})", hint=f"use {_SUPPORTED}") from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"cannot load signing key {path}: {exc}", hint=f"use {_SUPPORTED}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise UsageError(f"signing key {path} is a {type(key).__name__}", hint=f"use {_SUPPORTED}")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """Load an X.509 certificate (PEM or DER) or raise ``UsageError`` naming the file."""
    data = _read(path, "certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise UsageError(f"{path} is not an X.509 certificate ({exc})", hint="pass a PEM or DER certificate") from None


class LocalKeySigner(InMemorySigner):
    """An ``InMemorySigner`` loaded from a key file; remembers where it came from."""

    def __init__(
        self,
        private_key: PrivateKey,
        certificate: x509.Certificate | None = None,
        *,
        algorithm: Algorithm | None = None,
        label: str = "",
        key_path: Path | None = None,
    ) -> None:
        super().__init__(private_key, certificate, algorithm=algorithm, label=label)
        self.key_path = key_path

    @classmethod
    def from_files(
        cls,
        key_path: str | Path,
        cert_path: str | Path | None = None,
        password: bytes | str | None = None,
        *,
        algorithm: Algorithm | None = None,
        label: str = "",
    ) -> LocalKeySigner:
        """Load ``key_path`` (PEM) and optionally its certificate; all problems are ``UsageError``."""
        key_file = Path(key_path)
        secret = password.encode() if isinstance(password, str) else password
        key = load_private_key(key_file, secret)
        cert = load_certificate(Path(cert_path)) if cert_path is not None else None
        try:
            return cls(key, cert, algorithm=algorithm, label=label, key_path=key_file)
        except SigningError as exc:
            raise UsageError(f"cannot sign with {key_file}: {exc.message}", hint=exc.hint) from None
