"""``OpenedPackage``: a package zip whose archive safety has been checked once, on opening.

Parse, don't validate: if an ``OpenedPackage`` exists, its zip has exactly one top-level folder
and every member passed :func:`evidence.verify.archive_safety.check_archive`. Code that holds one
(the BagIt checks, the signature checker, ``--rebuild``) addresses members by their path inside the
bag (``data/records/x.jsonl``), streams them (through :mod:`evidence.verify.members`: positioned
reads, several members hashed at once), and never touches the disk.
"""

from __future__ import annotations

import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

from evidence.bundle import layout
from evidence.errors import EvidenceError, ExitCode, VerificationError
from evidence.verify.archive_safety import DEFAULT_LIMITS, ArchiveProblem, Limits, check_archive
from evidence.verify.members import MemberError, MemberReader, default_workers

# What zipfile and zlib raise on a damaged archive or member (a bad CRC, a truncated stream,
# garbage where a header should be). None of these may escape as a traceback.
_CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, NotImplementedError)


class PackageUnreadableError(EvidenceError):
    """The package file could not be read at all: missing, a directory, permission denied."""

    exit_code = ExitCode.CANNOT_RUN


class NotAZipError(VerificationError):
    """The file is not a readable zip archive (wrong format, truncated, damaged directory)."""


class UnsafeArchiveError(VerificationError):
    """The zip breaks an archive safety rule; nothing in it was read."""

    def __init__(self, problems: tuple[ArchiveProblem, ...]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"unsafe archive: {first}{more}")
        self.problems = problems


class CorruptMemberError(VerificationError):
    """A member's bytes cannot be read back: bad CRC, broken DEFLATE stream, wrong length."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"{member}: corrupt member: {reason}")
        self.member = member
        self.reason = reason


class OpenedPackage:
    """A safe-to-read package zip. Build it with :meth:`open`; use it as a context manager."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, root: str, limits: Limits, fp: IO[bytes] | None = None) -> None:
        self.path = path
        self._fp = fp  # ZipFile does not close a file object it was handed
        self.root = root
        self.limits = limits
        self._zf = zf
        # Members are read through the file zipfile was given (positioned reads, no reopening).
        self._reader = MemberReader(fp if fp is not None else zf.fp)  # type: ignore[arg-type]
        prefix = root + "/"
        self._infos: dict[str, zipfile.ZipInfo] = {
            info.orig_filename[len(prefix) :]: info for info in zf.infolist() if not info.is_dir()
        }
        #: Every file in the bag (no directory entries), bag-relative, sorted byte-wise.
        self.files: tuple[str, ...] = tuple(sorted(self._infos, key=layout.sort_key))

    @classmethod
    def open(cls, path: Path, *, limits: Limits = DEFAULT_LIMITS) -> OpenedPackage:
        """Open ``path`` and check archive safety.

        Raises :class:`PackageUnreadableError` (could not run), :class:`NotAZipError` or
        :class:`UnsafeArchiveError` (invalid package).
        """
        path = Path(path)
        try:
            fp = open(path, "rb")  # noqa: SIM115 - owned by the ZipFile below, closed by close()
        except OSError as exc:
            raise PackageUnreadableError(
                f"cannot read {path}: {exc.strerror or exc}", hint="check the path and its permissions"
            ) from exc
        try:
            zf = zipfile.ZipFile(fp)
        except OSError as exc:
            fp.close()
            raise PackageUnreadableError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except _CORRUPT as exc:
            fp.close()
            raise NotAZipError(_not_a_zip_reason(path, exc)) from exc
        root, problems = check_archive(zf.infolist(), limits=limits)
        if problems or root is None:
            zf.close()
            fp.close()
            raise UnsafeArchiveError(problems or (ArchiveProblem(None, "no package folder"),))
        return cls(path, zf, root, limits, fp)

    # -- what is in the bag ---------------------------------------------------------------------

    @property
    def payload_files(self) -> tuple[str, ...]:
        return tuple(f for f in self.files if layout.is_payload_file(f))

    @property
    def tag_files(self) -> tuple[str, ...]:
        """Files outside ``data/`` that are not reserved for signatures (manifests included)."""
        return tuple(f for f in self.files if not layout.is_payload_file(f) and not layout.is_signature_file(f))

    @property
    def signature_files(self) -> tuple[str, ...]:
        return tuple(f for f in self.files if layout.is_signature_file(f))

    def __contains__(self, relpath: object) -> bool:
        return relpath in self._infos

    def size(self, relpath: str) -> int:
        """The member's uncompressed size as the zip directory declares it."""
        return self._info(relpath).file_size

    # -- reading --------------------------------------------------------------------------------

    def open_member(self, relpath: str) -> IO[bytes]:
        """A stream over one member. Reads may raise ``zipfile.BadZipFile``/``zlib.error``; prefer
        :meth:`read` and :meth:`sha256`, which turn those into :class:`CorruptMemberError`."""
        return self._zf.open(self._info(relpath))

    def read(self, relpath: str, *, max_bytes: int | None = None) -> bytes:
        """A whole (small) member, e.g. a tag file; refused above ``max_bytes``."""
        limit = self.limits.max_tag_file_size if max_bytes is None else max_bytes
        info = self._info(relpath)
        if info.file_size > limit:
            raise VerificationError(f"{relpath}: {info.file_size} bytes is more than the {limit} allowed")
        chunks: list[bytes] = []
        self._stream(relpath, chunks.append)
        return b"".join(chunks)

    def sha256(self, relpath: str) -> tuple[str, int]:
        """SHA-256 hex digest and length of a member, streamed in chunks of at most 1 MiB."""
        info = self._info(relpath)
        try:
            return self._reader.sha256(info)
        except _READ_ERRORS as exc:
            raise _corrupt(relpath, exc) from exc

    def sha256_many(
        self, relpaths: Iterable[str], *, workers: int | None = None
    ) -> Iterator[tuple[str, tuple[str, int] | CorruptMemberError]]:
        """``(relpath, (digest, length))`` for each member, in the order given, or the member's
        :class:`CorruptMemberError` in place of the digest.

        Hashes up to ``workers`` members at once (default: the usable CPUs, at most 4), and
        inflates a large member on one thread while another hashes it; at most ``2 * workers``
        members are in flight, so memory stays bounded whatever the package holds.
        """
        n = default_workers() if workers is None else max(1, workers)
        if n == 1:
            for rel in relpaths:
                try:
                    yield rel, self.sha256(rel)
                except CorruptMemberError as exc:
                    yield rel, exc
            return

        def one(rel: str, helper: ThreadPoolExecutor) -> tuple[str, int] | CorruptMemberError:
            try:
                return self._reader.sha256(self._info(rel), helper=helper)
            except _READ_ERRORS as exc:
                return _corrupt(rel, exc)

        with (
            ThreadPoolExecutor(n, thread_name_prefix="verify-inflate") as pool,
            ThreadPoolExecutor(n, thread_name_prefix="verify-sha256") as helper,
        ):
            window: deque[tuple[str, Future[tuple[str, int] | CorruptMemberError]]] = deque()
            for rel in relpaths:
                self._info(rel)  # a KeyError for an unknown member, here and not in a thread
                window.append((rel, pool.submit(one, rel, helper)))
                if len(window) >= 2 * n:
                    done, future = window.popleft()
                    yield done, future.result()
            while window:
                done, future = window.popleft()
                yield done, future.result()

    def copy_to(self, relpath: str, out: IO[bytes]) -> int:
        """Stream a member into ``out`` (e.g. a temporary file a library needs to seek in)."""
        return self._stream(relpath, out.write)

    def _stream(self, relpath: str, sink: Callable[[bytes], object]) -> int:
        info = self._info(relpath)
        try:
            return self._reader.stream(info, sink)
        except _READ_ERRORS as exc:
            raise _corrupt(relpath, exc) from exc

    def _info(self, relpath: str) -> zipfile.ZipInfo:
        try:
            return self._infos[relpath]
        except KeyError:
            raise KeyError(f"{relpath!r} is not in the package") from None

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        self._zf.close()
        if self._fp is not None:
            self._fp.close()

    def __enter__(self) -> OpenedPackage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_READ_ERRORS = (MemberError, OSError)


def _corrupt(relpath: str, exc: BaseException) -> CorruptMemberError:
    if isinstance(exc, OSError):
        return CorruptMemberError(relpath, f"read error: {exc.strerror or exc}")
    return CorruptMemberError(relpath, str(exc))


def _not_a_zip_reason(path: Path, exc: BaseException) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if head == b"PK\x03\x04" and isinstance(exc, zipfile.BadZipFile):
        return f"truncated or damaged zip archive: {exc}"
    return f"not a zip archive: {exc}"
