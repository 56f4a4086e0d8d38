"""The well-known demo key shipped in ``samples/keys``: public, insecure, never trusted by default.

``evidence demo`` signs with it so the whole flow works out of the box. Anyone can sign anything
with it, so the verifier recognises it by fingerprint (not by any flag inside the package, which
an attacker controls) and says so plainly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evidence.sign.interface import PublicKey, fingerprint

if TYPE_CHECKING:
    from evidence.sign.local import LocalKeySigner

#: Fingerprint of samples/keys/INSECURE-demo-signer.key.pem (checked by tests/test_sign.py).
DEMO_KEY_FINGERPRINT = "SHA256:+AYYzXtD0B/L2vhtqxThL8wYyhU17yP9ISPs8it/fwQ"
DEMO_LABEL = "INSECURE DEMO KEY (public; anyone can sign with it)"
DEMO_KEY_FILE = "INSECURE-demo-signer.key.pem"
DEMO_CERT_FILE = "INSECURE-demo-signer.cert.pem"


def is_demo_key(key: PublicKey) -> bool:
    return fingerprint(key) == DEMO_KEY_FINGERPRINT


def demo_key_dir() -> Path:
    """``samples/keys``: inside the installed package (wheel) or at the repository root (editable)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "samples" / "keys", package.parent / "samples" / "keys"):
        if (candidate / DEMO_KEY_FILE).is_file():
            return candidate
    from evidence.errors import UsageError

    raise UsageError("the demo key is not installed", hint="reinstall the package; samples/keys is missing")


def demo_signer() -> LocalKeySigner:
    """The demo key and certificate as a signer labelled ``DEMO_LABEL``."""
    from evidence.sign.local import LocalKeySigner

    folder = demo_key_dir()
    return LocalKeySigner.from_files(folder / DEMO_KEY_FILE, folder / DEMO_CERT_FILE, label=DEMO_LABEL)
