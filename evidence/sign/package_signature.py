"""The package's detached signature over ``tagmanifest-sha256.txt``, and its verifier.

``tagmanifest-sha256.txt`` pins ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` (which pins
every payload file) and any other tag file such as ``VERIFY.txt``, so one signature covers the whole
package. The signature files live in ``signature/`` at the bag root; they cannot be listed in the tag
manifest they sign (bag validators accept unlisted tag directories). Files, relative to the bag root:

``signature/package-signature.json``
    The documented, versioned record (``"format": "evidence-package-signature/v1"``): algorithm,
    signed file and its SHA-256, both signatures, public key (OpenSSH and PEM), certificate (PEM or
    null), key fingerprint, signing time (the package clock), signer label, and the other files.
``signature/tagmanifest-sha256.txt.sig``
    OpenSSH signature, namespace ``evidence-package``: ``ssh-keygen -Y verify``.
``signature/tagmanifest-sha256.txt.rawsig``
    The signer's plain signature over the manifest bytes: ``openssl pkeyutl``/``openssl dgst``.
``signature/public-key.pem`` and ``signature/allowed_signers``
    The key in the two forms those tools read. They are *claims*: trust comes only from a key or
    certificate the verifier is given (``--trust``), never from the package itself.
``signature/signer.cert.pem``
    Only when the signer has a certificate.

The signing time in the JSON is not itself signed (SSHSIG has no signed attributes); the package
clock is also in ``bag-info.txt``, which the signature does cover.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from evidence.clock import isoformat, parse_timestamp
from evidence.errors import UsageError, VerificationError
from evidence.sign import sshsig
from evidence.sign.demo import DEMO_KEY_FINGERPRINT
from evidence.sign.interface import (
    Algorithm,
    PublicKey,
    Signer,
    SigningError,
    Status,
    as_public_key,
    fingerprint,
    openssh_public_key,
    pem_public_key,
    spki_der,
    verify_signature,
)

FORMAT = "evidence-package-signature/v1"
SIGNED_FILE = "tagmanifest-sha256.txt"
SIGNATURE_DIR = "signature"
JSON_FILE = f"{SIGNATURE_DIR}/package-signature.json"
SSHSIG_FILE = f"{SIGNATURE_DIR}/{SIGNED_FILE}.sig"
RAW_SIGNATURE_FILE = f"{SIGNATURE_DIR}/{SIGNED_FILE}.rawsig"
PUBLIC_KEY_FILE = f"{SIGNATURE_DIR}/public-key.pem"
ALLOWED_SIGNERS_FILE = f"{SIGNATURE_DIR}/allowed_signers"
CERTIFICATE_FILE = f"{SIGNATURE_DIR}/signer.cert.pem"
#: The principal in ``allowed_signers`` and the ``-I`` of ``ssh-keygen -Y verify``.
DEFAULT_IDENTITY = "evidence-signer"


# -- signing ------------------------------------------------------------------------------------


def sign_tag_manifest(
    tagmanifest_bytes: bytes,
    signer: Signer,
    *,
    signed_at: datetime,
    identity: str = DEFAULT_IDENTITY,
) -> dict[str, bytes]:
    """Sign the tag manifest; returns ``{path relative to the bag root: contents}``.

    Byte-for-byte deterministic for deterministic schemes (Ed25519, RSA PKCS#1 v1.5): every field
    comes from the inputs. Makes two signatures (SSHSIG and raw), so a Key Vault signer is called twice.
    """
    public = signer.public_key()
    algorithm = signer.algorithm
    armored = sshsig.sign(tagmanifest_bytes, signer, namespace=sshsig.NAMESPACE)
    raw = signer.sign(tagmanifest_bytes)
    cert = signer.certificate()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode() if cert is not None else None
    key_fp = fingerprint(public)
    files: dict[str, bytes] = {
        SSHSIG_FILE: armored.encode(),
        RAW_SIGNATURE_FILE: raw,
        PUBLIC_KEY_FILE: pem_public_key(public).encode(),
        ALLOWED_SIGNERS_FILE: sshsig.allowed_signers_line(identity, public).encode(),
    }
    if cert_pem is not None:
        files[CERTIFICATE_FILE] = cert_pem.encode()
    record: dict[str, Any] = {
        "format": FORMAT,
        "signed_file": SIGNED_FILE,
        "signed_file_sha256": hashlib.sha256(tagmanifest_bytes).hexdigest(),
        "algorithm": str(algorithm),
        "deterministic": algorithm.deterministic,
        "namespace": sshsig.NAMESPACE,
        "identity": identity,
        "sshsig": armored,
        "raw_signature_base64": base64.b64encode(raw).decode(),
        "public_key_openssh": openssh_public_key(public),
        "public_key_pem": pem_public_key(public),
        "certificate_pem": cert_pem,
        "key_fingerprint": key_fp,
        "signed_at": isoformat(signed_at),
        "signer_label": signer.label,
        "insecure_demo_key": key_fp == DEMO_KEY_FINGERPRINT,
        "files": sorted(files),
    }
    files[JSON_FILE] = (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    return dict(sorted(files.items()))


# -- trust anchors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustAnchor:
    """A key the verifier was told to trust: pinned directly, or a CA certificate."""

    public_key: PublicKey
    source: str
    certificate: x509.Certificate | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @classmethod
    def from_certificate(cls, cert: x509.Certificate, source: str = "") -> TrustAnchor:
        return cls(as_public_key(cert.public_key()), source or cert.subject.rfc4514_string(), cert)

    @classmethod
    def from_public_key(cls, key: PublicKey, source: str = "") -> TrustAnchor:
        return cls(key, source or fingerprint(key))


def parse_trust_anchor(data: bytes, source: str) -> TrustAnchor:
    """Read a certificate (PEM/DER), a PEM public key, an OpenSSH public key or an allowed_signers line."""
    text = data.decode("utf-8", "replace")
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            return TrustAnchor.from_certificate(x509.load_pem_x509_certificate(data), source)
        if "-----BEGIN PUBLIC KEY-----" in text:
            return TrustAnchor.from_public_key(as_public_key(serialization.load_pem_public_key(data)), source)
        for line in text.splitlines():
            words = line.split()
            for i, word in enumerate(words[:-1]):
                if word.startswith(("ssh-", "ecdsa-sha2-")):
                    key = serialization.load_ssh_public_key(f"{word} {words[i + 1]}".encode())
                    return TrustAnchor.from_public_key(as_public_key(key), source)
        return TrustAnchor.from_certificate(x509.load_der_x509_certificate(data), source)
    except (ValueError, SigningError) as exc:
        raise UsageError(
            f"{source} is not a certificate or public key ({exc})",
            hint="pass a PEM/DER X.509 certificate, a PEM public key or an OpenSSH public key",
        ) from None


def load_trust_anchor(path: str | Path) -> TrustAnchor:
    """``parse_trust_anchor`` for a file; ``UsageError`` when it cannot be read or parsed."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read trust anchor {file}: {exc.strerror or exc}", hint="check the --trust path"
        ) from None
    return parse_trust_anchor(data, str(file))


# -- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureVerdict:
    """The package signature, with intact / valid / trusted kept apart as pyHanko does.

    * ``intact``: the tag manifest is the one that was signed (its SHA-256 matches the record).
    * ``valid``: the signatures verify under the key they name, and the signature files agree.
    * ``trusted``: that key is one of the trust anchors (or is certified by one).

    Only all three together pass. A valid signature by an untrusted key is INDETERMINATE, not a pass.
    """

    intact: bool
    valid: bool
    trusted: bool
    reason: str
    algorithm: str | None = None
    key_fingerprint: str | None = None
    signed_at: str | None = None
    signer_label: str = ""
    certificate_subject: str | None = None
    trusted_by: str | None = None

    @property
    def demo_key(self) -> bool:
        """Signed with the public demo key (decided by fingerprint, not by anything the package claims)."""
        return self.key_fingerprint == DEMO_KEY_FINGERPRINT

    @property
    def passed(self) -> bool:
        return self.intact and self.valid and self.trusted

    @property
    def status(self) -> Status:
        if not (self.intact and self.valid):
            return Status.FAILED
        return Status.PASSED if self.trusted else Status.INDETERMINATE

    def raise_for_failure(self) -> None:
        if not self.passed:
            raise VerificationError(f"package signature {self.status}: {self.reason}")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "reason": self.reason,
            "algorithm": self.algorithm,
            "key_fingerprint": self.key_fingerprint,
            "signed_at": self.signed_at,
            "signer_label": self.signer_label,
            "demo_key": self.demo_key,
            "certificate_subject": self.certificate_subject,
            "trusted_by": self.trusted_by,
        }


def _failed(reason: str, **known: Any) -> SignatureVerdict:
    return SignatureVerdict(intact=known.pop("intact", False), valid=False, trusted=False, reason=reason, **known)


def _trust(
    key: PublicKey, cert: x509.Certificate | None, signed_at: datetime | None, trust: Sequence[TrustAnchor]
) -> tuple[str | None, str]:
    """``(anchor source, explanation)``; the source is None when nothing vouches for the key."""
    der = spki_der(key)
    for anchor in trust:
        if spki_der(anchor.public_key) == der:
            return anchor.source, f"key {fingerprint(key)} is pinned by {anchor.source}"
    if cert is not None:
        for anchor in trust:
            if anchor.certificate is None:
                continue
            try:
                cert.verify_directly_issued_by(anchor.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if signed_at is not None and not (cert.not_valid_before_utc <= signed_at <= cert.not_valid_after_utc):
                return None, "the signer's certificate was not valid at the signing time"
            return anchor.source, f"certificate issued by trusted {anchor.source}"
    if not trust:
        return None, f"no trust anchor given; the signer's key {fingerprint(key)} is not trusted"
    return None, f"the signer's key {fingerprint(key)} matches none of the {len(trust)} trust anchor(s)"


def verify_tag_manifest(
    files: Mapping[str, bytes],
    tagmanifest_bytes: bytes,
    trust: Sequence[TrustAnchor],
) -> SignatureVerdict:
    """Verify the signature files (``files``: every file under ``signature/``, keyed as written).

    Fails closed: a missing, extra, malformed or inconsistent file is a FAILED verdict with its reason.
    """
    raw_json = files.get(JSON_FILE)
    if raw_json is None:
        return _failed(f"package is not signed ({JSON_FILE} is missing)")
    try:
        record = json.loads(raw_json)
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        return _failed(f"{JSON_FILE} is not valid JSON ({exc})")
    if record.get("format") != FORMAT:
        return _failed(f"unsupported signature format {record.get('format')!r} (this verifier reads {FORMAT})")
    try:
        algorithm = Algorithm(record["algorithm"])
        listed = set(record["files"])
        signed_file = record["signed_file"]
        expected_sha = record["signed_file_sha256"]
        signed_at_text = record["signed_at"]
        label = str(record.get("signer_label") or "")
        cert_pem = record.get("certificate_pem")
    except (KeyError, TypeError, ValueError) as exc:
        return _failed(f"{JSON_FILE} lacks or garbles a required field ({exc})")
    known: dict[str, Any] = {"algorithm": str(algorithm), "signed_at": signed_at_text, "signer_label": label}

    present = {name for name in files if name != JSON_FILE}
    if present != listed:
        missing, extra = sorted(listed - present), sorted(present - listed)
        what = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}"
        return _failed(f"signature files do not match the record: {what}", **known)
    if signed_file != SIGNED_FILE:
        return _failed(f"the signature is over {signed_file!r}, not {SIGNED_FILE}", **known)
    intact = hashlib.sha256(tagmanifest_bytes).hexdigest() == expected_sha
    known["intact"] = intact

    sig_text = files.get(SSHSIG_FILE)
    if sig_text is None or sig_text.decode("ascii", "replace") != record.get("sshsig"):
        return _failed(f"{SSHSIG_FILE} is missing or differs from the record", **known)
    result = sshsig.verify(sig_text, tagmanifest_bytes, namespace=sshsig.NAMESPACE)
    key = result.public_key
    if key is not None:
        known["key_fingerprint"] = fingerprint(key)
    if not result.valid or key is None:
        why = "the tag manifest changed after signing" if not intact else "OpenSSH signature"
        return _failed(f"{why}: {result.reason}{f' ({result.detail})' if result.detail else ''}", **known)
    if not intact:  # pragma: no cover - a different manifest cannot carry a valid signature
        return _failed("the tag manifest changed after signing (SHA-256 mismatch)", **known)

    # Every other file must say the same thing about the key as the signature itself.
    if record.get("public_key_openssh") != openssh_public_key(key) or record.get("key_fingerprint") != fingerprint(key):
        return _failed("the record names a different key than the OpenSSH signature", **known)
    try:
        pem_key = as_public_key(serialization.load_pem_public_key(files.get(PUBLIC_KEY_FILE, b"")))
    except (ValueError, SigningError):
        return _failed(f"{PUBLIC_KEY_FILE} is not a PEM public key", **known)
    if spki_der(pem_key) != spki_der(key):
        return _failed(f"{PUBLIC_KEY_FILE} is a different key than the OpenSSH signature's", **known)
    identity = str(record.get("identity") or DEFAULT_IDENTITY)
    try:
        expected_allowed = sshsig.allowed_signers_line(identity, key).encode()
    except ValueError:
        return _failed("the record's identity is not a valid principal", **known)
    if files.get(ALLOWED_SIGNERS_FILE) != expected_allowed:
        return _failed(f"{ALLOWED_SIGNERS_FILE} does not name the signing key", **known)
    raw = files.get(RAW_SIGNATURE_FILE, b"")
    if record.get("raw_signature_base64") != base64.b64encode(raw).decode():
        return _failed(f"{RAW_SIGNATURE_FILE} differs from the record", **known)
    if not verify_signature(key, algorithm, tagmanifest_bytes, raw):
        return _failed(f"{RAW_SIGNATURE_FILE} does not verify with {algorithm}", **known)

    cert: x509.Certificate | None = None
    if cert_pem is not None:
        if files.get(CERTIFICATE_FILE) != str(cert_pem).encode():
            return _failed(f"{CERTIFICATE_FILE} differs from the record", **known)
        try:
            cert = x509.load_pem_x509_certificate(str(cert_pem).encode())
            cert_key = as_public_key(cert.public_key())
        except (ValueError, SigningError):
            return _failed("the record's certificate cannot be read", **known)
        if spki_der(cert_key) != spki_der(key):
            return _failed("the certificate belongs to a different key than the signature", **known)
        known["certificate_subject"] = cert.subject.rfc4514_string()

    try:
        signed_at = parse_timestamp(str(signed_at_text))
    except ValueError:
        return _failed(f"unreadable signing time {signed_at_text!r}", **known)
    anchor, explanation = _trust(key, cert, signed_at, trust)
    known.pop("intact")
    return SignatureVerdict(
        intact=True, valid=True, trusted=anchor is not None, reason=explanation, trusted_by=anchor, **known
    )


# -- instructions for standard tools ------------------------------------------------------------


def verify_instructions(
    root_name: str,
    fingerprint: str,
    *,
    algorithm: Algorithm | str | None = None,
    identity: str = DEFAULT_IDENTITY,
) -> str:
    """The text of ``VERIFY.txt``: how to check the package with sha256sum, ssh-keygen and openssl."""
    alg = Algorithm(algorithm) if algorithm is not None else None
    rawsig = RAW_SIGNATURE_FILE
    if alg is Algorithm.ED25519:
        openssl = [
            f"openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_FILE} -rawin -in {SIGNED_FILE} -sigfile {rawsig}"
        ]
    elif alg is Algorithm.RSA_PSS_SHA256:
        openssl = [
            f"openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 "
            f"-verify {PUBLIC_KEY_FILE} -signature {rawsig} {SIGNED_FILE}"
        ]
    elif alg is not None:
        openssl = [f"openssl dgst -sha256 -verify {PUBLIC_KEY_FILE} -signature {rawsig} {SIGNED_FILE}"]
    else:
        openssl = [
            "# Ed25519 keys:",
            f"openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_FILE} -rawin -in {SIGNED_FILE} -sigfile {rawsig}",
            "# ECDSA P-256 and RSA keys:",
            f"openssl dgst -sha256 -verify {PUBLIC_KEY_FILE} -signature {rawsig} {SIGNED_FILE}",
        ]
    demo = (
        [
            "",
            "WARNING: this package is signed with the PUBLIC, INSECURE DEMO KEY shipped with the evidence",
            "tool. Anyone can make such a signature. It proves nothing about who produced the package.",
        ]
        if fingerprint == DEMO_KEY_FINGERPRINT
        else []
    )
    lines = [
        f"How to verify this evidence package ({root_name}) with standard tools",
        "=" * 72,
        "",
        "The easiest check is `evidence verify PACKAGE.zip --trust SIGNER_CERT_OR_KEY`. Without the tool:",
        "",
        f"Signing key fingerprint: {fingerprint}",
        "Compare it with the fingerprint the signer gave you through another channel. The key files in",
        "signature/ come from the package itself; on their own they prove integrity, not authorship.",
        *demo,
        "",
        f"1. Unzip the package and change into its folder:  cd {root_name}",
        "",
        "2. Check every file against the manifests (each line must say OK):",
        f"   sha256sum -c {SIGNED_FILE}",
        "   sha256sum -c manifest-sha256.txt",
        "",
        f"3. Check the signature over {SIGNED_FILE} (OpenSSH 8.1 or later). Best, with an allowed_signers",
        "   file you made yourself from the signer's published key; or with the one in the package:",
        f"   ssh-keygen -Y verify -f {ALLOWED_SIGNERS_FILE} -I {identity} -n {sshsig.NAMESPACE} "
        f"-s {SSHSIG_FILE} < {SIGNED_FILE}",
        f'   Expect: Good "{sshsig.NAMESPACE}" signature for {identity} with ... key {fingerprint}',
        "",
        "   Or with OpenSSL (the same key, a plain signature over the same file):",
        *(f"   {line}" for line in openssl),
        "   Expect: Verified OK  /  Signature Verified Successfully",
        "",
        "4. The PDF report carries its own PAdES signature; any PDF reader shows who signed it.",
        "",
        f"The signature record is {JSON_FILE} (format {FORMAT}).",
        "",
    ]
    return "\n".join(lines)
