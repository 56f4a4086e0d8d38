"""Write the malicious package archives in tests/assets/malicious/, each named after its attack.

    python tests/assets/make_malicious.py [OUT_DIR]

The zips are assembled byte by byte here (not with ``zipfile``, which refuses or "fixes" most of
these: it clears the encryption flag, rewrites separators, warns on duplicates), so each file holds
exactly the attack its name says and nothing else is wrong with it. The output is deterministic;
tests/test_verify.py regenerates it and compares bytes.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).parent / "malicious"
STORED, DEFLATED = 0, 8
DOS_TIME, DOS_DATE = 0, (2025 - 1980) << 9 | 1 << 5 | 1  # 2025-01-01 00:00:00
REGULAR = (stat.S_IFREG | 0o644) << 16
SYMLINK = (stat.S_IFLNK | 0o777) << 16


@dataclass
class Member:
    name: bytes
    data: bytes  # uncompressed
    method: int = DEFLATED
    flags: int = 0
    external_attr: int = REGULAR
    create_system: int = 3
    #: put this member's central entry at another member's local header (overlap attack)
    same_offset_as: int | None = None
    corrupt_crc: bool = False


def raw_zip(members: list[Member]) -> bytes:
    """A plain PKZIP 2.0 archive: local headers + data, central directory, end record."""
    out = bytearray()
    central = bytearray()
    offsets: list[int] = []
    for m in members:
        body = _compress(m.data) if m.method == DEFLATED else m.data
        crc = zlib.crc32(m.data) ^ (0xFFFFFFFF if m.corrupt_crc else 0)
        flags = m.flags | (0x800 if any(b > 0x7F for b in m.name) else 0)
        offset = len(out) if m.same_offset_as is None else offsets[m.same_offset_as]
        if m.same_offset_as is None:
            out += struct.pack(
                "<4s5H3L2H", b"PK\x03\x04", 20, flags, m.method, DOS_TIME, DOS_DATE,
                crc, len(body), len(m.data), len(m.name), 0,
            )  # fmt: skip
            out += m.name + body
        offsets.append(offset)
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", m.create_system << 8 | 20, 20, flags, m.method, DOS_TIME,
            DOS_DATE, crc, len(body), len(m.data), len(m.name), 0, 0, 0, 0, m.external_attr, offset,
        )  # fmt: skip
        central += m.name
    start = len(out)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), start, 0)
    return bytes(out)


def _compress(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def valid_bag(root: str = "pkg", method: int = DEFLATED) -> list[Member]:
    """A small, valid BagIt 1.0 bag: the baseline each attack changes one thing in."""
    payload = {
        "data/a.json": b'{"model": "fraud-detector", "version": "3"}\n',
        "data/b.jsonl": b'{"endpoint": "scoring"}\n',
    }
    manifest = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(payload.items()))
    oxum = f"{sum(len(v) for v in payload.values())}.{len(payload)}"
    tags = {
        "bag-info.txt": f"Bagging-Date: 2025-01-01\nPayload-Oxum: {oxum}\n".encode(),
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "manifest-sha256.txt": manifest.encode(),
    }
    tagmanifest = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(tags.items()))
    files = {**payload, **tags, "tagmanifest-sha256.txt": tagmanifest.encode()}
    return [Member(f"{root}/{k}".encode(), v, method) for k, v in sorted(files.items())]


def attacks() -> dict[str, bytes]:
    bag = valid_bag()
    extra = b"owned\n"
    truncated_source = raw_zip(bag)
    stored = valid_bag(method=STORED)
    for m in stored:
        if m.name == b"pkg/data/a.json":
            m.corrupt_crc = True
    return {
        # '../' climbs out of the extraction directory (CVE-2018-1002200 and friends).
        "zip_slip.zip": raw_zip([*bag, Member(b"pkg/data/../../../escaped.txt", extra)]),
        "absolute_path.zip": raw_zip([*bag, Member(b"/etc/cron.d/evil", extra)]),
        "drive_letter.zip": raw_zip([*bag, Member(b"C:/Windows/evil.dll", extra)]),
        "backslash_path.zip": raw_zip([*bag, Member(b"pkg\\..\\..\\evil.txt", extra)]),
        "nul_in_name.zip": raw_zip([*bag, Member(b"pkg/data/a.json\x00.txt", extra)]),
        "symlink.zip": raw_zip([*bag, Member(b"pkg/data/link", b"/etc/passwd", STORED, external_attr=SYMLINK)]),
        # 32 MiB of zeros in a 32 KiB member: DEFLATE's ~1030:1 ceiling.
        "zip_bomb.zip": raw_zip([*bag, Member(b"pkg/data/zeros.bin", bytes(32 << 20))]),
        # Two central entries share one local header and its data (non-recursive zip bomb).
        "overlapping_members.zip": raw_zip([*bag, Member(b"pkg/data/c.json", b"", same_offset_as=0)]),
        "duplicate_names.zip": raw_zip([*bag, Member(b"pkg/data/a.json", b'{"model": "swapped"}\n')]),
        "case_collision.zip": raw_zip([*bag, Member(b"pkg/data/A.json", extra)]),
        "encrypted_member.zip": raw_zip([*bag, Member(b"pkg/data/secret.json", extra, STORED, flags=0x1)]),
        "unsupported_method.zip": raw_zip([*bag, Member(b"pkg/data/x.bz2", extra, 12)]),
        "two_roots.zip": raw_zip([*bag, *valid_bag(root="other")]),
        "not_a_zip.zip": b"%PDF-1.7\n% this is a PDF renamed to .zip, not a package\n",
        "truncated.zip": truncated_source[: len(truncated_source) // 2],
        "bad_crc.zip": raw_zip(stored),
    }


def main(out_dir: Path = OUT) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(attacks().items()):
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(f"{p.stat().st_size:>8}  {p}")
