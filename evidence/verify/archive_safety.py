"""Archive safety: decide from the zip's central directory alone whether a package may be read.

Runs before a single member is decompressed. Every rule *rejects*; nothing is sanitised (Python's
``zipfile.extract`` silently rewrites ``../x`` to ``x``, which is right for an unpacker and wrong
for a verifier that must say the package is invalid). Nothing is ever extracted to disk.

Threat model notes, where the code relies on them:

* ``zipfile`` never returns more than a member's declared ``file_size`` bytes (``ZipExtFile``
  truncates the stream to it), so limits checked on declared sizes bound what a verifier reads; a
  member that lies about its size fails its CRC or its length check instead.
* ``ZipInfo`` truncates names at a NUL byte and rewrites the host separator; the raw name is in
  ``orig_filename``, which is what these rules look at.
* The same bytes can be claimed by two central-directory entries (the "overlapping files" zip bomb,
  CPython gh-109858, fixed in 3.11.8 only); :func:`check_archive` refuses overlaps itself.
"""

from __future__ import annotations

import itertools
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from evidence.bundle import layout

_ZIP_ENCRYPTED = 0x1  # general purpose bit 0 (APPNOTE 4.4.4)
_ZIP_PATCHED = 0x20  # bit 5: compressed patched data
_ZIP_STRONG_ENCRYPTION = 0x40  # bit 6
_LOCAL_HEADER_FIXED = 30  # bytes in a local file header before the name (APPNOTE 4.3.7)
ALLOWED_METHODS = {zipfile.ZIP_STORED: "STORED", zipfile.ZIP_DEFLATED: "DEFLATE"}


@dataclass(frozen=True)
class Limits:
    """How much a verifier agrees to read. The defaults are far above any real evidence package
    (a year of a busy tenant is a few GB) and far below what would exhaust a laptop."""

    max_members: int = 200_000
    max_member_size: int = 8 << 30  # 8 GiB uncompressed, per member
    max_total_size: int = 64 << 30  # 64 GiB uncompressed, all members
    #: DEFLATE tops out near 1032:1 on zeros; evidence JSON compresses 5-10:1, pretty-printed
    #: JSON with long runs of indentation rarely beyond 50:1.
    max_ratio: int = 250
    #: Members smaller than this are exempt from the ratio rule (a 1 KiB file of spaces is no bomb).
    ratio_min_size: int = 1 << 20
    #: Tag files (manifests, bag-info) are read into memory; payload members are only streamed.
    max_tag_file_size: int = 256 << 20


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ArchiveProblem:
    """One reason a zip may not be read; ``member`` is the raw name from the central directory."""

    member: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.member}: {self.reason}" if self.member is not None else self.reason


def check_archive(
    infos: Sequence[zipfile.ZipInfo], *, limits: Limits = DEFAULT_LIMITS
) -> tuple[str | None, tuple[ArchiveProblem, ...]]:
    """The package's root folder name and every problem found; safe only when no problems."""
    problems: list[ArchiveProblem] = []
    if len(infos) > limits.max_members:
        # Refuse before looking at each entry: the count alone is the attack.
        return None, (ArchiveProblem(None, f"too many members ({len(infos)} > {limits.max_members})"),)

    seen: dict[str, str] = {}
    names: set[str] = set()
    roots: dict[str, None] = {}
    total = 0
    for info in infos:
        name = info.orig_filename
        problems.extend(ArchiveProblem(name, reason) for reason in _member_problems(info, limits))
        if name in names:
            problems.append(ArchiveProblem(name, "duplicate member name"))
        else:
            names.add(name)
            key = layout.collision_key(name.rstrip("/"))
            if key in seen:
                problems.append(
                    ArchiveProblem(name, f"name collides with {seen[key]!r} (differs only in case or normalisation)")
                )
            seen.setdefault(key, name)
        top, sep, _ = name.partition("/")
        if not sep:
            problems.append(ArchiveProblem(name, "not inside the package folder"))
        elif top:
            roots.setdefault(top, None)
        total += info.file_size

    if len(roots) > 1:
        listed = ", ".join(repr(r) for r in roots)
        problems.append(ArchiveProblem(None, f"more than one top-level folder: {listed}"))
    if total > limits.max_total_size:
        problems.append(
            ArchiveProblem(None, f"total uncompressed size {total} exceeds the limit {limits.max_total_size}")
        )
    problems.extend(_overlaps(infos))
    if not infos:
        problems.append(ArchiveProblem(None, "the zip has no members"))
    # Without problems there is exactly one root: every member has a folder and only one exists.
    return (next(iter(roots)) if len(roots) == 1 else None), tuple(problems)


def _member_problems(info: zipfile.ZipInfo, limits: Limits) -> list[str]:
    name = info.orig_filename
    out: list[str] = []
    bare = name[:-1] if name.endswith("/") else name  # a directory entry ends with one '/'
    problem = layout.path_problem(bare)
    if problem is not None:
        out.append(f"unsafe path: {problem}")
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        out.append("symlink member")
    if info.flag_bits & _ZIP_ENCRYPTED:
        out.append("encrypted member")
    elif info.flag_bits & _ZIP_STRONG_ENCRYPTION:
        out.append("encrypted member (strong encryption flag)")
    if info.flag_bits & _ZIP_PATCHED:
        out.append("compressed patched data (unsupported)")
    if info.compress_type not in ALLOWED_METHODS:
        out.append(f"unsupported compression method {info.compress_type} (only STORED and DEFLATE)")
    if name.endswith("/") and info.file_size:
        out.append("directory entry with content")
    if info.file_size > limits.max_member_size:
        out.append(f"uncompressed size {info.file_size} exceeds the limit {limits.max_member_size}")
    if info.file_size >= limits.ratio_min_size:
        ratio = info.file_size // max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            out.append(f"compression ratio {ratio}:1 exceeds the limit {limits.max_ratio}:1 (zip bomb?)")
    return out


def _overlaps(infos: Sequence[zipfile.ZipInfo]) -> list[ArchiveProblem]:
    """Members whose data would overlap the next member's local header: two entries sharing bytes."""
    out: list[ArchiveProblem] = []
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for this, following in itertools.pairwise(ordered):
        end = (
            this.header_offset
            + _LOCAL_HEADER_FIXED
            + len(this.orig_filename.encode("utf-8" if this.flag_bits & 0x800 else "cp437", "replace"))
            + this.compress_size
        )
        if end > following.header_offset:
            out.append(ArchiveProblem(following.orig_filename, f"overlaps member {this.orig_filename!r}"))
    return out
