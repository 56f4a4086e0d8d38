"""Bundle stage: the BagIt 1.0 writer and the deterministic zip."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import bagit
import pytest

from evidence.bundle import layout
from evidence.bundle.archive import compression_for, dos_date_time, write_zip
from evidence.bundle.bagit import BagDigest, write_bag
from evidence.errors import PackageError

WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
PAYLOAD = {
    "data/collection.json": b'{"format": "evidence-collection/v1"}\n',
    "data/records/model_versions.jsonl": b'{"model_name": "fraud", "version": "1"}\n' * 50,
    "data/records/deployments.jsonl": b'{"deployment_name": "blue"}\n',
    "data/raw/models/list.json": b'{"value": []}',
    "data/report/screenshot.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    "data/report/r\u00e9sum\u00e9.txt": b"non-ASCII name\n",
    "data/empty.txt": b"",
}
INFO = {"Bagging-Date": "2025-03-14", "Source-Organization": "Contoso", "External-Identifier": "pkg-1"}


def make_payload(bag_dir: Path, files: dict[str, bytes] = PAYLOAD) -> Path:
    for rel, data in files.items():
        path = bag_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return bag_dir


def build(tmp: Path, files: dict[str, bytes] = PAYLOAD) -> tuple[Path, BagDigest]:
    bag_dir = make_payload(tmp / "bag", files)
    digest = write_bag(bag_dir, bag_info=INFO)
    out = tmp / "package.zip"
    write_zip(bag_dir, out, root="pkg", date_time=WHEN)
    return out, digest


# -- BagIt ---------------------------------------------------------------------------------------


def test_tag_files_have_the_documented_bytes(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    digest = write_bag(bag_dir, bag_info=INFO)

    assert (bag_dir / "bagit.txt").read_bytes() == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    total = sum(len(v) for v in PAYLOAD.values())
    assert (bag_dir / "bag-info.txt").read_text(encoding="utf-8") == (
        "Bagging-Date: 2025-03-14\n"
        "External-Identifier: pkg-1\n"
        f"Payload-Oxum: {total}.{len(PAYLOAD)}\n"
        "Source-Organization: Contoso\n"
    )
    manifest = (bag_dir / "manifest-sha256.txt").read_bytes().decode("utf-8")
    expected = [f"{hashlib.sha256(PAYLOAD[p]).hexdigest()}  {p}\n" for p in sorted(PAYLOAD, key=lambda p: p.encode())]
    assert manifest == "".join(expected)
    tagmanifest = (bag_dir / "tagmanifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("  ")[1] for line in tagmanifest] == ["bag-info.txt", "bagit.txt", "manifest-sha256.txt"]
    assert digest == BagDigest(
        tagmanifest_sha256=hashlib.sha256((bag_dir / "tagmanifest-sha256.txt").read_bytes()).hexdigest(),
        manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest(),
        payload_files=len(PAYLOAD),
        payload_bytes=total,
        tag_files=3,
    )
    assert digest.payload_oxum == f"{total}.{len(PAYLOAD)}"


def test_bagit_python_validates_the_bag_independently(tmp_path: Path) -> None:
    out, _ = build(tmp_path)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as zf:  # our own trusted zip: extracting it here is fine
        zf.extractall(unpacked)
    bag = bagit.Bag(str(unpacked / "pkg"))
    assert bag.version_info == (1, 0)
    bag.validate()  # raises BagValidationError on any problem; emits no warnings on 1.9.0

    (unpacked / "pkg/data/collection.json").write_bytes(b"{}")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(unpacked / "pkg")).validate()


def test_other_tag_files_are_covered_but_signatures_are_not(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    (bag_dir / "VERIFY.txt").write_text("sha256sum -c manifest-sha256.txt\n")
    (bag_dir / "signature").mkdir()
    (bag_dir / "signature/package.sshsig").write_text("sig")
    (bag_dir / "tagmanifest-sha256.txt.minisig").write_text("sig")
    digest = write_bag(bag_dir, bag_info=INFO)
    listed = [line.split("  ")[1] for line in (bag_dir / "tagmanifest-sha256.txt").read_text().splitlines()]
    assert listed == ["VERIFY.txt", "bag-info.txt", "bagit.txt", "manifest-sha256.txt"]
    assert digest.tag_files == 4


def test_manifest_paths_are_percent_encoded_per_rfc_8493(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path, {"data/100%.json": b"{}"})
    write_bag(bag_dir, bag_info={})
    assert (bag_dir / "manifest-sha256.txt").read_text().endswith("  data/100%25.json\n")
    assert layout.decode_manifest_path("data/a%0Ab%0dc%25d%41") == "data/a\nb\rc%d%41"
    assert layout.encode_manifest_path("data/a\nb\rc%d") == "data/a%0Ab%0Dc%25d"


def test_rewriting_a_bag_gives_the_same_bytes(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    first = write_bag(bag_dir, bag_info=INFO)
    assert write_bag(bag_dir, bag_info=INFO) == first


def test_empty_payload_is_a_valid_bag(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    digest = write_bag(tmp_path, bag_info={})
    assert digest.payload_oxum == "0.0"
    assert (tmp_path / "manifest-sha256.txt").read_bytes() == b""


def test_symlink_in_payload_is_refused(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    (bag_dir / "data/link.json").symlink_to("/etc/passwd")
    with pytest.raises(PackageError, match=re.escape("refusing symlink data/link.json")):
        write_bag(bag_dir, bag_info=INFO)


def test_symlinked_payload_directory_is_refused(tmp_path: Path) -> None:
    real = make_payload(tmp_path / "real")
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag/data").symlink_to(real / "data")
    with pytest.raises(PackageError, match="not a directory"):
        write_bag(tmp_path / "bag", bag_info=INFO)


def test_fifo_in_payload_is_refused(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    os.mkfifo(bag_dir / "data/pipe")
    with pytest.raises(PackageError, match="refusing non-regular file data/pipe"):
        write_bag(bag_dir, bag_info=INFO)


def test_missing_payload_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no payload directory"):
        write_bag(tmp_path, bag_info=INFO)


def test_names_that_collide_on_windows_or_macos_are_refused(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path, {"data/Report.json": b"1", "data/report.json": b"2"})
    with pytest.raises(PackageError, match="differ only in case"):
        write_bag(bag_dir, bag_info=INFO)


def test_backslash_in_a_file_name_is_refused(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path, {"data/a\\b.json": b"1"})
    with pytest.raises(PackageError, match="backslash"):
        write_bag(bag_dir, bag_info=INFO)


def test_stale_manifest_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path)
    (bag_dir / "manifest-md5.txt").write_text("")
    with pytest.raises(PackageError, match=re.escape("manifest-md5.txt")):
        write_bag(bag_dir, bag_info=INFO)


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"Payload-Oxum": "1.1"}, "computed by write_bag"),
        ({"Bad:Label": "x"}, "invalid bag-info label"),
        ({" Padded": "x"}, "invalid bag-info label"),
        ({"Note": "two\nlines"}, "invalid bag-info value"),
        ({"Note": " padded"}, "invalid bag-info value"),
    ],
)
def test_bag_info_that_would_not_parse_back_is_refused(tmp_path: Path, info: dict[str, str], message: str) -> None:
    bag_dir = make_payload(tmp_path)
    with pytest.raises(PackageError, match=message):
        write_bag(bag_dir, bag_info=info)
    assert not (bag_dir / "bagit.txt").exists()  # refused before anything was written


# -- deterministic zip ----------------------------------------------------------------------------


def test_zip_entries_are_normalised(tmp_path: Path) -> None:
    out, _ = build(tmp_path)
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
    names = [i.filename for i in infos]
    assert names == sorted(names, key=lambda n: n.encode())
    assert all(n.startswith("pkg/") and not n.endswith("/") for n in names)
    assert "pkg/data/report/r\u00e9sum\u00e9.txt" in names
    for info in infos:
        assert info.date_time == (2025, 3, 14, 9, 26, 52)  # 2-second DOS resolution, rounded down
        assert info.create_system == 3
        assert info.external_attr == (stat.S_IFREG | 0o644) << 16
        assert info.extra == b""
        assert info.comment == b""
        expected = zipfile.ZIP_STORED if info.filename.endswith(".png") else zipfile.ZIP_DEFLATED
        assert info.compress_type == expected


def test_zip_digest_is_returned(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path / "bag")
    write_bag(bag_dir, bag_info=INFO)
    digest = write_zip(bag_dir, tmp_path / "p.zip", root="pkg", date_time=WHEN)
    assert digest == hashlib.sha256((tmp_path / "p.zip").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("when", "stamp"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), (1980, 1, 1, 0, 0, 0)),
        (datetime(2200, 1, 1, tzinfo=UTC), (2107, 12, 31, 23, 59, 58)),
        (datetime.fromisoformat("2025-01-01T09:00:59+09:00"), (2025, 1, 1, 0, 0, 58)),
    ],
)
def test_zip_timestamp_is_utc_clamped_to_dos_range(when: datetime, stamp: tuple[int, ...]) -> None:
    assert dos_date_time(when) == stamp


def test_naive_date_is_refused() -> None:
    with pytest.raises(PackageError, match="timezone-aware"):
        dos_date_time(datetime(2025, 1, 1))  # a naive datetime is the point of the test


def test_already_compressed_formats_are_stored_but_pdfs_are_deflated() -> None:
    assert compression_for("data/x.PNG") == zipfile.ZIP_STORED
    assert compression_for("data/raw.gz") == zipfile.ZIP_STORED
    assert compression_for("data/report/report.pdf") == zipfile.ZIP_DEFLATED
    assert compression_for("data/records/x.jsonl") == zipfile.ZIP_DEFLATED


_BUILD_SCRIPT = """
import os, sys, random
from datetime import datetime, UTC
from pathlib import Path
from evidence.bundle.bagit import write_bag
from evidence.bundle.archive import write_zip
os.umask(int(sys.argv[2], 8))
work = Path(sys.argv[1])
files = {"data/b.json": b"{}", "data/a/z.jsonl": b"1\\n" * 1000, "data/a/y.png": bytes(range(256)), "data/c.txt": b""}
for rel, data in reversed(list(files.items())):
    p = work / "bag" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    t = random.randint(0, 2**31)
    os.utime(p, (t, t))
write_bag(work / "bag", bag_info={"Bagging-Date": "2025-01-01"})
print(write_zip(work / "bag", work / "out.zip", root="pkg", date_time=datetime(2025, 1, 1, 12, tzinfo=UTC)))
"""


def test_two_builds_in_different_environments_give_identical_zips(tmp_path: Path) -> None:
    digests = []
    for n, (tz, umask) in enumerate([("Asia/Tokyo", "077"), ("America/St_Johns", "022")]):
        work = tmp_path / str(n)
        work.mkdir()
        env = {**os.environ, "TZ": tz, "LC_ALL": "C" if n else "C.UTF-8"}
        run = subprocess.run(
            [sys.executable, "-c", _BUILD_SCRIPT, str(work), umask],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        digests.append(run.stdout.strip())
    assert digests[0] == digests[1]
    assert (tmp_path / "0/out.zip").read_bytes() == (tmp_path / "1/out.zip").read_bytes()


def test_symlink_planted_after_bagging_is_refused_and_old_package_kept(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path / "bag")
    write_bag(bag_dir, bag_info=INFO)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "package.zip").write_bytes(b"previous package")
    (bag_dir / "data/late-link").symlink_to("/etc/passwd")  # appears after bagging
    with pytest.raises(PackageError, match="symlink"):
        write_zip(bag_dir, out_dir / "package.zip", root="pkg", date_time=WHEN)
    assert os.listdir(out_dir) == ["package.zip"]
    assert (out_dir / "package.zip").read_bytes() == b"previous package"


def test_crash_while_writing_cleans_up_the_temp_file(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path / "bag")
    write_bag(bag_dir, bag_info=INFO)
    out_dir = tmp_path / "out"
    (out_dir / "package.zip").mkdir(parents=True)  # the final rename fails: a directory is in the way
    (out_dir / "package.zip" / "keep").write_text("x")
    with pytest.raises(PackageError, match="could not write"):
        write_zip(bag_dir, out_dir / "package.zip", root="pkg", date_time=WHEN)
    assert os.listdir(out_dir) == ["package.zip"]


def test_unreadable_destination_is_a_package_error(tmp_path: Path) -> None:
    bag_dir = make_payload(tmp_path / "bag")
    write_bag(bag_dir, bag_info=INFO)
    with pytest.raises(PackageError, match="could not write"):
        write_zip(bag_dir, tmp_path / "missing-dir" / "p.zip", root="pkg", date_time=WHEN)


@pytest.mark.parametrize("root", ["", "a/b", "..", "C:", "a\\b"])
def test_unsafe_root_folder_name_is_refused(tmp_path: Path, root: str) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(PackageError, match="invalid package root"):
        write_zip(tmp_path, tmp_path / "p.zip", root=root, date_time=WHEN)


@pytest.mark.skipif(shutil.which("unzip") is None, reason="Info-ZIP unzip is not installed")
def test_info_zip_accepts_the_archive(tmp_path: Path) -> None:
    out, _ = build(tmp_path)
    run = subprocess.run(["unzip", "-t", str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout
    assert "No errors detected" in run.stdout
