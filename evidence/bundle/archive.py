"""Zip a bag deterministically: the same bag and date give the same bytes on any machine.

What is fixed, and why:

* entries are every regular file of the bag, under ``<root>/``, sorted byte-wise (UTF-8), with no
  directory entries, no archive or entry comments and no extra fields (``zipfile`` writes a ZIP64
  extra field only for a member over 2 GiB, which is still deterministic);
* every timestamp is the package clock's instant in UTC, clamped to the DOS range 1980–2107 and
  rounded down to DOS's 2-second resolution, so the host time zone and file mtimes do not leak in;
* ``create_system`` is 3 (Unix) and every entry is a regular file with mode 0644, whatever the
  host and umask;
* compression is chosen by file extension alone (never by probing, which would tie the bytes to
  the content in surprising ways): STORED for already-compressed formats, DEFLATE at
  :data:`DEFLATE_LEVEL` for everything else.

Caveat: DEFLATE output depends on the zlib build (zlib 1.2.13 here; zlib-ng differs), so
byte-identical zips across platforms need the same runtime. Verifiers compare manifest digests,
not the zip's own digest.

The zip is written to a temporary file in the destination directory and moved into place with
``os.replace``, so a crash never leaves a half-written package under the final name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from evidence.bundle import layout
from evidence.bundle.bagit import CHUNK, iter_bag_files
from evidence.errors import PackageError

#: DEFLATE level for text-like members (JSON, JSON Lines, CSV, HTML, PDF). Measured with zlib
#: 1.2.13 on this project's record shape (21 MB JSON Lines): level 1 -> 18.7 % at 247 MB/s,
#: level 6 -> 15.4 % at 105 MB/s, level 9 -> 14.6 % at 24 MB/s; on log-like CSV the research
#: measured 32 MB/s at level 6 and 94 MB/s at level 1. Level 6 (zlib's default, also Info-ZIP's)
#: keeps a package ~18 % smaller for years of retention at a cost of seconds per GB at write time;
#: level 9 buys 5 % for 4x the time.
DEFLATE_LEVEL = 6
#: Formats that are compressed already: DEFLATE would spend time for no gain. PDFs are *not*
#: here: a WeasyPrint report compressed to 64 % (fonts and object structure are not compressed).
STORED_SUFFIXES = frozenset(
    {".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".woff", ".woff2"}
)
_DOS_MIN = datetime(1980, 1, 1, tzinfo=UTC)
_DOS_MAX = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


def dos_date_time(date_time: datetime) -> tuple[int, int, int, int, int, int]:
    """The zip timestamp for ``date_time``: UTC, clamped to the DOS range, 2-second resolution."""
    if date_time.tzinfo is None:
        raise PackageError("the package date must be timezone-aware (use the package clock)")
    t = min(max(date_time.astimezone(UTC), _DOS_MIN), _DOS_MAX)
    return (t.year, t.month, t.day, t.hour, t.minute, t.second - t.second % 2)


def compression_for(relpath: str) -> int:
    suffix = PurePosixPath(relpath).suffix.lower()
    return zipfile.ZIP_STORED if suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED


def write_zip(bag_dir: Path, out_path: Path, *, root: str, date_time: datetime) -> str:
    """Zip every file of ``bag_dir`` under ``root/`` into ``out_path``; return the zip's SHA-256."""
    bag_dir, out_path = Path(bag_dir), Path(out_path)
    problem = layout.path_problem(root)
    if problem is not None or "/" in root:
        raise PackageError(f"invalid package root folder name {root!r}: {problem or 'contains /'}")
    stamp = dos_date_time(date_time)
    try:
        files = sorted(iter_bag_files(bag_dir), key=layout.sort_key)
    except OSError as exc:
        raise PackageError(f"could not read the bag {bag_dir}: {exc}") from exc

    tmp = out_path.with_name(f".{out_path.name}.{secrets.token_hex(8)}.tmp")
    try:
        # O_EXCL: never write through a file (or symlink) someone else put at the temporary name.
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        with os.fdopen(fd, "w+b") as raw:
            with zipfile.ZipFile(raw, "w") as zf:
                for rel in files:
                    _add(zf, bag_dir / rel, f"{root}/{rel}", stamp)
            raw.flush()
            os.fsync(raw.fileno())
            raw.seek(0)
            digest = hashlib.file_digest(raw, "sha256").hexdigest()
        os.replace(tmp, out_path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise PackageError(f"could not write {out_path}: {exc}") from exc
        raise
    return digest


def _add(zf: zipfile.ZipFile, source: Path, arcname: str, stamp: tuple[int, int, int, int, int, int]) -> None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(source, flags), "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PackageError(f"refusing non-regular file {source}")
        info = zipfile.ZipInfo(arcname, date_time=stamp)
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.compress_type = compression_for(arcname)
        # ZipFile.open(ZipInfo, "w") takes the level from the ZipInfo, not from ZipFile(compresslevel=).
        # The attribute is `_compresslevel` on 3.11/3.12; 3.13 renamed it `compress_level` and
        # kept `_compresslevel` as an alias, so this works on every supported version.
        setattr(info, "_compresslevel", DEFLATE_LEVEL)  # noqa: B010
        # A known size lets zipfile decide up front whether the member needs ZIP64 headers.
        info.file_size = st.st_size
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with zf.open(info, "w") as out:
            while n := f.readinto(buf):
                out.write(view[:n])
