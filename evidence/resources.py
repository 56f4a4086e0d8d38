"""Where bundled files live: inside the package in a wheel, at the repo top level in a checkout.

The design keeps ``templates/`` and ``samples/`` at the top of the repository; the wheel build
force-includes them as ``evidence/templates`` and ``evidence/samples`` so that a plain
``pip install .`` carries them. An editable install points at the checkout, where they sit one
level up.
"""

from __future__ import annotations

from pathlib import Path

from evidence.errors import EvidenceError

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """Path of the bundled top-level folder ``name`` (``templates`` or ``samples``)."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise EvidenceError(
        f"the bundled {name}/ folder is missing from this installation",
        hint="reinstall the package (pip install .) from a complete checkout",
    )


def asset(relpath: str) -> Path:
    """A file under ``evidence/assets`` (fonts and the like), always inside the package."""
    return _PACKAGE / "assets" / relpath
