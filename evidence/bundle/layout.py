"""The on-disk layout of a package: file names, path rules and manifest path encoding.

One module that both the writer (``evidence.bundle``) and the verifier (``evidence.verify``) import,
so the writer refuses exactly what the verifier would reject. Imports nothing outside the standard
library: ``evidence verify`` must start fast and never pull in the Azure SDKs.

A package zip holds exactly one folder, the bag root, which is an RFC 8493 BagIt 1.0 bag::

    <root>/bagit.txt                  BagIt declaration (version 1.0, UTF-8)
    <root>/bag-info.txt               metadata, Payload-Oxum
    <root>/manifest-sha256.txt        SHA-256 of every payload file
    <root>/tagmanifest-sha256.txt     SHA-256 of every tag file (pins the manifest)
    <root>/data/...                   the payload
    <root>/signature/...              detached signatures (reserved, see below)

Reserved for detached signatures: anything under ``signature/`` and any top-level file whose name
starts with ``tagmanifest-sha256.txt.`` (``.sig``, ``.sshsig``, ``.minisig``...). Such files are
written *after* the tag manifest (they sign it), so they cannot be listed in it; the writer leaves
them out of the tag manifest and the verifier does not require them to be listed. Every other tag
file must be listed in the tag manifest.
"""

from __future__ import annotations

import re
import unicodedata

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
PAYLOAD_DIR = "data"
SIGNATURE_DIR = "signature"
#: The exact bytes of ``bagit.txt`` (RFC 8493 section 2.1.1).
BAGIT_DECLARATION = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
#: The tag files every package must have, each listed in the tag manifest.
REQUIRED_TAG_FILES = (BAGIT_TXT, BAG_INFO_TXT, MANIFEST)


def is_signature_file(relpath: str) -> bool:
    """True for bag-relative paths reserved for detached signatures over the tag manifest."""
    return relpath.startswith(SIGNATURE_DIR + "/") or ("/" not in relpath and relpath.startswith(TAGMANIFEST + "."))


def is_payload_file(relpath: str) -> bool:
    return relpath.startswith(PAYLOAD_DIR + "/")


#: C0 controls and DEL. A regex, not a per-character loop: a large package has thousands of
#: members, and this runs for each before any is hashed (issue 6's verify throughput).
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: The escapes ``encode_manifest_path`` writes, in any case (RFC 8493 allows either).
_MANIFEST_ESCAPE = re.compile("%(?:25|0[dDaA])")
_UNESCAPED = {"%25": "%", "%0D": "\r", "%0A": "\n"}


def path_problem(name: str) -> str | None:
    """Why ``name`` is not a safe relative ``/``-separated path, or ``None`` when it is.

    Rejects rather than sanitises: a verifier that rewrites ``../x`` into ``x`` (as
    ``zipfile.extract`` does) reports a tampered package as fine.
    """
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if _CONTROL.search(name):
        return "control character in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        return "drive letter"
    for segment in name.split("/"):
        if segment == "..":
            return "'..' segment"
        if segment == ".":
            return "'.' segment"
        if segment == "":
            return "empty path segment"
    return None


def collision_key(name: str) -> str:
    """Names equal under this key land on the same file on a case-insensitive or normalising
    file system (Windows, macOS), so a package may not hold two of them."""
    return unicodedata.normalize("NFC", name).casefold()


def encode_manifest_path(relpath: str) -> str:
    """RFC 8493 section 2.1.3: percent-encode CR, LF and ``%`` (and only those) in manifest paths.

    NOTE: bagit-python 1.9 encodes CR and LF but not ``%`` (LibraryOfCongress/bagit-python#157),
    so a payload name containing ``%`` validates here but not with bagit-python.
    """
    return relpath.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_manifest_path(encoded: str) -> str:
    """Inverse of :func:`encode_manifest_path`; other ``%XX`` sequences are left as they are."""
    if "%" not in encoded:
        return encoded
    return _MANIFEST_ESCAPE.sub(lambda m: _UNESCAPED[m.group(0).upper()], encoded)


def sort_key(relpath: str) -> bytes:
    """Byte-wise (UTF-8) order: locale independent, the same on every machine."""
    return relpath.encode("utf-8")
