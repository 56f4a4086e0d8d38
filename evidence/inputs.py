"""Files a person hands the tool (waivers, reviewer decisions, the previous review's package).

Each is read and checked *before* anything is collected, so a typo costs nothing, and kept as bytes
so the package carries exactly what was given (``data/inputs/``, see :mod:`evidence.derive`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from evidence.derive import Attachments
from evidence.errors import UsageError, VerificationError

#: The previous package's role assignments, which the access review diffs against.
PREVIOUS_RECORDS = "data/records/role_assignments.jsonl"
#: Largest previous-population file read (a tenant's role assignments, not its Activity Log).
MAX_PREVIOUS_BYTES = 256 * 1024 * 1024


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def read_waivers(path: Path) -> bytes:
    """The waivers file's bytes, after checking every waiver in it (ConfigError: one line)."""
    from evidence.check.waivers import load_waivers

    load_waivers(path)
    return read_file(path, "waivers file")


def read_decisions(path: Path) -> bytes:
    """The completed reviewer sheet's bytes; its header is checked now, its rows against the population."""
    import csv
    import io

    from evidence.check.access_review import DECISION_COLUMNS

    data = read_file(path, "decisions file")
    try:
        header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"decisions file {path} is not a UTF-8 CSV: {exc}") from None
    if tuple(header) != DECISION_COLUMNS:
        raise UsageError(
            f"decisions file {path}: header must be {','.join(DECISION_COLUMNS)}",
            hint="start from the decisions template written beside the package",
        )
    return data


def read_previous(path: Path) -> tuple[bytes, dict[str, str]]:
    """The previous package's role assignments and what identifies that package.

    Read through the verifier's safe archive reader: the zip is checked (path traversal, links,
    duplicate names, zip bombs) before any member is read, and nothing is extracted to disk. This
    is not a verification of the previous package (its signer is not checked); its SHA-256 and
    Package-Id are recorded so the auditor can match it to the package they hold.
    """
    from evidence.verify import OpenedPackage, PackageUnreadableError

    try:
        with OpenedPackage.open(path) as pkg:
            if PREVIOUS_RECORDS not in pkg:
                raise UsageError(
                    f"previous package {path} has no {PREVIOUS_RECORDS}",
                    hint="pass the zip of an earlier evidence package",
                )
            rows = pkg.read(PREVIOUS_RECORDS, max_bytes=MAX_PREVIOUS_BYTES)
            info = pkg.read("bag-info.txt") if "bag-info.txt" in pkg else b""
    except PackageUnreadableError as exc:
        raise UsageError(f"previous package: {exc.diagnostics()}") from None
    except VerificationError as exc:  # not a zip, unsafe archive, corrupt or oversized member
        raise UsageError(f"previous package {path} is refused: {exc.diagnostics()}") from None
    try:
        for number, line in enumerate(rows.decode("utf-8").splitlines(), start=1):
            if line.strip() and not isinstance(json.loads(line), dict):
                raise ValueError(f"line {number} is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"previous package {path}: {PREVIOUS_RECORDS} is malformed: {exc}") from None
    package_id = ""
    for line in info.decode("utf-8", errors="replace").splitlines():
        if line.startswith("Package-Id:"):
            package_id = line.split(":", 1)[1].strip()
    with path.open("rb") as handle:  # streamed: a previous package can be hundreds of MB
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return rows, {"package": path.name, "package_id": package_id, "sha256": digest}


def attachments(
    *, waivers: Path | None = None, decisions: Path | None = None, previous: Path | None = None
) -> Attachments:
    previous_rows, previous_info = read_previous(previous) if previous is not None else (None, None)
    return Attachments(
        waivers=read_waivers(waivers) if waivers is not None else None,
        decisions=read_decisions(decisions) if decisions is not None else None,
        previous_population=previous_rows,
        previous=previous_info,
    )
