"""Reading zip members fast: positioned reads, a fast inflater, and inflate overlapped with SHA-256.

Why not ``zipfile.ZipExtFile``: it inflates with the stdlib's zlib (about 0.7 GB/s here, against
1.2-1.8 GB/s for hashlib's SHA-256 with the CPU's SHA instructions), shares one file position, so
one member at a time, and a member is then hashed on the same thread. Verification was
decompression bound at about a third of raw SHA-256 (benchmarks/bench_verify.py). Here:

* members are read with ``os.pread`` on the package's one file descriptor (no shared file
  position, no reopening the path, which could have been swapped since it was checked);
* DEFLATE is inflated by ISA-L (``isal``, about twice zlib's speed) when it is installed, else
  by zlib: the same format, so the choice never changes a verdict;
* zlib, ISA-L and hashlib release the GIL on large buffers, so several members are hashed at
  once, and a large member is inflated on one thread while another hashes it.

Checks are those of ``zipfile.ZipFile.open`` and ``ZipExtFile``, a little stricter: the local
header's signature, name and method must match the central directory, the DEFLATE stream must
end exactly at the member's compressed size, and the length and CRC-32 must match. Output is
bounded by the declared size, so a lying member cannot make the verifier inflate more than the
archive safety limits allowed.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, cast

try:  # ISA-L: the same DEFLATE, inflated about twice as fast; zlib when it is not installed.
    from isal import isal_zlib as _fast_zlib

    INFLATER = "isal"
    _decompressobj: Callable[[int], Any] = _fast_zlib.decompressobj
    _crc32: Callable[[bytes | memoryview, int], int] = _fast_zlib.crc32
    # isal's stub types ``error`` as an instance; at run time it is an exception class.
    _ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, cast(type[BaseException], _fast_zlib.error))
except ImportError:  # pragma: no cover - isal is a dependency; this keeps a stripped install working
    INFLATER = "zlib"
    _decompressobj = zlib.decompressobj
    _crc32 = zlib.crc32
    _ZLIB_ERRORS = (zlib.error,)

#: Compressed bytes read per call, and the most one inflate call may return. Every chunk is a new
#: bytes object: kept under glibc's 128 KiB mmap threshold, it comes from the heap instead of
#: fresh pages (an mmap, page faults and an munmap per chunk cost 30-40 % more CPU per GB, measured
#: with 24-128 KiB input chunks), and it is still in the CPU cache when it is hashed.
IN_CHUNK = 16 << 10
OUT_CHUNK = 64 << 10
STORED_CHUNK = 64 << 10
#: Members at least this large may be inflated and hashed on two threads; smaller ones never are
#: (the hand-over costs more than it saves on a small member). See ``OpenedPackage.sha256_many``
#: for when it pays.
PIPELINE_MIN = 4 << 20
#: Bytes handed from the inflating to the hashing thread at once (one queue operation per
#: batch rather than per chunk), and batches in flight: memory stays under about 8 MiB.
HANDOFF = 1 << 20
QUEUE_DEPTH = 4

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7, 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_UTF8_FLAG = 0x800
_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patched data, strong encryption


class MemberError(Exception):
    """A member's bytes cannot be read back as the central directory describes them."""


def default_workers() -> int:
    """Members hashed at once: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class MemberReader:
    """Positioned, thread-safe reads of members of one open zip file."""

    def __init__(self, fp: IO[bytes]) -> None:
        self._fp = fp
        self._fd = fp.fileno()
        self._lock = threading.Lock()  # only without os.pread (Windows): seek + read is one step

    def _pread(self, size: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, size, offset)
        with self._lock:  # pragma: no cover - Windows
            self._fp.seek(offset)
            return self._fp.read(size)

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        header = self._pread(_LOCAL_HEADER.size, info.header_offset)
        if len(header) != _LOCAL_HEADER.size:
            raise MemberError("truncated local file header")
        sig, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        if sig != _LOCAL_SIGNATURE:
            raise MemberError("bad local file header signature")
        raw_name = self._pread(name_len, info.header_offset + _LOCAL_HEADER.size)
        name = raw_name.decode("utf-8" if flags & _UTF8_FLAG else "cp437", "replace")
        if name != info.orig_filename:
            raise MemberError(f"local header names {name!r}, the central directory {info.orig_filename!r}")
        if flags & _UNSUPPORTED_FLAGS:
            raise MemberError(f"local header flags {flags:#06x}: encrypted or patched data")
        if method != info.compress_type:
            raise MemberError(f"local header says method {method}, the central directory {info.compress_type}")
        return int(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)

    def chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's uncompressed bytes, in chunks of at most 64 KiB; length checked, not CRC."""
        pos = self._data_offset(info)
        remaining = info.compress_size
        produced = 0
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise MemberError(f"stored member of {info.compress_size} bytes declares {info.file_size}")
            while remaining:
                data = self._pread(min(STORED_CHUNK, remaining), pos)
                if not data:
                    raise MemberError("the archive ends inside the member")
                pos += len(data)
                remaining -= len(data)
                yield data
            return
        if info.compress_type != zipfile.ZIP_DEFLATED:  # archive safety refused it already
            raise MemberError(f"unsupported compression method {info.compress_type}")
        inflater = _decompressobj(-15)
        try:
            while remaining and not inflater.eof:
                data = self._pread(min(IN_CHUNK, remaining), pos)
                if not data:
                    raise MemberError("the archive ends inside the member")
                pos += len(data)
                remaining -= len(data)
                while data:
                    out = inflater.decompress(data, OUT_CHUNK)
                    if not out and inflater.unconsumed_tail == data:  # never loop without progress
                        raise MemberError("the DEFLATE stream makes no progress")
                    data = inflater.unconsumed_tail
                    if out:
                        produced += len(out)
                        if produced > info.file_size:
                            raise MemberError(f"inflates to more than the declared {info.file_size} bytes")
                        yield out
            tail = inflater.flush()
        except _ZLIB_ERRORS as exc:
            raise MemberError(f"broken DEFLATE stream: {exc}") from exc
        if tail:
            produced += len(tail)
            if produced > info.file_size:
                raise MemberError(f"inflates to more than the declared {info.file_size} bytes")
            yield tail
        if not inflater.eof:
            raise MemberError("the DEFLATE stream does not end within the member")
        if remaining or inflater.unused_data:
            raise MemberError("bytes after the end of the DEFLATE stream")

    def stream(self, info: zipfile.ZipInfo, sink: Callable[[bytes], object]) -> int:
        """Feed every chunk to ``sink`` on this thread; check length and CRC-32. Returns the length."""
        crc = 0
        size = 0
        for chunk in self.chunks(info):
            crc = _crc32(chunk, crc)
            size += len(chunk)
            sink(chunk)
        _check_end(info, size, crc)
        return size

    def sha256(
        self,
        info: zipfile.ZipInfo,
        *,
        helper: ThreadPoolExecutor | None = None,
        tee: Callable[[bytes], object] | None = None,
    ) -> tuple[str, int]:
        """SHA-256 hex digest and length; with ``helper``, a large member is hashed (and its CRC
        computed) on a helper thread while this thread reads and inflates the next chunks.
        ``tee`` also receives every chunk, in order, on this thread (one read, two uses)."""
        h = hashlib.sha256()
        if helper is None or info.file_size < PIPELINE_MIN:
            if tee is None:
                size = self.stream(info, h.update)
            else:
                also = tee

                def both(chunk: bytes) -> None:
                    h.update(chunk)
                    also(chunk)

                size = self.stream(info, both)
            return h.hexdigest(), size
        handoff: queue.Queue[list[bytes] | None] = queue.Queue(QUEUE_DEPTH)
        consumer: Future[tuple[int, int]] = helper.submit(_consume, handoff, h)
        try:
            batch: list[bytes] = []
            batched = 0
            for chunk in self.chunks(info):
                if tee is not None:
                    tee(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= HANDOFF:
                    _put(handoff, batch, consumer)
                    batch, batched = [], 0
            if batch:
                _put(handoff, batch, consumer)
        finally:
            _put(handoff, None, consumer)
            size, crc = consumer.result()
        _check_end(info, size, crc)
        return h.hexdigest(), size


def _put(handoff: queue.Queue[list[bytes] | None], item: list[bytes] | None, consumer: Future[tuple[int, int]]) -> None:
    # Never block for good on a full queue whose consumer has died (it cannot, short of a bug).
    while True:
        try:
            handoff.put(item, timeout=0.5)
            return
        except queue.Full:
            if consumer.done():
                consumer.result()  # raises the consumer's exception, if any
                raise RuntimeError("the hashing thread stopped early") from None


def _consume(handoff: queue.Queue[list[bytes] | None], h: Any) -> tuple[int, int]:
    # One hash and one CRC call per batch, not per 64 KiB chunk: each call takes the GIL back from
    # the inflating thread, and that ping-pong, not hashing, made the two threads overlap in only
    # about half of the runs (1 GB member: 0.82-0.89 s in 7 of 8 runs after, 0.82 s or 1.1 s
    # before). Joining a 1 MiB batch is a copy the hashing thread has time for.
    crc = 0
    size = 0
    while (batch := handoff.get()) is not None:
        joined = b"".join(batch)
        h.update(joined)
        crc = _crc32(joined, crc)
        size += len(joined)
    return size, crc


def _check_end(info: zipfile.ZipInfo, size: int, crc: int) -> None:
    if size != info.file_size:
        raise MemberError(f"{size} bytes, the zip directory says {info.file_size}")
    if crc != info.CRC:
        raise MemberError(f"bad CRC-32 ({crc:08x}, the zip directory says {info.CRC:08x})")
