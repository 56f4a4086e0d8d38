"""BagIt 1.0 checks over an :class:`OpenedPackage`, in RFC 8493 order, every file streamed.

Stricter than RFC 8493 where the package format needs it, and says so in the reason:

* the tag manifest is required (the detached signature covers it, and it pins the manifest);
* every tag file except the reserved signature files must be listed in it;
* only SHA-256 manifests are accepted: a ``manifest-md5.txt`` would be a second truth that this
  verifier does not check, so it is refused rather than ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evidence.bundle import layout
from evidence.errors import VerificationError
from evidence.verify.package import CorruptMemberError, OpenedPackage
from evidence.verify.report import CheckResult, failed, passed

_LINE = re.compile(r"([0-9a-f]{64})  ([^ \t].*)")
_OXUM = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class _Manifest:
    entries: dict[str, str]  # bag-relative path -> lowercase hex digest
    problems: tuple[str, ...]


def check_bag(pkg: OpenedPackage) -> list[CheckResult]:
    """Every BagIt check, one result per problem (naming the file) or one PASSED per check."""
    results: list[CheckResult] = []
    declaration = _check_declaration(pkg)
    results.append(declaration)
    if declaration.status is not declaration.status.PASSED:
        return results  # not a BagIt 1.0 bag: nothing else can be interpreted

    info, info_result = _read_bag_info(pkg)
    results.append(info_result)

    manifest_results, manifest = _read_manifest(pkg, layout.MANIFEST, payload=True)
    results.extend(manifest_results)
    listed = manifest.entries
    present = set(pkg.payload_files)

    unlisted = [f for f in pkg.payload_files if f not in listed]
    results.extend(failed("payload.listed", f"not listed in {layout.MANIFEST}", f) for f in unlisted)
    if not unlisted:
        results.append(passed("payload.listed", f"all {len(present)} payload files are in {layout.MANIFEST}"))
    missing = [f for f in sorted(listed, key=layout.sort_key) if f not in present]
    results.extend(failed("payload.present", f"listed in {layout.MANIFEST} but not in the package", f) for f in missing)
    if not missing:
        results.append(passed("payload.present", f"all {len(listed)} listed files are present"))

    # One streaming pass over the payload gives both the Payload-Oxum counts and the digests.
    digests: dict[str, str] = {}
    digest_results: list[CheckResult] = []
    total = 0
    for rel, outcome in pkg.sha256_many(pkg.payload_files):
        if isinstance(outcome, CorruptMemberError):
            digest_results.append(failed("payload.digest", f"corrupt member: {outcome.reason}", rel))
            total += pkg.size(rel)
            continue
        digest, size = outcome
        total += size
        digests[rel] = digest
    results.append(_check_oxum(info, total, len(pkg.payload_files)))
    for rel, expected in sorted(listed.items(), key=lambda kv: layout.sort_key(kv[0])):
        found = digests.get(rel)
        if found is not None and found != expected:
            digest_results.append(
                failed("payload.digest", f"SHA-256 mismatch: expected {expected}, found {found}", rel)
            )
    digest_results.sort(key=lambda r: layout.sort_key(r.subject or ""))
    results.extend(digest_results)
    if not digest_results:
        checked = sum(1 for rel in listed if rel in digests)
        results.append(passed("payload.digest", f"{checked} payload files match their SHA-256"))

    results.extend(_check_tagmanifest(pkg))
    return results


def _check_declaration(pkg: OpenedPackage) -> CheckResult:
    name = "bagit.declaration"
    if layout.BAGIT_TXT not in pkg:
        return failed(name, "bagit.txt is missing: not a BagIt bag", layout.BAGIT_TXT)
    try:
        data = pkg.read(layout.BAGIT_TXT, max_bytes=4096)
    except VerificationError as exc:
        return failed(name, exc.message, layout.BAGIT_TXT)
    if data == layout.BAGIT_DECLARATION:
        return passed(name, "BagIt-Version 1.0, Tag-File-Character-Encoding UTF-8", layout.BAGIT_TXT)
    fields, problems = _parse_tag_text(data)
    version = fields.get("BagIt-Version")
    encoding = fields.get("Tag-File-Character-Encoding")
    if problems:
        reason = problems[0]
    elif version != "1.0":
        reason = f"BagIt-Version is {version!r}, expected '1.0'"
    elif encoding != "UTF-8":
        reason = f"Tag-File-Character-Encoding is {encoding!r}, expected 'UTF-8'"
    else:
        reason = "bagit.txt is not exactly the BagIt 1.0 declaration (extra lines, CRLF or spacing)"
    return failed(name, reason, layout.BAGIT_TXT)


def _read_bag_info(pkg: OpenedPackage) -> tuple[dict[str, str] | None, CheckResult]:
    name = "bagit.info"
    if layout.BAG_INFO_TXT not in pkg:
        return None, failed(name, "bag-info.txt is missing", layout.BAG_INFO_TXT)
    try:
        data = pkg.read(layout.BAG_INFO_TXT)
    except VerificationError as exc:
        return None, failed(name, exc.message, layout.BAG_INFO_TXT)
    fields, problems = _parse_tag_text(data)
    if problems:
        return None, failed(name, problems[0], layout.BAG_INFO_TXT)
    return fields, passed(name, f"{len(fields)} labels", layout.BAG_INFO_TXT)


def _check_oxum(info: dict[str, str] | None, total: int, count: int) -> CheckResult:
    name = "bagit.oxum"
    actual = f"{total}.{count}"
    if info is None:
        return failed(name, f"cannot check Payload-Oxum without bag-info.txt (payload is {actual})")
    declared = info.get("Payload-Oxum")
    if declared is None:
        return failed(name, "bag-info.txt has no Payload-Oxum", layout.BAG_INFO_TXT)
    if not _OXUM.fullmatch(declared):
        return failed(name, f"Payload-Oxum {declared!r} is not <bytes>.<files>", layout.BAG_INFO_TXT)
    if declared != actual:
        return failed(name, f"Payload-Oxum is {declared}, the payload is {actual}", layout.BAG_INFO_TXT)
    return passed(name, f"Payload-Oxum {actual} matches", layout.BAG_INFO_TXT)


def _read_manifest(pkg: OpenedPackage, manifest: str, *, payload: bool) -> tuple[list[CheckResult], _Manifest]:
    name = "bagit.manifest" if payload else "bagit.tagmanifest"
    results: list[CheckResult] = []
    for other in pkg.tag_files:
        if "/" not in other and other.endswith(".txt") and other != manifest:
            kind = "manifest-" if payload else "tagmanifest-"
            if other.startswith(kind) and other != layout.TAGMANIFEST:
                results.append(failed(name, "only SHA-256 manifests are supported; refusing to ignore it", other))
    if manifest not in pkg:
        results.append(failed(name, f"{manifest} is missing", manifest))
        return results, _Manifest({}, ())
    try:
        parsed = _parse_manifest(pkg.read(manifest), payload=payload)
    except VerificationError as exc:
        results.append(failed(name, exc.message, manifest))
        return results, _Manifest({}, ())
    results.extend(failed(name, problem, manifest) for problem in parsed.problems)
    if not results:
        results.append(passed(name, f"{len(parsed.entries)} entries", manifest))
    return results, parsed


def _parse_manifest(data: bytes, *, payload: bool) -> _Manifest:
    """Manifests must be in the canonical form :func:`evidence.bundle.bagit.write_bag` writes:
    ``<64 lowercase hex>  <path>`` (two spaces), every line ending in LF.

    Stricter than RFC 8493 (which allows any case and any run of whitespace) on purpose: if a byte
    of the manifest could change without changing its meaning, integrity would hinge on the
    parser's leniency instead of on the bytes the signature covers.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Manifest({}, (f"not UTF-8: {exc.reason} at byte {exc.start}",))
    entries: dict[str, str] = {}
    problems: list[str] = []
    if text and not text.endswith("\n"):
        problems.append("does not end with a line feed")
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), start=1):
        match = _LINE.fullmatch(line)
        if match is None:
            problems.append(f"line {number} is not '<sha256 lowercase hex>  <path>'")
            continue
        digest, encoded = match.groups()
        rel = layout.decode_manifest_path(encoded)
        if rel in entries:
            problems.append(f"line {number}: {rel} is listed twice")
        elif layout.is_payload_file(rel) != payload or rel == layout.TAGMANIFEST:
            where = "payload files (data/...)" if payload else "tag files (outside data/)"
            problems.append(f"line {number}: {rel} does not belong here, this manifest lists {where}")
        else:
            entries[rel] = digest
    return _Manifest(entries, tuple(problems))


def _check_tagmanifest(pkg: OpenedPackage) -> list[CheckResult]:
    name = "bagit.tagmanifest"
    if layout.TAGMANIFEST not in pkg:
        reason = f"{layout.TAGMANIFEST} is missing (it pins the manifest, and the signature covers it)"
        return [failed(name, reason, layout.TAGMANIFEST)]
    results, manifest = _read_manifest(pkg, layout.TAGMANIFEST, payload=False)
    problems: list[CheckResult] = [r for r in results if r.status is not r.status.PASSED]
    for required in layout.REQUIRED_TAG_FILES:
        if required in pkg and required not in manifest.entries:
            problems.append(failed(name, f"{required} is not covered by {layout.TAGMANIFEST}", required))
    for rel in pkg.tag_files:
        if rel != layout.TAGMANIFEST and rel not in manifest.entries and rel not in layout.REQUIRED_TAG_FILES:
            problems.append(failed(name, f"tag file not covered by {layout.TAGMANIFEST}", rel))
    for rel, expected in sorted(manifest.entries.items(), key=lambda kv: layout.sort_key(kv[0])):
        if rel not in pkg:
            problems.append(failed(name, f"listed in {layout.TAGMANIFEST} but not in the package", rel))
            continue
        try:
            found, _ = pkg.sha256(rel)
        except CorruptMemberError as exc:
            problems.append(failed(name, f"corrupt member: {exc.reason}", rel))
            continue
        if found != expected:
            problems.append(failed(name, f"SHA-256 mismatch: expected {expected}, found {found}", rel))
    if problems:
        return problems
    return [passed(name, f"{len(manifest.entries)} tag files match their SHA-256", layout.TAGMANIFEST)]


def _parse_tag_text(data: bytes) -> tuple[dict[str, str], list[str]]:
    """``Label: value`` lines (RFC 8493 2.2.2), continuation lines start with whitespace.

    A repeated label keeps its first value and is reported: bag-info labels this tool relies on
    (Payload-Oxum) must be unambiguous.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return {}, ["starts with a byte order mark (RFC 8493 forbids it)"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [f"not UTF-8: {exc.reason} at byte {exc.start}"]
    fields: dict[str, str] = {}
    problems: list[str] = []
    last: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line[:1] in (" ", "\t") and last is not None:
            fields[last] += " " + line.strip()
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip() or label != label.strip():
            problems.append(f"line {number} is not 'Label: value'")
            continue
        if label in fields:
            problems.append(f"line {number}: label {label!r} is repeated")
            continue
        fields[label] = value.strip()
        last = label
    return fields, problems
