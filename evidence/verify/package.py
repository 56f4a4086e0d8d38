"""``OpenedPackage``: a package zip whose archive safety has been checked once, on opening.

Parse, don't validate: if an ``OpenedPackage`` exists, its zip has exactly one top-level folder
and every member passed :func:`evidence.verify.archive_safety.check_archive`. Code that holds one
(the BagIt checks, the signature checker, ``--rebuild``) addresses members by their path inside the
bag (``data/records/x.jsonl``), streams them (through :mod:`evidence.verify.members`: positioned
reads, several members hashed at once), and never touches the disk.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

from evidence.bundle import layout
from evidence.errors import EvidenceError, ExitCode, VerificationError
from evidence.verify.archive_safety import DEFAULT_LIMITS, ArchiveProblem, Limits, check_archive
from evidence.verify.members import PIPELINE_MIN, MemberError, MemberReader, default_workers

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
        self._digests: dict[str, tuple[str, int]] = {}  # each member is inflated and hashed once
        self._spool_wanted: set[str] = set()
        self._spools: dict[str, IO[bytes]] = {}
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
        """SHA-256 hex digest and length of a member, streamed in chunks of at most 64 KiB.

        Each member is hashed once per opened package: a member already read whole (a tag file,
        the report PDF spooled for PAdES) or hashed before returns the digest of that read.
        """
        known = self._digests.get(relpath)
        if known is not None:
            return known
        outcome, spool = self._hash_one(relpath, None)
        if isinstance(outcome, CorruptMemberError):
            raise outcome
        self._keep(relpath, outcome, spool)
        return outcome

    def keep_spooled(self, relpath: str) -> None:
        """Ask that when ``relpath`` is hashed, a temporary copy be kept for :meth:`spooled` (so a
        member needed as a seekable file, such as the report PDF, is inflated only once)."""
        self._info(relpath)
        self._spool_wanted.add(relpath)

    def spooled(self, relpath: str) -> IO[bytes]:
        """A seekable temporary copy of a member, positioned at its start; the package owns it and
        deletes it on :meth:`close`. Raises :class:`CorruptMemberError` for an unreadable member."""
        spool = self._spools.get(relpath)
        if spool is None:
            spool = tempfile.TemporaryFile(prefix="evidence-verify-")  # noqa: SIM115 - closed by close()
            try:
                self._stream(relpath, spool.write)
            except BaseException:
                spool.close()
                raise
            self._spools[relpath] = spool
        spool.seek(0)
        return spool

    def _hash_one(
        self, relpath: str, helper: ThreadPoolExecutor | None
    ) -> tuple[tuple[str, int] | CorruptMemberError, IO[bytes] | None]:
        """Hash one member (safe to call from a worker thread); its spool when one was asked for."""
        wanted = relpath in self._spool_wanted
        spool = tempfile.TemporaryFile(prefix="evidence-verify-") if wanted else None  # noqa: SIM115 - see _keep
        try:
            outcome = self._reader.sha256(self._info(relpath), helper=helper, tee=spool.write if spool else None)
        except _READ_ERRORS as exc:
            if spool is not None:
                spool.close()
            return _corrupt(relpath, exc), None
        return outcome, spool

    def _keep(self, relpath: str, digest: tuple[str, int], spool: IO[bytes] | None) -> None:
        self._digests[relpath] = digest
        if spool is not None:
            old = self._spools.pop(relpath, None)
            if old is not None:
                old.close()
            self._spools[relpath] = spool

    def sha256_many(
        self, relpaths: Iterable[str], *, workers: int | None = None
    ) -> Iterator[tuple[str, tuple[str, int] | CorruptMemberError]]:
        """``(relpath, (digest, length))`` for each member, in the order given, or the member's
        :class:`CorruptMemberError` in place of the digest.

        Hashes up to ``workers`` members at once (default: the usable CPUs, at most 4), largest
        first: a package's bytes sit in a few big record files among thousands of small raw pages,
        and a big member started late is a tail on one core while the others idle (measured on the
        large benchmark package: an in-order window of 2 x workers members stalled behind its
        180 MB Activity Log file). Results still come in the order given. Memory stays bounded
        whatever the package holds: only running members hold buffers (a finished one leaves its
        digest, and its spool file when one was asked for).

        A member larger than all the members after it (one huge Activity Log, or the last member)
        would leave the other threads idle, so it is inflated on one thread while another hashes
        it. Only then: the hand-over costs 5-10 % more CPU per byte than hashing a chunk where it
        was inflated, and on the shared 2-core machine the two threads overlapped in only about
        half of the runs (a single 1 GB member: 0.81-0.85 s or 1.6 s, against 1.55 s inline), so
        hashing whole members side by side is the better use of a core whenever there is another.
        """
        n = default_workers() if workers is None else max(1, workers)
        if n == 1:
            for rel in relpaths:
                try:
                    yield rel, self.sha256(rel)
                except CorruptMemberError as exc:
                    yield rel, exc
            return

        Outcome = tuple[tuple[str, int] | CorruptMemberError, IO[bytes] | None]

        def settle(rel: str, future: Future[Outcome]) -> tuple[str, int] | CorruptMemberError:
            outcome, spool = future.result()
            if not isinstance(outcome, CorruptMemberError):
                self._keep(rel, outcome, spool)
            return outcome

        with (
            ThreadPoolExecutor(n, thread_name_prefix="verify-inflate") as pool,
            ThreadPoolExecutor(n, thread_name_prefix="verify-sha256") as helper,
        ):
            todo = list(relpaths)
            sizes = [self._info(rel).file_size for rel in todo]  # KeyError here, not in a thread
            after = sum(sizes)
            futures: dict[int, Future[Outcome]] = {}
            for index in sorted(range(len(todo)), key=lambda i: -sizes[i]):  # stable: ties in order
                rel, size = todo[index], sizes[index]
                after -= size
                future: Future[Outcome] = Future()
                if rel in self._digests:
                    future.set_result((self._digests[rel], None))
                else:
                    split = size >= PIPELINE_MIN and size > after
                    future = pool.submit(self._hash_one, rel, helper if split else None)
                futures[index] = future
            try:
                for index, rel in enumerate(todo):
                    yield rel, settle(rel, futures.pop(index))
            finally:
                for pending in futures.values():  # a caller that stops early: skip what never started
                    pending.cancel()

    def copy_to(self, relpath: str, out: IO[bytes]) -> int:
        """Stream a member into ``out`` (e.g. a temporary file a library needs to seek in)."""
        return self._stream(relpath, out.write)

    def _stream(self, relpath: str, sink: Callable[[bytes], object]) -> int:
        info = self._info(relpath)
        h = None if relpath in self._digests else hashlib.sha256()
        try:
            if h is None:
                return self._reader.stream(info, sink)
            size = self._reader.stream(info, _both(h.update, sink))
        except _READ_ERRORS as exc:
            raise _corrupt(relpath, exc) from exc
        self._digests[relpath] = (h.hexdigest(), size)  # read whole once: hashed too, for free
        return size

    def _info(self, relpath: str) -> zipfile.ZipInfo:
        try:
            return self._infos[relpath]
        except KeyError:
            raise KeyError(f"{relpath!r} is not in the package") from None

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()
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


def _both(first: Callable[[bytes], object], second: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def sink(chunk: bytes) -> None:
        first(chunk)
        second(chunk)

    return sink


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
