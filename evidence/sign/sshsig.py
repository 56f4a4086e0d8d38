"""OpenSSH signatures (SSHSIG), written and verified with ``cryptography`` alone.

Format: https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig . Chosen because
``ssh-keygen -Y verify`` is on every auditor's laptop (OpenSSH >= 8.1) and takes Ed25519, ECDSA
P-256 and RSA keys. The writer's output for Ed25519 is byte-identical to ``ssh-keygen -Y sign``
(feasibility study, section 3.1; re-checked in tests/test_sign.py).

Key types and the signature algorithm used inside SSHSIG:

=================  ========================  =====================================
our algorithm      SSH key type              SSHSIG signature type
=================  ========================  =====================================
ed25519            ssh-ed25519               ssh-ed25519
ecdsa-p256-sha256  ecdsa-sha2-nistp256       ecdsa-sha2-nistp256 (SHA-256, mpint r, s)
rsa-pkcs1v15-sha256  ssh-rsa                 rsa-sha2-256 (the spec allows -256 and -512)
rsa-pss-sha256     —                         not representable: refused
=================  ========================  =====================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, replace
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from evidence.sign.interface import (
    Algorithm,
    PublicKey,
    Signer,
    SigningError,
    as_public_key,
    fingerprint,
    openssh_public_key,
)

NAMESPACE = "evidence-package"
MAGIC = b"SSHSIG"
VERSION = 1
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
#: The message hash SSHSIG signs over; ssh-keygen's default, and what the spec recommends.
HASH_ALGORITHM = "sha512"
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
_LINE = 70  # ssh-keygen wraps the armour at 70 columns


class Reason(StrEnum):
    """Why an SSHSIG did not verify; stable strings for reports and tests."""

    OK = "ok"
    MALFORMED = "malformed signature"
    BAD_VERSION = "unsupported SSHSIG version"
    WRONG_NAMESPACE = "namespace does not match"
    BAD_HASH = "unsupported hash algorithm"
    KEY_TYPE_MISMATCH = "signature type does not match the key type"
    UNSUPPORTED_KEY = "unsupported key type"
    BAD_SIGNATURE = "incorrect signature"


@dataclass(frozen=True)
class SshsigResult:
    """Outcome of verifying one SSHSIG. ``public_key`` is the key *inside* the signature: whether
    it is trusted is a separate question the caller answers."""

    valid: bool
    reason: Reason
    detail: str = ""
    public_key: PublicKey | None = None
    namespace: str = ""
    hash_algorithm: str = ""

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.public_key) if self.public_key is not None else None


# -- wire helpers -------------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    # RFC 4251 mpint: two's complement, big-endian, a leading zero byte when the top bit is set.
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _string(raw)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def raw(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise ValueError("truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.raw(4))[0]
        return value

    def string(self) -> bytes:
        return self.raw(self.uint32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self._pos == len(self._data)


def public_key_blob(key: PublicKey) -> bytes:
    """The SSH wire encoding of ``key`` (what ``ssh-keygen`` fingerprints)."""
    return base64.b64decode(openssh_public_key(key).split()[1])


def _key_from_blob(blob: bytes) -> PublicKey:
    key_type = _Reader(blob).string().decode("ascii", "replace")
    loaded = serialization.load_ssh_public_key(key_type.encode() + b" " + base64.b64encode(blob))
    return as_public_key(loaded)


def _signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    digest = _HASHES[hash_algorithm](message).digest()
    return MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_algorithm.encode()) + _string(digest)


def _sig_type(algorithm: Algorithm) -> str:
    if algorithm is Algorithm.ED25519:
        return "ssh-ed25519"
    if algorithm is Algorithm.ECDSA_P256_SHA256:
        return "ecdsa-sha2-nistp256"
    if algorithm is Algorithm.RSA_PKCS1V15_SHA256:
        return "rsa-sha2-256"
    raise SigningError(
        f"{algorithm} signatures cannot be written as an OpenSSH signature",
        hint="use RS256 (RSA PKCS#1 v1.5) instead of PS256 for the package signature key",
    )


# -- writer -------------------------------------------------------------------------------------


def sign(message: bytes, signer: Signer, *, namespace: str = NAMESPACE) -> str:
    """An armoured SSHSIG over ``message``, as ``ssh-keygen -Y sign -n NAMESPACE`` writes it."""
    algorithm = signer.algorithm
    sig_type = _sig_type(algorithm)
    public = signer.public_key()
    raw = signer.sign(_signed_data(namespace, HASH_ALGORITHM, message))
    if algorithm is Algorithm.ECDSA_P256_SHA256:
        r, s = decode_dss_signature(raw)
        raw = _mpint(r) + _mpint(s)
    blob = (
        MAGIC
        + struct.pack(">I", VERSION)
        + _string(public_key_blob(public))
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALGORITHM.encode())
        + _string(_string(sig_type.encode()) + _string(raw))
    )
    b64 = base64.b64encode(blob).decode()
    lines = [b64[i : i + _LINE] for i in range(0, len(b64), _LINE)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def allowed_signers_line(identity: str, key: PublicKey, *, namespace: str = NAMESPACE) -> str:
    """One ``allowed_signers`` line (ssh-keygen(1) ALLOWED SIGNERS) for ``ssh-keygen -Y verify -f``."""
    if not identity or any(c.isspace() or c in '",' for c in identity):
        raise ValueError(f"identity {identity!r} must be non-empty, without spaces, quotes or commas")
    return f'{identity} namespaces="{namespace}" {openssh_public_key(key)}\n'


# -- verifier -----------------------------------------------------------------------------------


def _dearmor(text: str) -> bytes:
    body = text.strip()
    if not (body.startswith(BEGIN) and body.endswith(END)):
        raise ValueError("missing SSH SIGNATURE armour")
    inner = "".join(body[len(BEGIN) : -len(END)].split())
    return base64.b64decode(inner, validate=True)


def _verify_raw(key: PublicKey, sig_type: str, sig: bytes, data: bytes) -> Reason:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if sig_type != "ssh-ed25519":
                return Reason.KEY_TYPE_MISMATCH
            key.verify(sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if sig_type != "ecdsa-sha2-nistp256" or not isinstance(key.curve, ec.SECP256R1):
                return Reason.KEY_TYPE_MISMATCH
            reader = _Reader(sig)
            r, s = reader.mpint(), reader.mpint()
            if not reader.done() or r <= 0 or s <= 0:
                return Reason.MALFORMED
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        else:
            # ssh-rsa (SHA-1) is refused, as ssh-keygen refuses it for SSHSIG.
            digests: dict[str, hashes.HashAlgorithm] = {
                "rsa-sha2-256": hashes.SHA256(),
                "rsa-sha2-512": hashes.SHA512(),
            }
            if sig_type not in digests:
                return Reason.KEY_TYPE_MISMATCH
            key.verify(sig, data, padding.PKCS1v15(), digests[sig_type])
    except InvalidSignature:
        return Reason.BAD_SIGNATURE
    return Reason.OK


def verify(armored: str | bytes, message: bytes, *, namespace: str = NAMESPACE) -> SshsigResult:
    """Check an armoured SSHSIG over ``message``; never raises for bad input, returns the reason.

    Checks, in order: armour and structure, version, namespace, hash algorithm, that the signature
    type fits the embedded key, and the signature itself. Trust in the key is not decided here.
    """
    text = armored.decode("ascii", "replace") if isinstance(armored, bytes) else armored
    try:
        reader = _Reader(_dearmor(text))
        if reader.raw(6) != MAGIC:
            return SshsigResult(False, Reason.MALFORMED, "bad magic")
        version = reader.uint32()
        if version != VERSION:
            return SshsigResult(False, Reason.BAD_VERSION, f"version {version}")
        key_blob = reader.string()
        found_namespace = reader.string().decode("utf-8")
        reader.string()  # reserved
        hash_algorithm = reader.string().decode("ascii")
        sig_reader = _Reader(reader.string())
        if not reader.done():
            return SshsigResult(False, Reason.MALFORMED, "trailing data")
        sig_type = sig_reader.string().decode("ascii")
        sig = sig_reader.string()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        return SshsigResult(False, Reason.MALFORMED, str(exc))
    try:
        key = _key_from_blob(key_blob)
    except (ValueError, SigningError) as exc:
        return SshsigResult(False, Reason.UNSUPPORTED_KEY, str(exc), namespace=found_namespace)
    base = SshsigResult(False, Reason.OK, public_key=key, namespace=found_namespace, hash_algorithm=hash_algorithm)
    if found_namespace != namespace:
        return replace(base, reason=Reason.WRONG_NAMESPACE, detail=f"{found_namespace!r}, expected {namespace!r}")
    if hash_algorithm not in _HASHES:
        return replace(base, reason=Reason.BAD_HASH, detail=hash_algorithm)
    reason = _verify_raw(key, sig_type, sig, _signed_data(namespace, hash_algorithm, message))
    return replace(base, valid=reason is Reason.OK, reason=reason, detail="" if reason is Reason.OK else sig_type)
