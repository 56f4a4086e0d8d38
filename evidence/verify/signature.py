"""The detached package signature as a :class:`evidence.verify.Check`.

Adapts :func:`evidence.sign.package_signature.verify_tag_manifest` (the signing stage owns the
format and the cryptography) to an :class:`OpenedPackage`: reads ``signature/*`` and the tag
manifest from the zip, loads the trust anchors, and maps the verdict onto one report entry:

* no signature files at all -> INDETERMINATE "package is not signed";
* intact and valid, signer trusted -> PASSED;
* intact and valid, signer not trusted (or no ``--trust``) -> INDETERMINATE, saying so;
* anything else (tag manifest changed after signing, files disagree) -> FAILED.

``evidence.sign.package_signature`` imports ``cryptography`` only (no ``azure.*``): checked by
tests/test_verify.py, because ``evidence verify`` must start fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from evidence.bundle import layout
from evidence.sign import package_signature as ps
from evidence.verify.package import OpenedPackage
from evidence.verify.report import CheckResult, failed, indeterminate, passed

NAME = "signature"


def package_signature_check(package: OpenedPackage, trust: Sequence[object], /) -> Iterable[CheckResult]:
    """Verify ``signature/`` over ``tagmanifest-sha256.txt`` against ``trust``.

    ``trust`` items may be paths (certificate or public key files, as ``--trust`` gives them),
    their bytes, or already loaded :class:`evidence.sign.package_signature.TrustAnchor` objects.
    An unreadable trust anchor raises :class:`evidence.errors.UsageError` (exit 2).
    """
    anchors = [trust_anchor(item) for item in trust]
    if not package.signature_files:
        return [indeterminate(NAME, "package is not signed")]
    if layout.TAGMANIFEST not in package:
        return [failed(NAME, f"nothing to verify: {layout.TAGMANIFEST} is missing", layout.TAGMANIFEST)]
    files = {rel: package.read(rel) for rel in package.signature_files}
    verdict = ps.verify_tag_manifest(files, package.read(layout.TAGMANIFEST), anchors)
    subject = ps.SSHSIG_FILE
    who = f"{verdict.algorithm} key {verdict.key_fingerprint}" if verdict.key_fingerprint else "signer"
    if verdict.demo_key:
        who += " (the public INSECURE demo key)"
    if verdict.passed:
        return [passed(NAME, f"valid signature by {who}, trusted: {verdict.reason}", subject)]
    if verdict.intact and verdict.valid:
        return [indeterminate(NAME, f"valid signature by {who}, but not trusted: {verdict.reason}", subject)]
    return [failed(NAME, verdict.reason, subject)]


def trust_anchor(item: object) -> ps.TrustAnchor:
    """One ``trust`` item as a loaded anchor; ``UsageError`` for an unreadable file."""
    if isinstance(item, ps.TrustAnchor):
        return item
    if isinstance(item, str | Path):
        return ps.load_trust_anchor(item)
    if isinstance(item, bytes):
        return ps.parse_trust_anchor(item, "trust anchor bytes")
    raise TypeError(f"unsupported trust anchor {type(item).__name__}")
