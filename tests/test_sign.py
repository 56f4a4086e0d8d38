"""The sign stage: signers, SSHSIG, the package signature and its verifier, keygen, the demo key."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from evidence.azure.cassette import Entry
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.errors import UsageError, VerificationError
from evidence.sign import sshsig
from evidence.sign.demo import DEMO_KEY_FINGERPRINT, DEMO_LABEL, demo_signer
from evidence.sign.interface import Algorithm, SigningError, Status, fingerprint, openssh_public_key
from evidence.sign.keygen import generate_key, new_private_key, private_key_pem, self_signed_certificate
from evidence.sign.keyvault import KeyVaultSigner, jose_to_der
from evidence.sign.local import LocalKeySigner
from evidence.sign.memory import InMemorySigner
from evidence.sign.package_signature import (
    ALLOWED_SIGNERS_FILE,
    JSON_FILE,
    PUBLIC_KEY_FILE,
    RAW_SIGNATURE_FILE,
    SSHSIG_FILE,
    TrustAnchor,
    load_trust_anchor,
    parse_trust_anchor,
    sign_tag_manifest,
    verify_instructions,
    verify_tag_manifest,
)

REPO = Path(__file__).resolve().parent.parent
SIGNED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)
KINDS = ["ed25519", "ecdsa-p256", "rsa-3072"]
MANIFEST = (
    b"1f0a9c0d3e9a2f5c8b7e6d5c4b3a29181716151413121110090807060504030201  bag-info.txt\n"
    b"2f0a9c0d3e9a2f5c8b7e6d5c4b3a29181716151413121110090807060504030201  bagit.txt\n"
    b"3f0a9c0d3e9a2f5c8b7e6d5c4b3a29181716151413121110090807060504030201  manifest-sha256.txt\n"
)
SSH_KEYGEN = shutil.which("ssh-keygen")
OPENSSL = shutil.which("openssl")
needs_ssh_keygen = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen (OpenSSH >= 8.1) is not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")

_SIGNERS: dict[str, InMemorySigner] = {}


def signer_for(kind: str) -> InMemorySigner:
    """One key per kind per test session (RSA-3072 generation takes a while)."""
    if kind not in _SIGNERS:
        key = new_private_key(kind)
        _SIGNERS[kind] = InMemorySigner(key, self_signed_certificate(key, f"Test {kind}", VALID_FROM))
    return _SIGNERS[kind]


def anchor_for(signer: InMemorySigner) -> TrustAnchor:
    cert = signer.certificate()
    assert cert is not None
    return TrustAnchor.from_certificate(cert, "test-cert.pem")


def write_tree(root: Path, files: dict[str, bytes], manifest: bytes = MANIFEST) -> Path:
    (root / "tagmanifest-sha256.txt").write_bytes(manifest)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# -- signers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_key_type_signs_and_verifies_the_package(kind: str) -> None:
    signer = signer_for(kind)
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST, [anchor_for(signer)])
    assert verdict.passed, verdict.reason
    assert verdict.status is Status.PASSED
    assert (verdict.intact, verdict.valid, verdict.trusted) == (True, True, True)
    assert verdict.key_fingerprint == signer.key_id()
    assert verdict.signed_at == "2025-03-01T12:00:00Z"
    assert verdict.certificate_subject == f"CN=Test {kind}"
    verdict.raise_for_failure()


def test_algorithms_and_determinism_flags() -> None:
    assert signer_for("ed25519").algorithm is Algorithm.ED25519
    assert signer_for("ecdsa-p256").algorithm is Algorithm.ECDSA_P256_SHA256
    assert signer_for("rsa-3072").algorithm is Algorithm.RSA_PKCS1V15_SHA256
    assert [signer_for(k).deterministic for k in KINDS] == [True, False, True]
    pss = InMemorySigner(signer_for("rsa-3072").private_key, algorithm=Algorithm.RSA_PSS_SHA256)
    assert not pss.deterministic


def test_password_protected_key_loads_with_its_password(tmp_path: Path) -> None:
    key_pem, cert_pem = generate_key("ecdsa-p256", "Protected", VALID_FROM, password=b"s3cret")
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "c.pem").write_bytes(cert_pem)
    signer = LocalKeySigner.from_files(tmp_path / "k.pem", tmp_path / "c.pem", password="s3cret")
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    assert verify_tag_manifest(files, MANIFEST, [load_trust_anchor(tmp_path / "c.pem")]).passed


def _message(exc_info: pytest.ExceptionInfo[UsageError]) -> str:
    return exc_info.value.diagnostics()


def test_key_file_problems_are_one_line_usage_errors(tmp_path: Path) -> None:
    key_pem, _ = generate_key("ed25519", "x", VALID_FROM, password=b"right")
    protected = tmp_path / "protected.pem"
    protected.write_bytes(key_pem)
    with pytest.raises(UsageError) as missing_pw:
        LocalKeySigner.from_files(protected)
    assert "protected.pem is password-protected" in _message(missing_pw)
    with pytest.raises(UsageError) as wrong_pw:
        LocalKeySigner.from_files(protected, password=b"wrong")
    assert "wrong password for signing key" in _message(wrong_pw)
    with pytest.raises(UsageError) as absent:
        LocalKeySigner.from_files(tmp_path / "nope.pem")
    assert "cannot read signing key" in _message(absent) and "nope.pem" in _message(absent)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    with pytest.raises(UsageError) as not_pem:
        LocalKeySigner.from_files(garbage)
    assert "garbage.pem is not a readable PEM private key" in _message(not_pem)
    for exc in (missing_pw, wrong_pw, absent, not_pem):
        assert "\n" not in _message(exc)


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa2048"),
    ],
)
def test_unsupported_keys_are_refused(tmp_path: Path, make_key: Callable[[], ec.EllipticCurvePrivateKey]) -> None:
    path = tmp_path / "weak.pem"
    path.write_bytes(private_key_pem(make_key()))
    with pytest.raises(UsageError, match=r"cannot sign with .*weak\.pem"):
        LocalKeySigner.from_files(path)


def test_certificate_must_belong_to_the_key(tmp_path: Path) -> None:
    key_pem, _ = generate_key("ed25519", "a", VALID_FROM)
    _, other_cert = generate_key("ed25519", "b", VALID_FROM)
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "c.pem").write_bytes(other_cert)
    with pytest.raises(UsageError, match="certificate does not belong"):
        LocalKeySigner.from_files(tmp_path / "k.pem", tmp_path / "c.pem")


def test_keygen_makes_a_document_signing_certificate(tmp_path: Path) -> None:
    for kind in KINDS:
        key_pem, cert_pem = generate_key(kind, f"Eval {kind}", VALID_FROM)
        cert = x509.load_pem_x509_certificate(cert_pem)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_before_utc == VALID_FROM
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"Eval {kind}"
        (tmp_path / f"{kind}.key").write_bytes(key_pem)
        (tmp_path / f"{kind}.crt").write_bytes(cert_pem)
        assert LocalKeySigner.from_files(tmp_path / f"{kind}.key", tmp_path / f"{kind}.crt").certificate() == cert
    with pytest.raises(UsageError, match="unknown key type 'dsa'"):
        new_private_key("dsa")


# -- SSHSIG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sshsig_roundtrip(kind: str) -> None:
    armored = sshsig.sign(MANIFEST, signer_for(kind))
    result = sshsig.verify(armored, MANIFEST)
    assert result.valid and result.reason is sshsig.Reason.OK
    assert result.fingerprint == signer_for(kind).key_id()


def test_sshsig_wrong_namespace_is_named() -> None:
    armored = sshsig.sign(MANIFEST, signer_for("ed25519"), namespace="git")
    result = sshsig.verify(armored, MANIFEST)
    assert not result.valid and result.reason is sshsig.Reason.WRONG_NAMESPACE


def test_sshsig_tampered_message_is_an_incorrect_signature() -> None:
    armored = sshsig.sign(MANIFEST, signer_for("ecdsa-p256"))
    result = sshsig.verify(armored, MANIFEST + b"x")
    assert not result.valid and result.reason is sshsig.Reason.BAD_SIGNATURE


def test_sshsig_garbage_is_malformed() -> None:
    assert sshsig.verify("not a signature", MANIFEST).reason is sshsig.Reason.MALFORMED
    bad = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
    assert sshsig.verify(bad, MANIFEST).reason is sshsig.Reason.MALFORMED


def test_sshsig_refuses_pss() -> None:
    pss = InMemorySigner(signer_for("rsa-3072").private_key, algorithm=Algorithm.RSA_PSS_SHA256)
    with pytest.raises(SigningError, match="cannot be written as an OpenSSH signature"):
        sshsig.sign(MANIFEST, pss)


@needs_ssh_keygen
@pytest.mark.parametrize("kind", KINDS)
def test_ssh_keygen_signatures_verify_here(kind: str, tmp_path: Path) -> None:
    """Our verifier reads what ssh-keygen writes (RSA: rsa-sha2-512), and Ed25519 is byte-identical."""
    signer = signer_for(kind)
    key_file = tmp_path / "id"
    key_file.write_bytes(
        signer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    (tmp_path / "msg").write_bytes(MANIFEST)
    subprocess.run(
        [str(SSH_KEYGEN), "-q", "-Y", "sign", "-f", str(key_file), "-n", sshsig.NAMESPACE, str(tmp_path / "msg")],
        check=True,
        capture_output=True,
    )
    theirs = (tmp_path / "msg.sig").read_text()
    assert sshsig.verify(theirs, MANIFEST).valid
    if kind == "ed25519":
        assert theirs == sshsig.sign(MANIFEST, signer)


# -- the package signature, checked by standard tools --------------------------------------------


def _run_verify_txt_command(line: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    command, _, stdin_name = line.partition(" < ")
    stdin = (cwd / stdin_name.strip()).read_bytes() if stdin_name else None
    return subprocess.run(shlex.split(command), cwd=cwd, input=stdin, capture_output=True, check=False)


@needs_ssh_keygen
@needs_openssl
@pytest.mark.parametrize("kind", KINDS)
def test_verify_txt_commands_work_with_stock_tools(kind: str, tmp_path: Path) -> None:
    """Run the exact ssh-keygen, openssl and sha256sum commands VERIFY.txt gives."""
    signer = signer_for(kind)
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    root = write_tree(tmp_path, files)
    text = verify_instructions("pkg", signer.key_id(), algorithm=signer.algorithm)
    commands = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("ssh-keygen", "openssl"))]
    assert len(commands) == 2
    for command in commands:
        done = _run_verify_txt_command(command, root)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    ssh = _run_verify_txt_command(commands[0], root)
    assert 'Good "evidence-package" signature for evidence-signer with' in ssh.stdout.decode()
    assert signer.key_id() in ssh.stdout.decode()

    (root / "tagmanifest-sha256.txt").write_bytes(MANIFEST.replace(b"1f0a", b"1f0b"))
    for command in commands:
        assert _run_verify_txt_command(command, root).returncode != 0, command


def test_verify_instructions_without_algorithm_and_for_the_demo_key() -> None:
    text = verify_instructions("release-1", DEMO_KEY_FINGERPRINT)
    assert "cd release-1" in text
    assert "sha256sum -c tagmanifest-sha256.txt" in text
    assert "PUBLIC, INSECURE DEMO KEY" in text
    assert "openssl pkeyutl" in text and "openssl dgst -sha256" in text
    assert "INSECURE" not in verify_instructions("r", signer_for("ed25519").key_id())


# -- verdicts: the attacks --------------------------------------------------------------------


def test_tampered_manifest_is_not_intact() -> None:
    signer = signer_for("ed25519")
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST + b"evil  data/evil.json\n", [anchor_for(signer)])
    assert (verdict.intact, verdict.valid, verdict.trusted) == (False, False, False)
    assert verdict.status is Status.FAILED
    assert "tag manifest changed after signing: incorrect signature" in verdict.reason
    with pytest.raises(VerificationError, match="FAILED"):
        verdict.raise_for_failure()


def test_valid_signature_by_an_untrusted_key_is_not_a_pass() -> None:
    signer = signer_for("ed25519")
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST, [])
    assert (verdict.intact, verdict.valid, verdict.trusted) == (True, True, False)
    assert verdict.status is Status.INDETERMINATE and not verdict.passed
    assert "no trust anchor given" in verdict.reason


def test_resigned_by_a_different_key_is_untrusted() -> None:
    """An attacker changes the package and re-signs it with their own key: valid, but not trusted."""
    genuine, attacker = signer_for("ed25519"), signer_for("ecdsa-p256")
    files = sign_tag_manifest(MANIFEST + b"x", attacker, signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST + b"x", [anchor_for(genuine)])
    assert verdict.valid and not verdict.trusted
    assert "matches none of the 1 trust anchor(s)" in verdict.reason


def test_signature_swapped_from_another_key_is_invalid() -> None:
    """Keep the genuine key files but put in a signature by another key: the files disagree."""
    genuine, attacker = signer_for("ed25519"), signer_for("rsa-3072")
    files = dict(sign_tag_manifest(MANIFEST, genuine, signed_at=SIGNED_AT))
    forged = sign_tag_manifest(MANIFEST, attacker, signed_at=SIGNED_AT)
    files[SSHSIG_FILE] = forged[SSHSIG_FILE]
    verdict = verify_tag_manifest(files, MANIFEST, [anchor_for(genuine)])
    assert verdict.status is Status.FAILED and "differs from the record" in verdict.reason

    record = json.loads(files[JSON_FILE])
    record["sshsig"] = forged[SSHSIG_FILE].decode()
    files[JSON_FILE] = json.dumps(record).encode()
    verdict = verify_tag_manifest(files, MANIFEST, [anchor_for(genuine)])
    assert verdict.status is Status.FAILED
    assert "names a different key than the OpenSSH signature" in verdict.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.pop(JSON_FILE), "package is not signed"),
        (lambda f: f.pop(RAW_SIGNATURE_FILE), "missing signature/tagmanifest-sha256.txt.rawsig"),
        (lambda f: f.update({"signature/extra.txt": b"hi"}), "unexpected signature/extra.txt"),
        (lambda f: f.update({JSON_FILE: b"{"}), "is not valid JSON"),
        (lambda f: f.update({JSON_FILE: b'{"format": "v0"}'}), "unsupported signature format"),
        (lambda f: f.update({PUBLIC_KEY_FILE: f[PUBLIC_KEY_FILE].replace(b"M", b"N", 3)}), PUBLIC_KEY_FILE),
        (lambda f: f.update({ALLOWED_SIGNERS_FILE: b"x ssh-ed25519 AAAA\n"}), "does not name the signing key"),
        (lambda f: f.update({RAW_SIGNATURE_FILE: bytes(64)}), "rawsig differs from the record"),
    ],
    ids=["unsigned", "missing-file", "extra-file", "bad-json", "old-format", "pubkey", "allowed", "rawsig"],
)
def test_broken_signature_files_fail_closed(change: Callable[[dict[str, bytes]], object], reason: str) -> None:
    signer = signer_for("ed25519")
    files = dict(sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT))
    change(files)
    verdict = verify_tag_manifest(files, MANIFEST, [anchor_for(signer)])
    assert verdict.status is Status.FAILED and not verdict.passed
    assert reason in verdict.reason


def test_raw_signature_forged_consistently_is_invalid() -> None:
    signer = signer_for("ed25519")
    files = dict(sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT))
    files[RAW_SIGNATURE_FILE] = bytes(64)
    record = json.loads(files[JSON_FILE])
    record["raw_signature_base64"] = base64.b64encode(bytes(64)).decode()
    files[JSON_FILE] = json.dumps(record).encode()
    verdict = verify_tag_manifest(files, MANIFEST, [anchor_for(signer)])
    assert verdict.status is Status.FAILED and "does not verify with ed25519" in verdict.reason


def test_certificate_issued_by_a_trusted_ca() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    leaf_key = new_private_key("ed25519")
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Release signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(7)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_FROM + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert = self_signed_certificate(ca_key, "Test CA", VALID_FROM)
    files = sign_tag_manifest(MANIFEST, InMemorySigner(leaf_key, leaf), signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST, [TrustAnchor.from_certificate(ca_cert, "ca.pem")])
    assert verdict.passed and verdict.trusted_by == "ca.pem"
    late = sign_tag_manifest(MANIFEST, InMemorySigner(leaf_key, leaf), signed_at=SIGNED_AT + timedelta(days=900))
    verdict = verify_tag_manifest(late, MANIFEST, [TrustAnchor.from_certificate(ca_cert, "ca.pem")])
    assert not verdict.trusted and "not valid at the signing time" in verdict.reason


# -- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "rsa-3072"])
def test_deterministic_schemes_give_identical_signature_files(kind: str) -> None:
    signer = signer_for(kind)
    first = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    assert sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT) == first


def test_ecdsa_signatures_differ_only_in_signature_bytes() -> None:
    signer = signer_for("ecdsa-p256")
    first, second = (sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT) for _ in range(2))
    differing = {name for name in first if first[name] != second[name]}
    assert differing == {SSHSIG_FILE, RAW_SIGNATURE_FILE, JSON_FILE}
    a, b = json.loads(first[JSON_FILE]), json.loads(second[JSON_FILE])
    assert {k for k in a if a[k] != b[k]} == {"sshsig", "raw_signature_base64"}
    assert a["deterministic"] is False


# -- trust anchors --------------------------------------------------------------------------------


def test_trust_anchor_formats(tmp_path: Path) -> None:
    signer = signer_for("ecdsa-p256")
    cert = signer.certificate()
    assert cert is not None
    key = signer.public_key()
    forms = {
        "cert.pem": cert.public_bytes(serialization.Encoding.PEM),
        "cert.der": cert.public_bytes(serialization.Encoding.DER),
        "key.pem": key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "id.pub": (openssh_public_key(key) + " someone@example\n").encode(),
        "allowed_signers": sshsig.allowed_signers_line("someone", key).encode(),
    }
    for name, data in forms.items():
        (tmp_path / name).write_bytes(data)
        anchor = load_trust_anchor(tmp_path / name)
        assert anchor.fingerprint == fingerprint(key), name
        assert anchor.source == str(tmp_path / name)
    with pytest.raises(UsageError, match="cannot read trust anchor"):
        load_trust_anchor(tmp_path / "absent.pem")
    with pytest.raises(UsageError, match="is not a certificate or public key"):
        parse_trust_anchor(b"nonsense", "junk.txt")


# -- the demo key -------------------------------------------------------------------------------


def test_demo_key_is_recognised_and_labelled() -> None:
    signer = demo_signer()
    assert signer.key_id() == DEMO_KEY_FINGERPRINT
    assert signer.is_demo_key and signer.label == DEMO_LABEL
    assert signer.deterministic
    cert = signer.certificate()
    assert cert is not None and "INSECURE DEMO KEY" in cert.subject.rfc4514_string()
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    assert json.loads(files[JSON_FILE])["insecure_demo_key"] is True
    untrusted = verify_tag_manifest(files, MANIFEST, [])
    assert untrusted.demo_key and untrusted.status is Status.INDETERMINATE
    trusted = verify_tag_manifest(
        files, MANIFEST, [load_trust_anchor(REPO / "samples/keys/INSECURE-demo-signer.cert.pem")]
    )
    assert trusted.passed and trusted.demo_key


def test_demo_flag_in_the_package_is_not_believed() -> None:
    signer = signer_for("ed25519")
    files = dict(sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT))
    assert not verify_tag_manifest(files, MANIFEST, []).demo_key
    assert not dataclasses.replace(verify_tag_manifest(files, MANIFEST, []), signer_label=DEMO_LABEL).demo_key


# -- Azure Key Vault, replayed ------------------------------------------------------------------

KV_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KV_API = "2025-07-01"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _vault_cassette(vault: str, key: ec.EllipticCurvePrivateKey, messages: list[bytes]) -> list[Entry]:
    """What Key Vault answers: the 401 challenge, the key (public part only), one signature per digest.

    Made from a local P-256 key standing in for the HSM; the ES256 values are JOSE r||s as the
    service returns them.
    """
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

    base = f"https://{vault}.vault.azure.net/keys/release-signer/0123456789abcdef0123456789abcdef"
    numbers = key.public_key().public_numbers()
    key_body = {
        "key": {
            "kid": base,
            "kty": "EC-HSM",
            "crv": "P-256",
            "key_ops": ["sign", "verify"],
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        },
        "attributes": {"enabled": True, "created": 1735689600, "updated": 1735689600, "recoveryLevel": "Recoverable"},
    }
    challenge = (
        f'Bearer authorization="https://login.microsoftonline.com/{KV_TENANT}", resource="https://vault.azure.net"'
    )
    entries = [
        Entry(
            f"{base}?api-version={KV_API}",
            "GET",
            401,
            {"error": {"code": "Unauthorized"}},
            response_headers={"WWW-Authenticate": challenge},
        ),
        Entry(f"{base}?api-version={KV_API}", "GET", 200, key_body),
    ]
    for message in messages:
        digest = hashlib.sha256(message).digest()
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        entries.append(
            Entry(
                f"{base}/sign?api-version={KV_API}",
                "POST",
                200,
                {"kid": base, "value": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))},
                request_body={"alg": "ES256", "value": _b64url(digest)},
            )
        )
    return entries


def test_key_vault_signer_replays_challenge_key_and_signatures(request: pytest.FixtureRequest) -> None:
    """The whole package signature through Key Vault: 401 challenge, get_key, two ES256 digests."""
    vault = f"kv{abs(hash(request.node.name)) % 10**8}"  # the SDK caches challenges per host
    key = ec.generate_private_key(ec.SECP256R1())
    sshsig_blob = sshsig._signed_data(sshsig.NAMESPACE, sshsig.HASH_ALGORITHM, MANIFEST)
    transport = ReplayTransport(_vault_cassette(vault, key, [sshsig_blob, MANIFEST]))
    credential = StaticCredential()
    signer = KeyVaultSigner(
        f"https://{vault}.vault.azure.net/keys/release-signer/0123456789abcdef0123456789abcdef",
        credential,
        transport=transport,
    )
    assert signer.algorithm is Algorithm.ECDSA_P256_SHA256 and not signer.deterministic
    assert signer.key_id() == fingerprint(key.public_key())
    files = sign_tag_manifest(MANIFEST, signer, signed_at=SIGNED_AT)
    verdict = verify_tag_manifest(files, MANIFEST, [TrustAnchor.from_public_key(key.public_key(), "kv.pub")])
    assert verdict.passed, verdict.reason
    served = transport.served
    assert [(s.method, s.status) for s in served] == [("GET", 401), ("GET", 200), ("POST", 200), ("POST", 200)]
    assert transport.unused() == []
    assert credential.scopes_seen and all(s == ("https://vault.azure.net/.default",) for s in credential.scopes_seen)


def test_key_vault_signer_refusal_is_a_signing_error(request: pytest.FixtureRequest) -> None:
    vault = f"kv{abs(hash(request.node.name)) % 10**8}"
    key = ec.generate_private_key(ec.SECP256R1())
    entries = _vault_cassette(vault, key, [])
    entries.append(Entry(entries[0].request_uri.replace("?", "/sign?"), "POST", 403, {"error": {"code": "Forbidden"}}))
    signer = KeyVaultSigner(
        entries[0].request_uri.split("?")[0], StaticCredential(), transport=ReplayTransport(entries)
    )
    with pytest.raises(SigningError, match="Key Vault refused to sign") as info:
        signer.sign(b"data")
    assert "Key Vault Crypto User" in info.value.diagnostics()
    with pytest.raises(UsageError, match="not a Key Vault key identifier"):
        KeyVaultSigner("not a url", StaticCredential())


def test_jose_signatures_become_der() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(b"m", ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    assert jose_to_der(r.to_bytes(32, "big") + s.to_bytes(32, "big")) == der
    with pytest.raises(SigningError, match="expected 64"):
        jose_to_der(b"short")


def test_pades_through_key_vault_sends_only_the_digest(request: pytest.FixtureRequest) -> None:
    """One vault call per PDF signature, carrying a 32-byte digest; pyHanko's dry run stays local."""
    import io

    import pypdf

    from evidence.sign.pades import sign_pdf, validate_pdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(595, 842)
    buffer = io.BytesIO()
    writer.write(buffer)
    pdf = buffer.getvalue()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, "Vault signer", VALID_FROM)

    seen: list[bytes] = []

    class Capture(InMemorySigner):
        def sign(self, data: bytes) -> bytes:
            seen.append(data)
            return super().sign(data)

    # Pass 1 (local key) learns the signed attributes pyHanko will ask the vault to sign: the
    # output is reproducible, so pass 2 asks for the same digest.
    capture = Capture(key, cert)
    sign_pdf(pdf, capture, signed_at=SIGNED_AT, reason="r", location="l")
    vault = f"kv{abs(hash(request.node.name)) % 10**8}"
    transport = ReplayTransport(_vault_cassette(vault, key, seen))
    signer = KeyVaultSigner(
        f"https://{vault}.vault.azure.net/keys/release-signer/0123456789abcdef0123456789abcdef",
        StaticCredential(),
        transport=transport,
        certificate=cert,
    )
    signed = sign_pdf(pdf, signer, signed_at=SIGNED_AT, reason="r", location="l")
    assert validate_pdf(signed, [cert], validation_time=SIGNED_AT).passed
    assert [s.method for s in transport.served].count("POST") == 1
    assert transport.unused() == []


def test_key_vault_from_key_id_reads_the_certificate_file(tmp_path: Path) -> None:
    key_id = "https://kvfromid.vault.azure.net/keys/k/0123"
    with pytest.raises(UsageError, match="cannot read certificate"):
        KeyVaultSigner.from_key_id(key_id, StaticCredential(), certificate_path=tmp_path / "absent.pem")
    _, cert_pem = generate_key("ecdsa-p256", "kv", VALID_FROM)
    (tmp_path / "kv.pem").write_bytes(cert_pem)
    signer = KeyVaultSigner.from_key_id(key_id, StaticCredential(), certificate_path=tmp_path / "kv.pem")
    assert signer.certificate() is not None and signer.key_vault_key_id == key_id
