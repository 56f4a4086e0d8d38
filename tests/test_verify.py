"""Verify stage: each test is an attack on a package, and asserts the exact reason it is caught."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence.bundle.archive import write_zip
from evidence.bundle.bagit import write_bag
from evidence.errors import EvidenceError, ExitCode, UsageError, VerificationError
from evidence.sign.interface import pem_public_key
from evidence.sign.keygen import new_private_key, self_signed_certificate
from evidence.sign.memory import InMemorySigner
from evidence.sign.package_signature import sign_tag_manifest
from evidence.sign.pades import sign_pdf
from evidence.verify import (
    CheckResult,
    Limits,
    OpenedPackage,
    Status,
    TrustSpec,
    UnsafeArchiveError,
    VerificationReport,
    exit_code_for,
    failed,
    members,
    passed,
    verify_package,
)
from evidence.verify.package import CorruptMemberError

ASSETS = Path(__file__).parent / "assets"
MALICIOUS = ASSETS / "malicious"
WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
PAYLOAD = {
    "data/collection.json": b'{"format": "evidence-collection/v1", "gaps": []}\n',
    "data/records/model_versions.jsonl": b'{"model_name": "fraud", "version": "1"}\n' * 40,
    "data/records/deployments.jsonl": b'{"deployment_name": "blue", "traffic_percent": 100}\n',
    "data/report/report.html": b"<!doctype html><title>Evidence</title>\n",
    "data/report/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(64)),
    "data/100%.json": b"{}",
}


def public_pem(signer: InMemorySigner) -> bytes:
    return pem_public_key(signer.public_key()).encode()


def build_signed(tmp: Path, signer: InMemorySigner, files: dict[str, bytes] = PAYLOAD) -> Path:
    """Bag, sign the tag manifest into signature/, zip: the order the package command uses."""
    bag = tmp / "bag"
    for rel, data in files.items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    write_bag(bag, bag_info={"Bagging-Date": "2025-03-14"})
    signature = sign_tag_manifest((bag / "tagmanifest-sha256.txt").read_bytes(), signer, signed_at=WHEN)
    for rel, data in signature.items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    write_zip(bag, tmp / "signed.zip", root="pkg", date_time=WHEN)
    return tmp / "signed.zip"


def build(tmp: Path, files: dict[str, bytes] = PAYLOAD, extra_tags: dict[str, bytes] | None = None) -> Path:
    bag = tmp / "bag"
    for rel, data in files.items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    for rel, data in (extra_tags or {}).items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    write_bag(bag, bag_info={"Bagging-Date": "2025-03-14", "Source-Organization": "Contoso"})
    out = tmp / "package.zip"
    write_zip(bag, out, root="pkg", date_time=WHEN)
    return out


def rezip(
    src: Path,
    dst: Path,
    *,
    edit: dict[str, Callable[[bytes], bytes]] | None = None,
    drop: Iterable[str] = (),
    add: dict[str, bytes] | None = None,
) -> Path:
    """Rewrite a package zip with some members changed, the way an attacker with ``zip`` would."""
    edit, dropped = edit or {}, set(drop)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            if rel in dropped:
                continue
            data = zin.read(info)
            zout.writestr(info, edit[rel](data) if rel in edit else data)
        for rel, data in (add or {}).items():
            zout.writestr(zipfile.ZipInfo(f"pkg/{rel}", date_time=(2025, 1, 1, 0, 0, 0)), data)
    return dst


def flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def problems(report: VerificationReport) -> list[tuple[str, str | None, str]]:
    return [(c.name, c.subject, c.reason) for c in report.failures]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("package"))


# -- an intact package ---------------------------------------------------------------------------


def test_intact_package_passes_every_check(package: Path) -> None:
    report = verify_package(package)
    assert report.passed
    assert report.exit_code() == ExitCode.OK == exit_code_for(report)
    assert [c.name for c in report.checks] == [
        "archive.open",
        "archive.safety",
        "bagit.declaration",
        "bagit.info",
        "bagit.manifest",
        "payload.listed",
        "payload.present",
        "bagit.oxum",
        "payload.digest",
        "bagit.tagmanifest",
        "signature",
    ]
    assert all(c.status is Status.PASSED for c in report.checks[:-1])
    unsigned = report.checks[-1]
    assert (unsigned.status, unsigned.required) == (Status.INDETERMINATE, False)
    assert unsigned.reason.startswith("package is not signed")
    report.raise_for_failure()  # does not raise


def test_report_is_frozen_and_its_json_deterministic(package: Path) -> None:
    first, second = verify_package(package), verify_package(package)
    assert first == second
    assert first.to_json() == second.to_json()
    doc = json.loads(first.to_json())
    assert doc["format"] == "evidence-verification/v1"
    assert (doc["status"], doc["passed"], doc["exit_code"]) == ("PASSED", True, 0)
    assert doc["checks"][8] == {
        "name": "payload.digest",
        "status": "PASSED",
        "reason": "6 payload files match their SHA-256",
        "subject": None,
        "required": True,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.checks[0].status = Status.FAILED  # type: ignore[misc]


def test_bagit_python_agrees_on_spec_edge_cases(package: Path) -> None:
    # data/100%.json is written as data/100%25.json in the manifest (RFC 8493 2.1.3) and verified.
    with OpenedPackage.open(package) as pkg:
        assert b"  data/100%25.json\n" in pkg.read("manifest-sha256.txt")
        assert "data/100%.json" in pkg.payload_files


# -- tampering: each caught, naming the file -----------------------------------------------------


def test_flipped_byte_in_payload_file_is_caught_naming_the_file(package: Path, tmp_path: Path) -> None:
    bad = rezip(package, tmp_path / "t.zip", edit={"data/records/deployments.jsonl": flip_first_byte})
    report = verify_package(bad)
    assert report.exit_code() == ExitCode.FAILED
    [(name, subject, reason)] = problems(report)
    assert (name, subject) == ("payload.digest", "data/records/deployments.jsonl")
    assert reason.startswith("SHA-256 mismatch: expected ")
    assert "FAILED        payload.digest data/records/deployments.jsonl: SHA-256 mismatch" in report.to_text()
    with pytest.raises(VerificationError, match=r"data/records/deployments\.jsonl"):
        report.raise_for_failure()


def test_removed_payload_file_is_caught(package: Path, tmp_path: Path) -> None:
    report = verify_package(rezip(package, tmp_path / "t.zip", drop=["data/collection.json"]))
    found = problems(report)
    assert ("payload.present", "data/collection.json", "listed in manifest-sha256.txt but not in the package") in found
    assert [n for n, _, _ in found] == ["payload.present", "bagit.oxum"]


def test_unlisted_payload_file_is_caught(package: Path, tmp_path: Path) -> None:
    report = verify_package(rezip(package, tmp_path / "t.zip", add={"data/records/extra.jsonl": b"{}\n"}))
    found = problems(report)
    assert found[0] == ("payload.listed", "data/records/extra.jsonl", "not listed in manifest-sha256.txt")
    assert [n for n, _, _ in found] == ["payload.listed", "bagit.oxum"]


def test_edited_bag_info_is_caught_by_the_tag_manifest(package: Path, tmp_path: Path) -> None:
    def relabel(data: bytes) -> bytes:
        return data.replace(b"Contoso", b"Fabrikam")

    report = verify_package(rezip(package, tmp_path / "t.zip", edit={"bag-info.txt": relabel}))
    [(name, subject, reason)] = problems(report)
    assert (name, subject) == ("bagit.tagmanifest", "bag-info.txt")
    assert reason.startswith("SHA-256 mismatch")


def test_payload_oxum_lie_is_caught(package: Path, tmp_path: Path) -> None:
    def lie(data: bytes) -> bytes:
        return b"".join(
            b"Payload-Oxum: 1.1\n" if line.startswith(b"Payload-Oxum") else line
            for line in data.splitlines(keepends=True)
        )

    report = verify_package(rezip(package, tmp_path / "t.zip", edit={"bag-info.txt": lie}))
    names = [(n, s) for n, s, _ in problems(report)]
    assert names == [("bagit.oxum", "bag-info.txt"), ("bagit.tagmanifest", "bag-info.txt")]
    assert problems(report)[0][2].startswith("Payload-Oxum is 1.1, the payload is ")


def test_manifest_rewritten_to_match_a_tampered_file_is_caught_by_the_tag_manifest(
    package: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(package) as zf:
        original = zf.read("pkg/data/collection.json")
        manifest = zf.read("pkg/manifest-sha256.txt")
    forged = b'{"format": "evidence-collection/v1", "gaps": ["hidden"]}\n'

    manifest = manifest.replace(
        hashlib.sha256(original).hexdigest().encode(), hashlib.sha256(forged).hexdigest().encode()
    )
    bad = rezip(
        package,
        tmp_path / "t.zip",
        edit={"data/collection.json": lambda _: forged, "manifest-sha256.txt": lambda _: manifest},
    )
    report = verify_package(bad)
    found = problems(report)
    assert [(n, s) for n, s, _ in found] == [
        ("bagit.oxum", "bag-info.txt"),
        ("bagit.tagmanifest", "manifest-sha256.txt"),
    ]


def test_fully_rebagged_package_passes_integrity_but_not_trust(tmp_path: Path) -> None:
    # An attacker who rebuilds the whole bag defeats hashes; only a trusted signature stops them.
    forged = build(tmp_path, {**PAYLOAD, "data/collection.json": b'{"forged": true}\n'})
    assert verify_package(forged).passed
    report = verify_package(forged, trust=[public_pem(InMemorySigner.generate())])
    assert not report.passed
    assert report.exit_code() == ExitCode.FAILED
    [(name, _, reason)] = problems(report)
    assert (name, reason) == ("signature", "package is not signed")


def test_planted_tag_file_is_caught(package: Path, tmp_path: Path) -> None:
    bad = rezip(package, tmp_path / "t.zip", add={"VERIFY.txt": b"no need to check anything\n"})
    assert problems(verify_package(bad)) == [
        ("bagit.tagmanifest", "VERIFY.txt", "tag file not covered by tagmanifest-sha256.txt")
    ]


def test_removed_tag_manifest_is_caught(package: Path, tmp_path: Path) -> None:
    bad = rezip(package, tmp_path / "t.zip", drop=["tagmanifest-sha256.txt"])
    assert problems(verify_package(bad)) == [
        (
            "bagit.tagmanifest",
            "tagmanifest-sha256.txt",
            "tagmanifest-sha256.txt is missing (it pins the manifest, and the signature covers it)",
        )
    ]


def test_uppercase_digest_in_tag_manifest_is_not_canonical(package: Path, tmp_path: Path) -> None:
    report = verify_package(rezip(package, tmp_path / "t.zip", edit={"tagmanifest-sha256.txt": bytes.upper}))
    found = problems(report)
    assert found[0] == (
        "bagit.tagmanifest",
        "tagmanifest-sha256.txt",
        "line 1 is not '<sha256 lowercase hex>  <path>'",
    )


def test_bag_declaring_an_old_bagit_version_is_refused(package: Path, tmp_path: Path) -> None:
    def downgrade(data: bytes) -> bytes:
        return data.replace(b"1.0", b"0.97")

    report = verify_package(rezip(package, tmp_path / "t.zip", edit={"bagit.txt": downgrade}))
    assert problems(report) == [("bagit.declaration", "bagit.txt", "BagIt-Version is '0.97', expected '1.0'")]


def test_missing_bagit_declaration_stops_the_bag_checks(package: Path, tmp_path: Path) -> None:
    report = verify_package(rezip(package, tmp_path / "t.zip", drop=["bagit.txt"]))
    assert problems(report) == [("bagit.declaration", "bagit.txt", "bagit.txt is missing: not a BagIt bag")]
    assert [c.name for c in report.checks] == ["archive.open", "archive.safety", "bagit.declaration", "signature"]


def test_second_manifest_algorithm_is_refused_not_ignored(package: Path, tmp_path: Path) -> None:
    report = verify_package(rezip(package, tmp_path / "t.zip", add={"manifest-md5.txt": b""}))
    found = problems(report)
    assert ("bagit.manifest", "manifest-md5.txt", "only SHA-256 manifests are supported; refusing to ignore it") in (
        found
    )


def test_manifest_listing_a_tag_file_as_payload_is_refused(package: Path, tmp_path: Path) -> None:
    def smuggle(data: bytes) -> bytes:
        return data + b"0" * 64 + b"  bagit.txt\n"

    report = verify_package(rezip(package, tmp_path / "t.zip", edit={"manifest-sha256.txt": smuggle}))
    assert (
        "bagit.manifest",
        "manifest-sha256.txt",
        "line 7: bagit.txt does not belong here, this manifest lists payload files (data/...)",
    ) in problems(report)


# -- malicious archives: refused before anything is read -----------------------------------------

EXPECTED_REASONS: dict[str, list[tuple[str, str | None, str]]] = {
    "zip_slip.zip": [("archive.safety", "pkg/data/../../../escaped.txt", "unsafe path: '..' segment")],
    "absolute_path.zip": [("archive.safety", "/etc/cron.d/evil", "unsafe path: absolute path")],
    "drive_letter.zip": [
        ("archive.safety", "C:/Windows/evil.dll", "unsafe path: drive letter"),
        ("archive.safety", None, "more than one top-level folder: 'pkg', 'C:'"),
    ],
    "backslash_path.zip": [
        ("archive.safety", "pkg\\..\\..\\evil.txt", "unsafe path: backslash in name"),
        ("archive.safety", "pkg\\..\\..\\evil.txt", "not inside the package folder"),
    ],
    "nul_in_name.zip": [("archive.safety", "pkg/data/a.json\x00.txt", "unsafe path: NUL byte in name")],
    "symlink.zip": [("archive.safety", "pkg/data/link", "symlink member")],
    "zip_bomb.zip": [
        ("archive.safety", "pkg/data/zeros.bin", "compression ratio 1028:1 exceeds the limit 250:1 (zip bomb?)")
    ],
    "overlapping_members.zip": [("archive.safety", "pkg/data/c.json", "overlaps member 'pkg/bag-info.txt'")],
    "duplicate_names.zip": [("archive.safety", "pkg/data/a.json", "duplicate member name")],
    "case_collision.zip": [
        (
            "archive.safety",
            "pkg/data/A.json",
            "name collides with 'pkg/data/a.json' (differs only in case or normalisation)",
        )
    ],
    "encrypted_member.zip": [("archive.safety", "pkg/data/secret.json", "encrypted member")],
    "unsupported_method.zip": [
        ("archive.safety", "pkg/data/x.bz2", "unsupported compression method 12 (only STORED and DEFLATE)")
    ],
    "two_roots.zip": [("archive.safety", None, "more than one top-level folder: 'pkg', 'other'")],
    "not_a_zip.zip": [("archive.open", None, "not a zip archive: File is not a zip file")],
    "truncated.zip": [("archive.open", None, "truncated or damaged zip archive: File is not a zip file")],
    "bad_crc.zip": [
        ("payload.digest", "data/a.json", "corrupt member: bad CRC-32 (4239e483, the zip directory says bdc61b7c)")
    ],
}


@pytest.mark.parametrize("asset", sorted(EXPECTED_REASONS))
def test_malicious_archive_is_refused_with_the_exact_reason(asset: str) -> None:
    report = verify_package(MALICIOUS / asset)
    assert problems(report) == EXPECTED_REASONS[asset]
    assert report.exit_code() == ExitCode.FAILED
    if report.checks[-1].name == "archive.safety":
        # Fail closed: nothing inside an unsafe archive was read, so no BagIt check ran.
        assert {c.name for c in report.checks} == {"archive.open", "archive.safety"}


def test_every_malicious_asset_has_an_expectation() -> None:
    assert sorted(p.name for p in MALICIOUS.glob("*.zip")) == sorted(EXPECTED_REASONS)


def test_regenerating_the_malicious_assets_gives_the_same_bytes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ASSETS / "make_malicious.py"), str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(EXPECTED_REASONS)
    for name in written:
        assert (tmp_path / name).read_bytes() == (MALICIOUS / name).read_bytes(), name


def test_zip_bomb_is_also_caught_by_the_size_limits() -> None:
    limits = Limits(max_member_size=1 << 20, max_total_size=2 << 20, max_ratio=10_000)
    found = problems(verify_package(MALICIOUS / "zip_bomb.zip", limits=limits))
    assert found == [
        ("archive.safety", "pkg/data/zeros.bin", "uncompressed size 33554432 exceeds the limit 1048576"),
        ("archive.safety", None, "total uncompressed size 33554996 exceeds the limit 2097152"),
    ]


def test_too_many_members_is_refused_before_looking_at_them(package: Path) -> None:
    assert problems(verify_package(package, limits=Limits(max_members=3))) == [
        ("archive.safety", None, "too many members (10 > 3)")
    ]


def test_oversized_tag_file_is_not_read_into_memory(package: Path) -> None:
    report = verify_package(package, limits=Limits(max_tag_file_size=64))
    assert ("bagit.info", "bag-info.txt", "bag-info.txt: 75 bytes is more than the 64 allowed") in problems(report)


def test_opening_an_unsafe_archive_raises_with_every_problem() -> None:
    with pytest.raises(UnsafeArchiveError) as caught:
        OpenedPackage.open(MALICIOUS / "drive_letter.zip")
    assert len(caught.value.problems) == 2
    assert caught.value.message == "unsafe archive: C:/Windows/evil.dll: unsafe path: drive letter (and 1 more)"


# -- could not run ---------------------------------------------------------------------------------


def test_missing_package_could_not_run(tmp_path: Path) -> None:
    report = verify_package(tmp_path / "nope.zip")
    assert report.could_not_run and not report.passed
    assert report.exit_code() == ExitCode.CANNOT_RUN
    [check] = report.checks
    assert (check.name, check.status) == ("archive.open", Status.INDETERMINATE)
    assert "No such file or directory" in check.reason
    with pytest.raises(EvidenceError) as caught:
        report.raise_for_failure()
    assert caught.value.exit_code == ExitCode.CANNOT_RUN


def test_directory_instead_of_package_could_not_run(tmp_path: Path) -> None:
    assert verify_package(tmp_path).exit_code() == ExitCode.CANNOT_RUN


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_package_could_not_run(package: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked.zip"
    locked.write_bytes(package.read_bytes())
    locked.chmod(0)
    assert verify_package(locked).exit_code() == ExitCode.CANNOT_RUN


# -- signature checks plug in ----------------------------------------------------------------------


def good_signature(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
    digest, _ = package.sha256("tagmanifest-sha256.txt")
    status = "trusted" if trust else "valid, signer not trusted"
    return [passed("signature", f"Ed25519 over tagmanifest {digest[:12]}: {status}", "signature/package.sshsig")]


def untrusted_signature(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
    return [failed("signature", "valid signature by a key not in --trust", "signature/package.sshsig")]


def broken_signature(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
    raise VerificationError("signature/package.sshsig: not an SSH signature")


def silent_signature(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
    return []


@pytest.fixture(scope="module")
def signed_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("signed"), extra_tags={"signature/package.sshsig": b"SSHSIG..."})


def test_signature_files_need_not_be_in_the_tag_manifest(signed_package: Path) -> None:
    report = verify_package(signed_package, signature_checks=())
    assert report.passed
    assert report.checks[-1].reason.startswith(
        "package carries signature/package.sshsig but no signature checker was given"
    )
    with OpenedPackage.open(signed_package) as pkg:
        assert pkg.signature_files == ("signature/package.sshsig",)
        assert "signature/package.sshsig" not in pkg.tag_files


def test_trusted_signature_makes_the_package_pass(signed_package: Path) -> None:
    report = verify_package(signed_package, trust=[Path("ca.pem")], signature_checks=[good_signature])
    assert report.passed
    assert report.checks[-1].reason.endswith(": trusted")


def test_valid_signature_by_an_untrusted_key_fails(signed_package: Path) -> None:
    report = verify_package(signed_package, trust=[Path("ca.pem")], signature_checks=[untrusted_signature])
    assert problems(report) == [("signature", "signature/package.sshsig", "valid signature by a key not in --trust")]
    assert report.exit_code() == ExitCode.FAILED


def test_signature_checker_error_is_reported_as_failed(signed_package: Path) -> None:
    report = verify_package(signed_package, signature_checks=[broken_signature])
    assert problems(report) == [("signature", None, "signature/package.sshsig: not an SSH signature")]


def test_signature_checker_that_says_nothing_does_not_pass(signed_package: Path) -> None:
    report = verify_package(signed_package, trust=[Path("ca.pem")], signature_checks=[silent_signature])
    assert problems(report) == [("signature", None, "the check reported no result")]


def test_extra_checks_run_after_the_bag_and_signature(signed_package: Path) -> None:
    def pades(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
        with package.open_member("data/report/report.html") as f:
            head = f.read(9)
        return [failed("pades", f"report starts with {head!r}, not a PDF", "data/report/report.html")]

    report = verify_package(signed_package, signature_checks=(), checks=[pades])
    assert [c.name for c in report.checks][-2:] == ["signature", "pades"]
    assert problems(report) == [("pades", "data/report/report.html", "report starts with b'<!doctype', not a PDF")]


def test_signature_by_a_trusted_key_passes(tmp_path: Path) -> None:
    signer = InMemorySigner.generate("ed25519")
    report = verify_package(build_signed(tmp_path, signer), trust=[public_pem(signer)])
    assert report.passed, report.to_text()
    last = report.checks[-1]
    assert (last.name, last.status, last.subject) == (
        "signature",
        Status.PASSED,
        "signature/tagmanifest-sha256.txt.sig",
    )
    assert last.reason.startswith("valid signature by ed25519 key SHA256:")


def test_trust_anchor_given_as_a_file_path(tmp_path: Path) -> None:
    signer = InMemorySigner.generate("ecdsa-p256")
    (tmp_path / "signer.pub.pem").write_bytes(public_pem(signer))
    report = verify_package(build_signed(tmp_path, signer), trust=[tmp_path / "signer.pub.pem"])
    assert report.passed, report.to_text()


def test_unreadable_trust_anchor_is_a_usage_error(package: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read trust anchor"):
        verify_package(package, trust=[tmp_path / "missing.pem"])


def test_valid_signature_without_trust_is_integrity_only(tmp_path: Path) -> None:
    report = verify_package(build_signed(tmp_path, InMemorySigner.generate()))
    assert report.passed
    last = report.checks[-1]
    assert (last.status, last.required) == (Status.INDETERMINATE, False)
    assert "but not trusted: no trust anchor given" in last.reason


def test_package_resigned_by_an_attacker_is_untrusted(tmp_path: Path) -> None:
    auditor_trusts = InMemorySigner.generate()
    forged = build_signed(tmp_path, InMemorySigner.generate(), {**PAYLOAD, "data/collection.json": b"{}"})
    report = verify_package(forged, trust=[public_pem(auditor_trusts)])
    assert report.exit_code() == ExitCode.FAILED
    [(name, subject, reason)] = problems(report)
    assert (name, subject) == ("signature", "signature/tagmanifest-sha256.txt.sig")
    assert "but not trusted: the signer's key SHA256:" in reason
    assert reason.endswith("matches none of the 1 trust anchor(s)")


def test_tag_manifest_changed_after_signing_fails_the_signature(tmp_path: Path) -> None:
    signer = InMemorySigner.generate()
    signed = build_signed(tmp_path, signer)

    def append(data: bytes) -> bytes:
        return data + b"0" * 64 + b"  VERIFY.txt\n"

    bad = rezip(signed, tmp_path / "t.zip", edit={"tagmanifest-sha256.txt": append}, add={"VERIFY.txt": b"x"})
    report = verify_package(bad, trust=[public_pem(signer)])
    found = problems(report)
    assert (
        "bagit.tagmanifest",
        "VERIFY.txt",
        "SHA-256 mismatch: expected " + "0" * 64 + ", found " + hashlib.sha256(b"x").hexdigest(),
    ) in found
    assert found[-1][:2] == ("signature", "signature/tagmanifest-sha256.txt.sig")
    assert found[-1][2].startswith("the tag manifest changed after signing")


# -- the report PDF's PAdES signature (step 4) -----------------------------------------------------


def pdf_signer(kind: str = "ecdsa-p256", name: str = "Report signer") -> InMemorySigner:
    """A signer with a certificate valid from before WHEN for a century (validated 'now')."""
    key = new_private_key(kind)
    return InMemorySigner(
        key, self_signed_certificate(key, name, WHEN - timedelta(days=1), validity=timedelta(days=36500))
    )


def cert_pem(signer: InMemorySigner) -> bytes:
    cert = signer.certificate()
    assert cert is not None
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def blank_pdf() -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_metadata({"/Title": "Evidence report"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign_report(pdf: bytes, signer: InMemorySigner) -> bytes:
    return sign_pdf(pdf, signer, signed_at=WHEN, reason="Evidence package")


def with_pdf(pdf: bytes) -> dict[str, bytes]:
    return {**PAYLOAD, "data/report/report.pdf": pdf}


def pades_results(report: VerificationReport) -> list[tuple[str, Status]]:
    return [(c.name, c.status) for c in report.checks if c.name.startswith("pades")]


@pytest.fixture(scope="module")
def report_signer() -> InMemorySigner:
    return pdf_signer()


@pytest.fixture(scope="module")
def pades_package(tmp_path_factory: pytest.TempPathFactory, report_signer: InMemorySigner, blank_pdf: bytes) -> Path:
    """Package and report signed by the same key, as the pipeline does."""
    tmp = tmp_path_factory.mktemp("pades")
    return build_signed(tmp, report_signer, with_pdf(sign_report(blank_pdf, report_signer)))


def test_signed_report_pdf_is_intact_valid_and_trusted_apart(
    pades_package: Path, report_signer: InMemorySigner
) -> None:
    report = verify_package(pades_package, trust=[cert_pem(report_signer)])
    assert report.passed, report.to_text()
    assert [c.name for c in report.checks][-4:] == ["signature", "pades.intact", "pades.valid", "pades.trusted"]
    for check in report.checks[-3:]:
        assert (check.status, check.subject) == (Status.PASSED, "data/report/report.pdf")
    assert report.checks[-1].reason == (
        f"CN=Report signer, key {report_signer.key_id()} chains to a --trust certificate"
    )


def test_report_pdf_trusted_through_a_pinned_public_key(pades_package: Path, report_signer: InMemorySigner) -> None:
    report = verify_package(pades_package, trust=[public_pem(report_signer)])
    assert report.passed, report.to_text()
    assert report.checks[-1].reason.endswith("key pinned by trust anchor bytes")


def test_report_pdf_by_an_untrusted_signer_does_not_pass(tmp_path: Path, blank_pdf: bytes) -> None:
    package_signer, stranger = pdf_signer(), pdf_signer(name="Stranger")
    pkg = build_signed(tmp_path, package_signer, with_pdf(sign_report(blank_pdf, stranger)))
    report = verify_package(pkg, trust=[cert_pem(package_signer)])
    assert report.exit_code() == ExitCode.FAILED
    assert problems(report) == [
        (
            "pades.trusted",
            "data/report/report.pdf",
            f"CN=Stranger, key {stranger.key_id()} does not chain to any of the 1 trust anchor(s)",
        )
    ]
    # Without trust anchors, integrity-only verification passes and says the PDF signer is untrusted.
    untrusted = verify_package(pkg)
    assert untrusted.passed
    assert (untrusted.checks[-1].status, untrusted.checks[-1].required) == (Status.INDETERMINATE, False)


def test_report_pdf_changed_after_signing_fails_even_when_rebagged(
    tmp_path: Path, blank_pdf: bytes, report_signer: InMemorySigner
) -> None:
    # An insider edits the signed report before the package is bagged and signed: every hash and the
    # package signature agree, only the PDF's own signature can tell.
    signed = bytearray(sign_report(blank_pdf, report_signer))
    at = signed.index(b"/Title")
    signed[at + 8] ^= 0x01
    pkg = build_signed(tmp_path, report_signer, with_pdf(bytes(signed)))
    report = verify_package(pkg, trust=[cert_pem(report_signer)])
    assert report.exit_code() == ExitCode.FAILED
    found = problems(report)
    assert found[0] == ("pades.intact", "data/report/report.pdf", "the PDF was changed after signing (digest mismatch)")
    assert all(name.startswith("pades") for name, _, _ in found)


def test_content_appended_to_the_report_pdf_after_signing_fails(
    tmp_path: Path, blank_pdf: bytes, report_signer: InMemorySigner
) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(sign_report(blank_pdf, report_signer)))
    writer.root["/Lang"] = generic.TextStringObject("xx")
    writer.update_root()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    pkg = build_signed(tmp_path, report_signer, with_pdf(out.getvalue()))
    report = verify_package(pkg, trust=[cert_pem(report_signer)])
    assert problems(report) == [
        ("pades.intact", "data/report/report.pdf", "content was added to the PDF after it was signed")
    ]


def test_unsigned_report_pdf_in_a_signed_package_fails(
    tmp_path: Path, blank_pdf: bytes, report_signer: InMemorySigner
) -> None:
    pkg = build_signed(tmp_path, report_signer, with_pdf(blank_pdf))
    for trust in ([cert_pem(report_signer)], []):
        report = verify_package(pkg, trust=trust)
        assert ("pades", "data/report/report.pdf") in [(name, subject) for name, subject, _ in problems(report)]
        assert report.exit_code() == ExitCode.FAILED


def test_unsigned_report_pdf_in_an_unsigned_package_is_indeterminate(tmp_path: Path, blank_pdf: bytes) -> None:
    pkg = build(tmp_path, with_pdf(blank_pdf))
    report = verify_package(pkg)
    assert report.passed  # integrity only: nothing is signed, and the report says so twice
    signature, pades = report.checks[-2:]
    assert (signature.name, signature.status, signature.required) == ("signature", Status.INDETERMINATE, False)
    assert signature.reason.startswith("package is not signed")
    assert (pades.name, pades.status, pades.required, pades.reason) == (
        "pades",
        Status.INDETERMINATE,
        False,
        "the report PDF is not signed",
    )
    assert not verify_package(pkg, require_signature=True).passed


def test_report_pdf_that_is_not_a_pdf_fails(tmp_path: Path, report_signer: InMemorySigner) -> None:
    pkg = build_signed(tmp_path, report_signer, with_pdf(b"<html>not a pdf</html>"))
    [(name, subject, reason)] = problems(verify_package(pkg, trust=[cert_pem(report_signer)]))
    assert (name, subject) == ("pades", "data/report/report.pdf")
    assert reason.startswith("not a readable PDF")


def test_pdf_checks_can_be_turned_off(pades_package: Path, report_signer: InMemorySigner) -> None:
    report = verify_package(pades_package, trust=[cert_pem(report_signer)], pdf_checks=())
    assert report.passed and not pades_results(report)


def test_cli_verifies_the_report_pdf_by_default(
    tmp_path: Path, pades_package: Path, report_signer: InMemorySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    from evidence.cli import main

    cert = tmp_path / "signer.cert.pem"
    cert.write_bytes(cert_pem(report_signer))
    assert main(["verify", str(pades_package), "--trust", str(cert), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["status"]) for c in doc["checks"] if c["name"].startswith("pades")] == [
        ("pades.intact", "PASSED"),
        ("pades.valid", "PASSED"),
        ("pades.trusted", "PASSED"),
    ]
    # Without --trust the CLI fails closed, for the PDF signer as for the package signer.
    assert main(["verify", str(pades_package)]) == 1
    out = capsys.readouterr().out
    assert "INDETERMINATE pades.trusted data/report/report.pdf: no trust anchor given" in out


def test_cli_fails_a_report_pdf_changed_after_signing(
    tmp_path: Path, blank_pdf: bytes, report_signer: InMemorySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    from evidence.cli import main

    signed = bytearray(sign_report(blank_pdf, report_signer))
    signed[signed.index(b"/Title") + 8] ^= 0x01
    pkg = build_signed(tmp_path, report_signer, with_pdf(bytes(signed)))
    cert = tmp_path / "signer.cert.pem"
    cert.write_bytes(cert_pem(report_signer))
    assert main(["verify", str(pkg), "--trust", str(cert)]) == 1
    out = capsys.readouterr().out
    assert "FAILED        pades.intact data/report/report.pdf: the PDF was changed after signing" in out


def test_verify_imports_pyhanko_only_for_a_report_pdf_and_never_azure(pades_package: Path, package: Path) -> None:
    code = (
        "import sys\n"
        "from evidence.cli import main\n"
        "main(['verify', sys.argv[1], '--json'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('azure', 'pyhanko')}))\n"
    )
    loaded = {}
    for name, path in (("no pdf", package), ("pdf", pades_package)):
        run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        loaded[name] = run.stdout.strip().splitlines()[-1]
    assert loaded == {"no pdf": "[]", "pdf": "['pyhanko']"}


# -- --rebuild (step 5) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo package (a real pipeline run over the bundled recording) and its certificate."""
    from evidence.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    (zip_path,) = out.glob("*.zip")
    (cert,) = out.glob("*.cert.pem")
    return zip_path, cert


def rebag(
    source: Path,
    tmp: Path,
    *,
    edit: dict[str, Callable[[bytes], bytes]] | None = None,
    drop: Iterable[str] = (),
    add: dict[str, bytes] | None = None,
) -> Path:
    """An insider's forgery: change the payload, then bag and sign again with the (trusted) demo key,
    so every hash and both signatures agree and only re-deriving can tell."""
    from evidence.sign.demo import demo_signer

    bag = tmp / "rebag"
    with zipfile.ZipFile(source) as zf:
        root = zf.namelist()[0].split("/")[0]
        for info in zf.infolist():
            rel = info.filename.split("/", 1)[1]
            if rel in set(drop) or not rel.startswith("data/"):
                continue
            data = zf.read(info)
            (bag / rel).parent.mkdir(parents=True, exist_ok=True)
            change = (edit or {}).get(rel)
            (bag / rel).write_bytes(change(data) if change else data)
        info_lines = zf.read(f"{root}/bag-info.txt").decode().splitlines()
    for rel, data in (add or {}).items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    labels = dict(line.split(": ", 1) for line in info_lines)
    labels.pop("Payload-Oxum")
    write_bag(bag, bag_info=labels)
    signer = demo_signer()
    for rel, data in sign_tag_manifest((bag / "tagmanifest-sha256.txt").read_bytes(), signer, signed_at=WHEN).items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(data)
    out = tmp / "forged.zip"
    write_zip(bag, out, root=root, date_time=WHEN)
    return out


def rebuild_results(report: VerificationReport) -> list[tuple[str, Status, str | None]]:
    return [(c.name, c.status, c.subject) for c in report.checks if c.name.startswith("rebuild")]


def test_demo_package_rebuilds_through_the_cli(demo: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from evidence.cli import main

    zip_path, cert = demo
    assert main(["verify", str(zip_path), "--trust", str(cert), "--rebuild", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rebuilt = [(c["name"], c["status"]) for c in doc["checks"] if c["name"].startswith("rebuild")]
    assert rebuilt == [
        ("rebuild.derived", "PASSED"),
        ("rebuild.report", "PASSED"),
        ("rebuild.package_id", "PASSED"),
    ]
    assert "derived files equal their re-derivation" in doc["checks"][-3]["reason"]


def test_forged_finding_passes_every_hash_and_signature_but_not_the_rebuild(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    zip_path, cert = demo

    def pass_everything(data: bytes) -> bytes:
        return data.replace(b'"status": "fail"', b'"status": "pass"')

    forged = rebag(zip_path, tmp_path, edit={"data/findings.json": pass_everything})
    assert verify_package(forged, trust=[cert]).passed  # without --rebuild the forgery is not seen
    report = verify_package(forged, trust=[cert], rebuild=True)
    assert report.exit_code() == ExitCode.FAILED
    [(name, subject, reason)] = [p for p in problems(report) if p[0] == "rebuild.derived"]
    assert (name, subject) == ("rebuild.derived", "data/findings.json")
    assert reason.startswith("differs from its re-derivation: package SHA-256 ")
    # The Package-Id is computed from the re-derived findings, so it still names the true evidence.
    assert rebuild_results(report)[1:] == [
        ("rebuild.report", Status.PASSED, "data/report/report.html"),
        ("rebuild.package_id", Status.PASSED, "bag-info.txt"),
    ]


def test_missing_extra_and_rerendered_files_are_each_named(demo: tuple[Path, Path], tmp_path: Path) -> None:
    zip_path, cert = demo
    forged = rebag(
        zip_path,
        tmp_path,
        drop=["data/records/deployments.csv"],
        add={"data/records/planted.jsonl": b"{}\n"},
        edit={"data/report/report.html": lambda html: html.replace(b"</body>", b"<p>all good</p></body>")},
    )
    found = [
        (name, subject, reason)
        for name, subject, reason in problems(verify_package(forged, trust=[cert], rebuild=True))
    ]
    assert (
        "rebuild.derived",
        "data/records/deployments.csv",
        "re-deriving produces it, but the package lacks it",
    ) in found
    assert (
        "rebuild.derived",
        "data/records/planted.jsonl",
        "in the package, but re-deriving does not produce it",
    ) in found
    [report_problem] = [p for p in found if p[0] == "rebuild.report"]
    assert report_problem[1] == "data/report/report.html"
    assert report_problem[2].startswith("differs from the re-rendered report")


def test_package_without_recorded_inputs_cannot_be_rebuilt(package: Path) -> None:
    report = verify_package(package, rebuild=True)
    assert problems(report) == [
        (
            "rebuild",
            None,
            "cannot re-derive from this package: data/inputs/request.json is missing "
            "(the package cannot be re-derived without it)",
        )
    ]
    assert report.checks[-1].status is Status.INDETERMINATE and report.exit_code() == ExitCode.FAILED


def test_rebuild_never_reads_outside_the_package(demo: tuple[Path, Path], tmp_path: Path) -> None:
    zip_path, cert = demo
    secret = tmp_path / "secret.json"
    secret.write_text("{}")

    def point_outside(data: bytes) -> bytes:
        doc = json.loads(data)
        doc["requests"][0]["file"] = "../../../../" + str(secret)
        return json.dumps(doc).encode()

    forged = rebag(zip_path, tmp_path, edit={"data/collection.json": point_outside})
    report = verify_package(forged, trust=[cert], rebuild=True)
    [reason] = [reason for name, _, reason in problems(report) if name == "rebuild"]
    assert reason.startswith("cannot re-derive from this package: ../../../../")
    assert "is listed in data/collection.json but missing" in reason


def test_rebuild_check_can_be_replaced(package: Path) -> None:
    def always(package: OpenedPackage, trust: Sequence[TrustSpec], /) -> Iterable[CheckResult]:
        return [passed("rebuild", "stand-in")]

    assert verify_package(package, rebuild=True, rebuild_check=always).passed


def test_rebuild_imports_no_azure_ai_ml(demo: tuple[Path, Path]) -> None:
    zip_path, cert = demo
    code = (
        "import sys\n"
        "from evidence.cli import main\n"
        "code = main(['verify', sys.argv[1], '--trust', sys.argv[2], '--rebuild', '--json'])\n"
        "print(code, sorted(m for m in sys.modules if m == 'azure.ai.ml' or m.startswith('azure.ai.ml.')))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(zip_path), str(cert)], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip().splitlines()[-1] == "0 []"


# -- the opened package --------------------------------------------------------------------------


def test_opened_package_lists_and_streams_members(package: Path) -> None:
    with OpenedPackage.open(package) as pkg:
        assert pkg.root == "pkg"
        assert pkg.payload_files == tuple(sorted(PAYLOAD, key=str.encode))
        assert pkg.tag_files == ("bag-info.txt", "bagit.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt")
        assert pkg.read("data/collection.json") == PAYLOAD["data/collection.json"]
        assert pkg.size("data/records/model_versions.jsonl") == len(PAYLOAD["data/records/model_versions.jsonl"])
        assert pkg.sha256("data/report/logo.png") == (
            hashlib.sha256(PAYLOAD["data/report/logo.png"]).hexdigest(),
            len(PAYLOAD["data/report/logo.png"]),
        )
        with pytest.raises(KeyError, match="not in the package"):
            pkg.read("data/missing.json")


def test_opened_package_turns_a_bad_crc_into_a_corrupt_member_error() -> None:
    with OpenedPackage.open(MALICIOUS / "bad_crc.zip") as pkg, pytest.raises(CorruptMemberError) as caught:
        pkg.read("data/a.json")
    assert caught.value.member == "data/a.json"


# -- reading members: positioned reads, ISA-L or zlib, inflate overlapped with hashing -------------


def raw_zip(
    path: Path,
    members: Sequence[tuple[str, int, bytes, int, int]],
    *,
    local_names: Sequence[str] = (),
    central_flags: int = 0x800,
    local_flags: int = 0x800,
) -> Path:
    """A zip written byte by byte: ``(name, method, data as stored, crc, declared size)`` per member,
    so a test can make the central directory say what it likes. ``local_names`` overrides the
    name in each local header."""
    body, central = bytearray(), bytearray()
    for index, (name, method, data, crc, size) in enumerate(members):
        raw = name.encode()
        local = (local_names[index] if index < len(local_names) else name).encode()
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, local_flags, method, 0, 0x21, crc, len(data), size, len(local), 0
        )
        body += local + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x314, 20, central_flags, method, 0, 0x21, crc, len(data), size,
            len(raw), 0, 0, 0, 0, 0o100644 << 16, offset,
        )  # fmt: skip
        central += raw
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


BIG = b"".join(
    b'{"n": %d, "event": "role assignment written", "by": "%032x"}\n' % (i, i * 7919) for i in range(120_000)
)


def test_large_and_small_members_hash_the_same_on_every_path(tmp_path: Path) -> None:
    assert len(BIG) > members.PIPELINE_MIN  # inflated on one thread, hashed on another
    files = {**PAYLOAD, "data/records/big.jsonl": BIG, "data/raw/stored.png": BIG[: 5 << 20]}
    expected = {rel: (hashlib.sha256(data).hexdigest(), len(data)) for rel, data in files.items()}
    with OpenedPackage.open(build(tmp_path, files)) as pkg:
        for workers in (1, 2, 4):
            assert dict(pkg.sha256_many(pkg.payload_files, workers=workers)) == expected
        assert pkg.sha256("data/records/big.jsonl") == expected["data/records/big.jsonl"]
        spool = io.BytesIO()
        assert pkg.copy_to("data/raw/stored.png", spool) == 5 << 20 and spool.getvalue() == BIG[: 5 << 20]


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_large_member_is_named_not_hung(tmp_path: Path, workers: int) -> None:
    data = deflate(BIG)
    broken = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
    path = raw_zip(
        tmp_path / "c.zip",
        [
            ("pkg/data/big.jsonl", zipfile.ZIP_DEFLATED, broken, zlib.crc32(BIG), len(BIG)),
            ("pkg/data/ok.json", zipfile.ZIP_STORED, b"{}", zlib.crc32(b"{}"), 2),
        ],
    )
    with OpenedPackage.open(path) as pkg:
        found = dict(pkg.sha256_many(pkg.files, workers=workers))
    assert isinstance(found["data/big.jsonl"], CorruptMemberError)
    assert found["data/ok.json"] == (hashlib.sha256(b"{}").hexdigest(), 2)


CRAFTED: dict[str, tuple[tuple[str, int, bytes, int, int], str]] = {
    "declares fewer bytes than it inflates to": (
        ("pkg/data/a.json", zipfile.ZIP_DEFLATED, deflate(b"x" * 5000), zlib.crc32(b"x" * 5000), 4000),
        "inflates to more than the declared 4000 bytes",
    ),
    "declares more bytes than it inflates to": (
        ("pkg/data/a.json", zipfile.ZIP_DEFLATED, deflate(b"x" * 5000), zlib.crc32(b"x" * 5000), 6000),
        "5000 bytes, the zip directory says 6000",
    ),
    "bytes after the DEFLATE stream": (
        ("pkg/data/a.json", zipfile.ZIP_DEFLATED, deflate(b"{}") + b"junk", zlib.crc32(b"{}"), 2),
        "bytes after the end of the DEFLATE stream",
    ),
    "DEFLATE stream cut short": (
        ("pkg/data/a.json", zipfile.ZIP_DEFLATED, deflate(BIG[:100_000])[:-40], zlib.crc32(BIG[:100_000]), 100_000),
        "the DEFLATE stream does not end within the member",
    ),
    "stored member whose sizes disagree": (
        ("pkg/data/a.json", zipfile.ZIP_STORED, b"{}", zlib.crc32(b"{}"), 3),
        "stored member of 2 bytes declares 3",
    ),
    "garbage instead of DEFLATE": (
        ("pkg/data/a.json", zipfile.ZIP_DEFLATED, b"\xff" * 64, 0, 10),
        "broken DEFLATE stream: ",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_member_that_contradicts_the_central_directory_is_corrupt(tmp_path: Path, case: str) -> None:
    member, reason = CRAFTED[case]
    with OpenedPackage.open(raw_zip(tmp_path / "c.zip", [member])) as pkg, pytest.raises(CorruptMemberError) as caught:
        pkg.sha256("data/a.json")
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_local_header_naming_another_file_is_corrupt(tmp_path: Path) -> None:
    member = ("pkg/data/a.json", zipfile.ZIP_STORED, b"{}", zlib.crc32(b"{}"), 2)
    path = raw_zip(tmp_path / "c.zip", [member], local_names=["pkg/data/b.json"])
    report = verify_package(path)
    assert ("bagit.declaration", "bagit.txt", "bagit.txt is missing: not a BagIt bag") in problems(report)
    with OpenedPackage.open(path) as pkg, pytest.raises(CorruptMemberError, match="local header names"):
        pkg.read("data/a.json")


def rchar() -> int:
    """Bytes this process has read through system calls so far (Linux /proc)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
@pytest.mark.parametrize("workers", [1, 2])
def test_each_member_is_read_once_even_when_spooled_and_read_again(tmp_path: Path, workers: int) -> None:
    pdf = os.urandom(3 << 20)  # does not compress: 3 MiB read from the zip each time it is inflated
    files = {**PAYLOAD, "data/report/report.pdf": pdf}
    with OpenedPackage.open(build(tmp_path, files)) as pkg:
        pkg.keep_spooled("data/report/report.pdf")
        hashed = dict(pkg.sha256_many(pkg.payload_files, workers=workers))
        assert hashed["data/report/report.pdf"] == (hashlib.sha256(pdf).hexdigest(), len(pdf))
        before = rchar()
        spool = pkg.spooled("data/report/report.pdf")
        assert pkg.sha256("data/report/report.pdf") == hashed["data/report/report.pdf"]
        assert list(pkg.sha256_many(["data/report/report.pdf"], workers=workers)) == [
            ("data/report/report.pdf", hashed["data/report/report.pdf"])
        ]
        assert rchar() - before < 64 << 10, "the spooled member was read from the zip again"
        assert spool.read() == pdf
        manifest = pkg.read("manifest-sha256.txt")
        noise = -(rchar() - rchar())  # reading /proc/self/io counts too
        before = rchar()
        assert pkg.sha256("manifest-sha256.txt") == (hashlib.sha256(manifest).hexdigest(), len(manifest))
        assert rchar() - before <= noise, "a member read whole was hashed in the same pass"
    assert spool.closed, "the package deletes its temporary copies when it is closed"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (0x840, "encrypted member (strong encryption flag)"),
        (0x820, "compressed patched data (unsupported)"),
    ],
)
def test_members_flagged_as_strongly_encrypted_or_patched_are_refused(tmp_path: Path, flags: int, reason: str) -> None:
    member = ("pkg/data/a.json", zipfile.ZIP_STORED, b"{}", zlib.crc32(b"{}"), 2)
    report = verify_package(raw_zip(tmp_path / "c.zip", [member], central_flags=flags))
    assert problems(report) == [("archive.safety", "pkg/data/a.json", reason)]
    local_only = raw_zip(tmp_path / "l.zip", [member], local_flags=flags)
    with OpenedPackage.open(local_only) as pkg, pytest.raises(CorruptMemberError, match="encrypted or patched"):
        pkg.read("data/a.json")


def test_verify_falls_back_to_zlib_without_isal(package: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['isal'] = None  # as if isal were not installed\n"
        "from evidence.verify import verify_package\n"
        "from evidence.verify.members import INFLATER\n"
        "print(INFLATER, verify_package(sys.argv[1]).passed)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["zlib", "True"]


def test_importing_verify_does_not_import_azure() -> None:
    code = (
        "import sys, evidence.verify, evidence.bundle.bagit, evidence.bundle.archive\n"
        "bad = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
        "print(bad)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# -- properties ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package_members(package: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(package) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_any_byte_of_any_member_is_caught(
    package: Path, package_members: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    candidates = [i for i, (_, body) in enumerate(package_members) if body]
    index = data.draw(st.sampled_from(candidates), label="member")
    name, body = package_members[index]
    offset = data.draw(st.integers(0, len(body) - 1), label="offset")
    mask = data.draw(st.integers(1, 255), label="xor")
    changed = body[:offset] + bytes([body[offset] ^ mask]) + body[offset + 1 :]
    with tempfile.TemporaryDirectory() as tmp:
        bad = rezip(package, Path(tmp) / "t.zip", edit={name.split("/", 1)[1]: lambda _: changed})
        report = verify_package(bad)
    assert not report.passed, f"{name}[{offset}] ^= {mask:#x} went unnoticed"
    assert report.exit_code() == ExitCode.FAILED


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupting_any_byte_of_the_zip_never_crashes_or_passes_changed_content(
    package: Path, package_members: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    raw = package.read_bytes()
    offset = data.draw(st.integers(0, len(raw) - 1), label="offset")
    mask = data.draw(st.integers(1, 255), label="xor")
    corrupted = raw[:offset] + bytes([raw[offset] ^ mask]) + raw[offset + 1 :]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.zip"
        path.write_bytes(corrupted)
        report = verify_package(path)  # must not raise, whatever the byte
    assert report.exit_code() in (ExitCode.OK, ExitCode.FAILED)
    if report.passed:
        # A byte that carries no content (a timestamp, a version field) may change; content may not.
        with zipfile.ZipFile(io.BytesIO(corrupted)) as zf:
            assert [(i.filename, zf.read(i)) for i in zf.infolist()] == package_members


def test_members_hashed_largest_first_come_back_in_the_order_asked(tmp_path: Path) -> None:
    # A big member in the middle (larger than all after it: inflated and hashed on two threads),
    # a second large one, and small ones around them; results follow the order given, not the
    # order the pool finished them in, and each digest is the member's.
    rng = random.Random(6)  # noqa: S311 - test data, not a secret
    files = {f"data/raw/{i:03d}.json": rng.randbytes(rng.randrange(10, 3000)) for i in range(40)}
    rows = (f'{{"event": {rng.getrandbits(64)}, "kind": "write"}}\n'.encode() for _ in range(160_000))
    files["data/records/big.jsonl"] = b"".join(rows)  # ~6 MB, over PIPELINE_MIN
    files["data/records/mid.csv"] = rng.randbytes(1 << 20)
    path = build(tmp_path, files)
    with OpenedPackage.open(path) as pkg:
        asked = sorted(files, key=lambda name: hashlib.sha256(name.encode()).digest())  # any order
        got = list(pkg.sha256_many(asked, workers=2))
    assert [rel for rel, _ in got] == asked
    assert {rel: digest for rel, digest in got} == {
        rel: (hashlib.sha256(files[rel]).hexdigest(), len(files[rel])) for rel in asked
    }
