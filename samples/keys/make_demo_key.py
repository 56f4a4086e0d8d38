"""Generate the public, INSECURE demo signing key and certificate. Run once; the output is committed.

    python samples/keys/make_demo_key.py

RSA-3072 with PKCS#1 v1.5 signatures: deterministic (the same package gives the same signature
bytes, so demo zips are reproducible), verifiable by ``ssh-keygen -Y verify`` and ``openssl``, and
— unlike Ed25519 — accepted by PDF readers for the report's PAdES signature (poppler's pdfsig
reports an Ed25519 PAdES signature as "Document isn't signed or corrupted data").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from evidence.sign.keygen import new_private_key, private_key_pem, self_signed_certificate

HERE = Path(__file__).resolve().parent
COMMON_NAME = "INSECURE DEMO KEY - evidence tool sample signer - DO NOT TRUST"


def main() -> None:
    key = new_private_key("rsa-3072")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    cert = self_signed_certificate(key, COMMON_NAME, start, validity=timedelta(days=80 * 365))
    (HERE / "INSECURE-demo-signer.key.pem").write_bytes(private_key_pem(key))
    (HERE / "INSECURE-demo-signer.cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    main()
