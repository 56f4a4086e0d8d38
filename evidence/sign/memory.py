"""A signer whose private key lives in this process: for tests, keygen and the local-file signer."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from evidence.sign.interface import (
    Algorithm,
    PrivateKey,
    PublicKey,
    Signer,
    SigningError,
    as_public_key,
    check_algorithm,
    default_algorithm,
    pss_padding,
    spki_der,
)


class InMemorySigner(Signer):
    """Signs with a ``cryptography`` private key object held in memory."""

    def __init__(
        self,
        private_key: PrivateKey,
        certificate: x509.Certificate | None = None,
        *,
        algorithm: Algorithm | None = None,
        label: str = "",
    ) -> None:
        public = as_public_key(private_key.public_key())
        self._algorithm = algorithm or default_algorithm(public)
        check_algorithm(public, self._algorithm)
        if certificate is not None and spki_der(as_public_key(certificate.public_key())) != spki_der(public):
            raise SigningError("the certificate does not belong to the private key")
        self._key = private_key
        self._public = public
        self._certificate = certificate
        self.label = label

    @classmethod
    def generate(cls, kind: str = "ed25519", *, label: str = "") -> InMemorySigner:
        """A fresh key of ``kind`` ("ed25519", "ecdsa-p256" or "rsa-3072"), no certificate."""
        from evidence.sign.keygen import new_private_key

        return cls(new_private_key(kind), label=label)

    @property
    def private_key(self) -> PrivateKey:
        return self._key

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    def public_key(self) -> PublicKey:
        return self._public

    def certificate(self) -> x509.Certificate | None:
        return self._certificate

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if self._algorithm is Algorithm.RSA_PSS_SHA256:
            return key.sign(data, pss_padding(), hashes.SHA256())
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
