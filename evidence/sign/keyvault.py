"""A signer whose private key stays in Azure Key Vault (or Managed HSM).

``sign(data)`` hashes ``data`` here and sends only the 32-byte SHA-256 digest to
``CryptographyClient.sign`` (keys/sign permission, e.g. the "Key Vault Crypto User" role). The public
key comes from ``KeyClient.get_key`` (keys/get) once, and pins the key *version*, so the key that
signs is the key whose fingerprint is recorded even if someone rotates it mid-run.

Algorithms: ES256 for EC P-256 keys; RS256 (default, deterministic, and the only RSA scheme an
OpenSSH signature can carry) or PS256 for RSA keys of at least 3072 bits. Key Vault has no Ed25519.

Both SDK clients are built with the given credential and ``transport`` (the same seam the
collectors use), so the whole exchange — including Key Vault's first, unauthenticated request
that is answered by a 401 challenge naming the tenant — replays from a cassette.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from evidence.errors import UsageError
from evidence.sign.interface import (
    Algorithm,
    PublicKey,
    Signer,
    SigningError,
    as_public_key,
    check_algorithm,
    default_algorithm,
    spki_der,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import HttpTransport
    from azure.keyvault.keys import KeyVaultKey

_PERMISSION_HINT = "the identity needs keys/get and keys/sign on this key (e.g. the 'Key Vault Crypto User' role)"


def public_key_from_jwk(jwk: Any) -> PublicKey:
    """A ``cryptography`` public key from the SDK's ``JsonWebKey`` (EC P-256 or RSA)."""
    # The SDK hands these out as str enums (JsonWebKeyType.EC_HSM) or plain strings.
    kty = str(getattr(jwk.kty, "value", jwk.kty) or "")
    crv = str(getattr(jwk.crv, "value", jwk.crv) or "")
    if kty in ("EC", "EC-HSM"):
        if crv != "P-256":
            raise SigningError(f"Key Vault key uses curve {crv}", hint="use a P-256 (ES256) or RSA-3072 key")
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), ec.SECP256R1()
        )
        return numbers.public_key()
    if kty in ("RSA", "RSA-HSM"):
        return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
    raise SigningError(f"Key Vault key type {kty!r} cannot sign", hint="use an EC P-256 or RSA-3072 key")


def jose_to_der(signature: bytes) -> bytes:
    """Key Vault returns ECDSA signatures as JOSE ``r || s``; X.509, CMS and OpenSSL want DER."""
    if len(signature) != 64:
        raise SigningError(f"Key Vault returned a {len(signature)}-byte ES256 signature; expected 64")
    return encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))


class KeyVaultSigner(Signer):
    """Signs through ``azure.keyvault.keys.crypto.CryptographyClient``; the private key never leaves the vault."""

    def __init__(
        self,
        key_id: str,
        credential: TokenCredential,
        *,
        transport: HttpTransport[Any, Any] | None = None,
        algorithm: Algorithm | None = None,
        certificate: x509.Certificate | None = None,
        label: str = "",
        **client_kwargs: Any,
    ) -> None:
        from azure.keyvault.keys import KeyVaultKeyIdentifier

        try:
            parsed = KeyVaultKeyIdentifier(key_id)
        except ValueError as exc:
            raise UsageError(
                f"{key_id!r} is not a Key Vault key identifier ({exc})",
                hint="use https://VAULT.vault.azure.net/keys/NAME[/VERSION]",
            ) from None
        self._parsed = parsed
        self._credential = credential
        self._kwargs: dict[str, Any] = dict(client_kwargs)
        if transport is not None:
            self._kwargs["transport"] = transport
        self._requested_algorithm = algorithm
        self._certificate = certificate
        self.label = label
        self._key: KeyVaultKey | None = None
        self._public: PublicKey | None = None
        self._algorithm: Algorithm | None = None
        self._crypto: Any = None

    @classmethod
    def from_key_id(
        cls,
        key_id: str,
        credential: TokenCredential,
        *,
        certificate_path: str | Path | None = None,
        transport: HttpTransport[Any, Any] | None = None,
        algorithm: Algorithm | None = None,
        label: str = "",
    ) -> KeyVaultSigner:
        """Like the constructor, with the certificate read from a PEM/DER file (``UsageError`` if unreadable)."""
        from evidence.sign.local import load_certificate

        cert = load_certificate(Path(certificate_path)) if certificate_path else None
        return cls(key_id, credential, transport=transport, algorithm=algorithm, certificate=cert, label=label)

    @property
    def key_vault_key_id(self) -> str:
        """The versioned key identifier that signs (after the first call), else the one given."""
        return str(self._key.id) if self._key is not None else self._parsed.source_id

    def _load(self) -> None:
        if self._key is not None:
            return
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.keyvault.keys import KeyClient
        from azure.keyvault.keys.crypto import CryptographyClient

        client = KeyClient(self._parsed.vault_url, self._credential, **self._kwargs)
        try:
            key = client.get_key(self._parsed.name, self._parsed.version)
        except HttpResponseError as exc:
            raise SigningError(
                f"Key Vault refused to return key {self._parsed.source_id} (HTTP {exc.status_code}: {exc.reason})",
                hint=_PERMISSION_HINT,
            ) from None
        except AzureError as exc:
            raise SigningError(
                f"cannot reach Key Vault at {self._parsed.vault_url}: {exc.message}",
                hint="check the key id, the network and the credential",
            ) from None
        public = as_public_key(public_key_from_jwk(key.key))
        algorithm = self._requested_algorithm or default_algorithm(public)
        check_algorithm(public, algorithm)
        if self._certificate is not None and spki_der(as_public_key(self._certificate.public_key())) != spki_der(
            public
        ):
            raise SigningError(
                f"the certificate does not belong to Key Vault key {key.id}",
                hint="pass the certificate issued for this key version",
            )
        # Passing the KeyVaultKey (not its id) pins the version and spares a second get_key.
        self._crypto = CryptographyClient(key, self._credential, **self._kwargs)
        self._key, self._public, self._algorithm = key, public, algorithm

    def public_key(self) -> PublicKey:
        self._load()
        assert self._public is not None
        return self._public

    @property
    def algorithm(self) -> Algorithm:
        self._load()
        assert self._algorithm is not None
        return self._algorithm

    def certificate(self) -> x509.Certificate | None:
        return self._certificate

    def sign(self, data: bytes) -> bytes:
        """Hash ``data`` locally; only the SHA-256 digest goes to the vault."""
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        algorithm = self.algorithm
        jose = {
            Algorithm.ECDSA_P256_SHA256: SignatureAlgorithm.es256,
            Algorithm.RSA_PKCS1V15_SHA256: SignatureAlgorithm.rs256,
            Algorithm.RSA_PSS_SHA256: SignatureAlgorithm.ps256,
        }[algorithm]
        digest = hashlib.sha256(data).digest()
        try:
            result = self._crypto.sign(jose, digest)
        except HttpResponseError as exc:
            raise SigningError(
                f"Key Vault refused to sign with {self.key_vault_key_id} (HTTP {exc.status_code}: {exc.reason})",
                hint=_PERMISSION_HINT,
            ) from None
        except AzureError as exc:
            raise SigningError(f"Key Vault signing failed: {exc.message}", hint="check the network") from None
        signature: bytes = result.signature
        return jose_to_der(signature) if algorithm is Algorithm.ECDSA_P256_SHA256 else signature
