"""The sign stage's one seam: a ``Signer`` holds (or reaches) a private key and signs bytes.

Implementations: ``local.LocalKeySigner`` (PEM key file), ``memory.InMemorySigner`` (tests, keygen)
and ``keyvault.KeyVaultSigner`` (Azure Key Vault; the private key never leaves the vault). Every
consumer — the SSHSIG writer, the package signature, the PAdES adapter — only calls ``sign`` and
``public_key``; nothing else about the key is assumed.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from evidence.errors import PackageError

PublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: The smallest RSA key we sign with (NIST SP 800-57: 3072 bits for use beyond 2030).
MIN_RSA_BITS = 3072


class SigningError(PackageError):
    """A signature could not be made (key unusable, vault refused, timestamp authority down)."""


class Algorithm(StrEnum):
    """Signature schemes the tool produces, named by what they are, not by a JOSE/SSH alias."""

    ED25519 = "ed25519"
    ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
    RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
    RSA_PSS_SHA256 = "rsa-pss-sha256"

    @property
    def deterministic(self) -> bool:
        """Same key and data give the same signature bytes (ECDSA and PSS are randomized)."""
        return self in (Algorithm.ED25519, Algorithm.RSA_PKCS1V15_SHA256)


class Status(StrEnum):
    """ETSI EN 319 102-1 style outcome of one check."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    INDETERMINATE = "INDETERMINATE"


def default_algorithm(key: PublicKey) -> Algorithm:
    """The scheme a key signs with unless told otherwise; refuses keys the tool does not sign with."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Algorithm.ED25519
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SigningError(
                f"unsupported elliptic curve {key.curve.name}",
                hint="use an Ed25519, ECDSA P-256 or RSA-3072 key",
            )
        return Algorithm.ECDSA_P256_SHA256
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SigningError(
                f"RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required",
                hint="use an Ed25519, ECDSA P-256 or RSA-3072 key",
            )
        return Algorithm.RSA_PKCS1V15_SHA256
    raise SigningError(f"unsupported key type {type(key).__name__}", hint="use an Ed25519, ECDSA P-256 or RSA-3072 key")


def check_algorithm(key: PublicKey, algorithm: Algorithm) -> None:
    """Raise ``SigningError`` unless ``algorithm`` can be used with ``key``."""
    natural = default_algorithm(key)
    if algorithm == natural or (natural is Algorithm.RSA_PKCS1V15_SHA256 and algorithm is Algorithm.RSA_PSS_SHA256):
        return
    raise SigningError(f"algorithm {algorithm} does not fit a {natural} key")


def fingerprint(key: PublicKey) -> str:
    """OpenSSH-style key fingerprint, ``SHA256:`` + unpadded base64 of the SSH wire-format key.

    The same text ``ssh-keygen -l`` and ``ssh-keygen -Y verify`` print, so an auditor can compare it
    by eye with what their tools say.
    """
    blob = base64.b64decode(openssh_public_key(key).split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def openssh_public_key(key: PublicKey) -> str:
    """``ssh-ed25519 AAAA...`` (no comment)."""
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def pem_public_key(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def spki_der(key: PublicKey) -> bytes:
    """The canonical encoding used to compare two public keys."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def as_public_key(key: object) -> PublicKey:
    """Narrow a cryptography public key to the types the tool supports."""
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise SigningError(f"unsupported key type {type(key).__name__}", hint="use an Ed25519, ECDSA P-256 or RSA-3072 key")


def pss_padding() -> padding.PSS:
    # Salt length = digest length: what Azure Key Vault's PS256 produces and what RFC 8017
    # recommends; openssl verifies it with -sigopt rsa_pss_saltlen:32 (or :auto).
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def verify_signature(key: PublicKey, algorithm: Algorithm, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``algorithm``'s signature of ``data`` under ``key``. Never raises."""
    try:
        check_algorithm(key, algorithm)
        if algorithm is Algorithm.ED25519:
            assert isinstance(key, ed25519.Ed25519PublicKey)
            key.verify(signature, data)
        elif algorithm is Algorithm.ECDSA_P256_SHA256:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif algorithm is Algorithm.RSA_PKCS1V15_SHA256:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, data, pss_padding(), hashes.SHA256())
    except (InvalidSignature, SigningError, ValueError):
        return False
    return True


class Signer(ABC):
    """Signs bytes with one key and one scheme.

    Subclasses implement ``public_key`` and ``sign``; everything else has a default derived from
    the public key. ``sign`` returns the scheme's standard encoding: raw 64 bytes for Ed25519,
    DER ``SEQUENCE {r, s}`` for ECDSA, the PKCS#1 octet string for RSA.
    """

    #: Human-readable label carried into the signature file and the report, e.g. "INSECURE DEMO KEY".
    label: str = ""

    @abstractmethod
    def public_key(self) -> PublicKey:
        """The public half of the signing key."""

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the message, not a digest) with ``self.algorithm``."""

    @property
    def algorithm(self) -> Algorithm:
        return default_algorithm(self.public_key())

    @property
    def deterministic(self) -> bool:
        return self.algorithm.deterministic

    def certificate(self) -> x509.Certificate | None:
        """The X.509 certificate for the key, if the signer has one."""
        return None

    def key_id(self) -> str:
        """OpenSSH-style ``SHA256:...`` fingerprint of the public key."""
        return fingerprint(self.public_key())

    @property
    def is_demo_key(self) -> bool:
        """Whether this is the well-known, public, insecure demo key shipped in ``samples/keys``."""
        from evidence.sign.demo import is_demo_key

        return is_demo_key(self.public_key())
