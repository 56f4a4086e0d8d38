"""Write an RFC 8493 BagIt 1.0 bag around a payload that is already in place.

Written directly rather than with bagit-python, whose ``make_bag`` writes version 0.97, today's
date, its own version string and an unsorted tag manifest (all of which change the bytes), moves
files and ``chdir``s. bagit-python stays useful as an independent validator in the tests.

Byte-level choices (all fixed, so the same payload and info give the same bytes):

* every tag file is UTF-8 with LF line endings;
* ``bag-info.txt`` lists the caller's labels plus ``Payload-Oxum``, sorted byte-wise by label;
  the date, if any, is whatever the caller passes (``Bagging-Date`` from the package clock), never
  the current date;
* manifests are sorted byte-wise by path, one ``<hex>  <path>`` line each (two spaces, as
  ``sha256sum`` writes and reads them), paths percent-encoded per RFC 8493 section 2.1.3;
* the tag manifest lists every tag file except itself and the files reserved for detached
  signatures (see :mod:`evidence.bundle.layout`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from evidence.bundle import layout
from evidence.errors import PackageError

CHUNK = 1 << 20  # 1 MiB: large enough that hashing runs at hashlib's speed, small enough for memory


@dataclass(frozen=True)
class BagDigest:
    """What :func:`write_bag` wrote: the tag manifest's digest pins the whole bag."""

    tagmanifest_sha256: str
    manifest_sha256: str
    payload_files: int
    payload_bytes: int
    tag_files: int  # entries in the tag manifest

    @property
    def payload_oxum(self) -> str:
        return f"{self.payload_bytes}.{self.payload_files}"


def write_bag(bag_dir: Path, *, bag_info: Mapping[str, str]) -> BagDigest:
    """Write ``bagit.txt``, ``bag-info.txt`` and both SHA-256 manifests into ``bag_dir``.

    ``bag_dir/data`` must already hold the payload: regular files and directories only (a symlink,
    FIFO or device is refused with :class:`PackageError`, as is any name the verifier would reject).
    """
    bag_dir = Path(bag_dir)
    payload_root = bag_dir / layout.PAYLOAD_DIR
    try:
        mode = os.lstat(payload_root).st_mode
    except FileNotFoundError:
        raise PackageError(
            f"no payload directory {payload_root}", hint="put the payload under <bag>/data first"
        ) from None
    if not stat.S_ISDIR(mode):
        raise PackageError(f"{payload_root} is not a directory (symlinks are refused)")
    info_text = _bag_info_text(bag_info, payload_oxum="")  # validate labels before any hashing

    try:
        files = sorted(iter_bag_files(bag_dir), key=layout.sort_key)
        _refuse_collisions([*files, *layout.REQUIRED_TAG_FILES, layout.TAGMANIFEST])
        payload = [f for f in files if layout.is_payload_file(f)]
        payload_lines: list[str] = []
        total = 0
        for rel in payload:
            digest, size = hash_file(bag_dir / rel)
            total += size
            payload_lines.append(f"{digest}  {layout.encode_manifest_path(rel)}\n")

        manifest_bytes = "".join(payload_lines).encode("utf-8")
        info_text = _bag_info_text(bag_info, payload_oxum=f"{total}.{len(payload)}")
        _write(bag_dir / layout.BAGIT_TXT, layout.BAGIT_DECLARATION)
        _write(bag_dir / layout.MANIFEST, manifest_bytes)
        _write(bag_dir / layout.BAG_INFO_TXT, info_text.encode("utf-8"))

        tag_files = sorted(
            {*(f for f in files if _is_listed_tag_file(f)), *layout.REQUIRED_TAG_FILES},
            key=layout.sort_key,
        )
        tag_lines = [f"{hash_file(bag_dir / rel)[0]}  {layout.encode_manifest_path(rel)}\n" for rel in tag_files]
        tagmanifest_bytes = "".join(tag_lines).encode("utf-8")
        _write(bag_dir / layout.TAGMANIFEST, tagmanifest_bytes)
    except OSError as exc:
        raise PackageError(f"could not write the bag in {bag_dir}: {exc}") from exc
    return BagDigest(
        tagmanifest_sha256=hashlib.sha256(tagmanifest_bytes).hexdigest(),
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        payload_files=len(payload),
        payload_bytes=total,
        tag_files=len(tag_files),
    )


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a regular file, streamed in 1 MiB chunks.

    Opened with ``O_NOFOLLOW`` and checked with ``fstat``, so a file swapped for a symlink after the
    directory walk is refused rather than followed.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise PackageError(f"refusing symlink {path}") from exc
        raise
    with os.fdopen(fd, "rb", buffering=0) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PackageError(f"refusing non-regular file {path}")
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        size = 0
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def _is_listed_tag_file(rel: str) -> bool:
    return not layout.is_payload_file(rel) and rel != layout.TAGMANIFEST and not layout.is_signature_file(rel)


def iter_bag_files(bag_dir: Path) -> Iterator[str]:
    """Every regular file under ``bag_dir`` as a ``/``-separated relative path."""
    stack = [""]
    while stack:
        prefix = stack.pop()
        with os.scandir(bag_dir / prefix if prefix else bag_dir) as entries:
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                problem = layout.path_problem(rel)
                if problem is not None:
                    raise PackageError(f"refusing {rel!r} in {bag_dir}: {problem}")
                if entry.is_symlink():
                    raise PackageError(f"refusing symlink {rel} in {bag_dir}")
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel + "/")
                elif entry.is_file(follow_symlinks=False):
                    _refuse_foreign_manifest(rel)
                    yield rel
                else:
                    raise PackageError(f"refusing non-regular file {rel} in {bag_dir}")


def _refuse_foreign_manifest(rel: str) -> None:
    # Only SHA-256 manifests are written and verified; a stale manifest-md5.txt would be a manifest
    # that nobody keeps up to date, which bag validators would nonetheless check.
    if "/" in rel or not rel.endswith(".txt"):
        return
    if (rel.startswith("manifest-") and rel != layout.MANIFEST) or (
        rel.startswith("tagmanifest-") and rel != layout.TAGMANIFEST
    ):
        raise PackageError(f"refusing unsupported manifest {rel} (only SHA-256 manifests are written)")


def _refuse_collisions(files: list[str]) -> None:
    seen: dict[str, str] = {}
    for rel in dict.fromkeys(files):
        key = layout.collision_key(rel)
        if key in seen:
            raise PackageError(
                f"{seen[key]!r} and {rel!r} differ only in case or Unicode normalisation",
                hint="they would overwrite each other when the package is unpacked on Windows or macOS",
            )
        seen[key] = rel


_RESERVED_LABELS = {"payload-oxum"}


def _bag_info_text(bag_info: Mapping[str, str], *, payload_oxum: str) -> str:
    lines: list[tuple[str, str]] = []
    for label, value in bag_info.items():
        if label.lower() in _RESERVED_LABELS:
            raise PackageError(f"bag-info label {label!r} is computed by write_bag; do not pass it")
        if not label or label != label.strip() or ":" in label or any(ord(c) < 0x20 or ord(c) == 0x7F for c in label):
            raise PackageError(f"invalid bag-info label {label!r}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
            raise PackageError(
                f"invalid bag-info value for {label!r}: {value!r}",
                hint="values are one line without control characters or surrounding whitespace",
            )
        lines.append((label, value))
    lines.append(("Payload-Oxum", payload_oxum))
    lines.sort(key=lambda kv: layout.sort_key(kv[0]))
    return "".join(f"{label}: {value}\n" for label, value in lines)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
