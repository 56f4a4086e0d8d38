"""Derivation: everything in a package that is computed from its raw evidence, in one function.

A package holds two kinds of payload files:

* **inputs**, written once and never recomputed: ``data/raw/**`` (responses as received),
  ``data/collection.json`` (scope, window, every request, gaps, redactions) and ``data/inputs/**``
  (what the person running the tool asked for: ``request.json`` plus copies of the waivers file,
  the reviewer decisions sheet and the previous review's population, when given);
* **derived** files, recomputed from the inputs alone by :func:`derive`: ``data/records/*.jsonl``
  and ``*.csv`` (the collectors' records, ``serving_timeline`` and, for an access review, the
  ``access_review_*`` views), ``data/findings.json`` and ``data/findings.csv``, and
  ``data/review/decisions_template.csv`` (access review). The report (``data/report/``) is rendered
  from :attr:`Derivation.report`.

``build_package`` writes the inputs, calls :func:`derive` on the bag folder, and writes what it
returns; ``evidence verify --rebuild`` calls the same function on the package zip and compares.

API (for ``verify --rebuild``)::

    from evidence.derive import derive, is_derived

    derivation = derive(reader)      # reader: a bag folder (Path) or any BagReader, e.g. OpenedPackage
    derivation.files                 # {bag-relative path: exact bytes} of every derived file
    derivation.report                # the render.ReportInput; render_html(derivation.report) gives
                                     # the bytes of data/report/report.html
    derivation.package_id            # the Package-Id (bag-info.txt, report cover)
    is_derived(path)                 # True for data/records/**, data/findings.*, data/review/**

A package rebuilds when every ``is_derived`` member equals ``derivation.files[path]`` byte for byte,
no derived path is missing or extra, and ``render_html(derivation.report)`` equals the stored HTML.
(The PDF carries a signature made at signing time, so it is compared through the HTML only.)

:func:`derive` raises :class:`DerivationError` (could not run: exit 3) when the inputs are missing or
malformed, and :class:`evidence.errors.UsageError` when a recorded decisions sheet no longer matches
the population (which the pipeline checks before it writes anything, so a built package never does).

Nothing here imports an Azure SDK at module import time (``evidence verify`` must start fast and
offline); the collectors' ``normalise`` methods are pure functions of the stored raw files, and are
imported only when :func:`derive` runs.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evidence.clock import parse_timestamp
from evidence.config import PolicyConfig
from evidence.domain import Gap, Provenance, Redaction, Scope, Window, Workspace
from evidence.errors import EvidenceError

if TYPE_CHECKING:
    from evidence.check.interface import Control, Record
    from evidence.check.runner import ControlResult
    from evidence.collect.interface import Collector, RawResponse
    from evidence.render.interface import ReportInput

INPUTS_FORMAT = "evidence-inputs/v1"
COLLECTION_FILE = "data/collection.json"
INPUTS_DIR = "data/inputs"
REQUEST_FILE = "data/inputs/request.json"
WAIVERS_INPUT = "data/inputs/waivers.toml"
DECISIONS_INPUT = "data/inputs/decisions.csv"
PREVIOUS_INPUT = "data/inputs/previous_role_assignments.jsonl"
RECORDS_DIR = "data/records"
FINDINGS_JSON = "data/findings.json"
FINDINGS_CSV = "data/findings.csv"
REVIEW_DIR = "data/review"
DECISIONS_TEMPLATE = "data/review/decisions_template.csv"
REPORT_DIR = "data/report"

KINDS = ("audit", "release", "access-review")
#: Where a release window's start came from: the version's registration as the package's own
#: ``data/raw/release/`` answers show it, ``--since``, or a window given outright (the demo).
RELEASE_WINDOW_STARTS = ("registration", "since", "window")
_DERIVED_PREFIXES = (RECORDS_DIR + "/", REVIEW_DIR + "/")
_DERIVED_FILES = (FINDINGS_JSON, FINDINGS_CSV)


class DerivationError(EvidenceError):
    """The package's inputs are missing or malformed, so nothing can be derived from them."""


def is_derived(path: str) -> bool:
    """True for a bag-relative path that :func:`derive` produces (the report excluded)."""
    return path in _DERIVED_FILES or path.startswith(_DERIVED_PREFIXES)


def is_report(path: str) -> bool:
    return path.startswith(REPORT_DIR + "/")


class BagReader(Protocol):
    """Read access to a bag: ``evidence.verify.OpenedPackage`` is one, :class:`FolderReader` another."""

    @property
    def files(self) -> Sequence[str]:
        """Every file in the bag, bag-relative, POSIX separators."""
        ...

    def read(self, relpath: str) -> bytes: ...


class FolderReader:
    """A bag laid out in a folder (the pipeline's staging folder, or an extracted package)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def files(self) -> Sequence[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def read(self, relpath: str) -> bytes:
        return (self.root / relpath).read_bytes()


# ------------------------------------------------------------------------------- recorded inputs
@dataclass(frozen=True)
class Attachments:
    """Files a person handed the tool, copied into ``data/inputs/`` byte for byte."""

    waivers: bytes | None = None  # the waivers TOML
    decisions: bytes | None = None  # the completed reviewer sheet (CSV)
    previous_population: bytes | None = None  # the previous package's role_assignments.jsonl
    previous: Mapping[str, str] | None = None  # {"package", "package_id", "sha256"} of that package

    def files(self) -> dict[str, bytes]:
        out = {}
        for path, data in (
            (WAIVERS_INPUT, self.waivers),
            (DECISIONS_INPUT, self.decisions),
            (PREVIOUS_INPUT, self.previous_population),
        ):
            if data is not None:
                out[path] = data
        return out


@dataclass(frozen=True)
class Request:
    """What was asked for, as recorded in ``data/inputs/request.json``: the derivation's parameters."""

    kind: str
    scope: Scope
    window: Window
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    page_size: str = "A4"
    release_model: str | None = None
    release_version: str | None = None
    #: Where a release window's start came from (one of ``RELEASE_WINDOW_STARTS``); None otherwise.
    release_window_start: str | None = None
    signer: Mapping[str, Any] | None = None  # as shown in the report: label, fingerprint, algorithm, demo
    attachments: Attachments = field(default_factory=Attachments)

    @property
    def title(self) -> str:
        if self.kind == "release" and self.release_model:
            return f"Release close-out: {self.release_model} version {self.release_version}"
        if self.kind == "access-review":
            return "Quarterly access review: Azure Machine Learning"
        return "Azure Machine Learning model governance: audit evidence"

    def to_json(self) -> dict[str, Any]:
        policy = {
            f.name: list(v) if isinstance(v := getattr(self.policy, f.name), tuple) else v
            for f in fields(PolicyConfig)
            if f.name != "waivers"  # a path on the builder's machine; the file itself is an input
        }
        return {
            "format": INPUTS_FORMAT,
            "kind": self.kind,
            "scope": {
                "organisation": self.scope.organisation,
                "registries": sorted(self.scope.registries),
                "workspaces": [
                    {"subscription_id": w.subscription_id, "resource_group": w.resource_group, "name": w.name}
                    for w in sorted(self.scope.workspaces)
                ],
            },
            "window": self.window.to_json(),
            "policy": policy,
            "page_size": self.page_size,
            "release": self._release_json(),
            "signer": dict(self.signer) if self.signer is not None else None,
            "inputs": {
                "waivers": WAIVERS_INPUT if self.attachments.waivers is not None else None,
                "decisions": DECISIONS_INPUT if self.attachments.decisions is not None else None,
                "previous_population": PREVIOUS_INPUT if self.attachments.previous_population is not None else None,
                "previous_package": dict(self.attachments.previous) if self.attachments.previous else None,
            },
        }

    def _release_json(self) -> dict[str, Any]:
        release: dict[str, Any] = {"model": self.release_model, "version": self.release_version}
        # Only when known: packages that are not releases keep the bytes they always had.
        if self.release_window_start is not None:
            release["window_start"] = self.release_window_start
        return release

    def files(self) -> dict[str, bytes]:
        """Every ``data/inputs/`` file for this request."""
        from evidence.collect.store import pretty_json

        return {REQUEST_FILE: pretty_json(self.to_json()).encode("utf-8"), **self.attachments.files()}


def write_inputs(bag: Path, request: Request) -> None:
    for rel, data in request.files().items():
        target = bag / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _json(reader: BagReader, path: str) -> Any:
    try:
        return json.loads(reader.read(path))
    except KeyError:
        raise DerivationError(f"{path} is missing", hint="the package cannot be re-derived without it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DerivationError(f"{path} is not valid JSON: {exc}") from None


def _optional(reader: BagReader, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return reader.read(path)
    except KeyError:
        raise DerivationError(f"{path} is named in {REQUEST_FILE} but missing") from None


def read_request(reader: BagReader) -> Request:
    """Parse ``data/inputs/request.json`` (and load the attachments it names)."""
    data = _json(reader, REQUEST_FILE)
    try:
        if data.get("format") != INPUTS_FORMAT:
            raise DerivationError(f"{REQUEST_FILE}: format {data.get('format')!r} is not {INPUTS_FORMAT}")
        if data["kind"] not in KINDS:
            raise DerivationError(f"{REQUEST_FILE}: unknown kind {data['kind']!r}")
        scope = data["scope"]
        policy_data = data["policy"]
        known = {f.name for f in fields(PolicyConfig)} - {"waivers"}
        if set(policy_data) != known:
            raise DerivationError(f"{REQUEST_FILE}: policy keys are not those of this tool version")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in policy_data.items()}
        policy = PolicyConfig(**values)
        named = data["inputs"]
        previous = named.get("previous_package")
        window_start = data["release"].get("window_start")
        if window_start is not None and window_start not in RELEASE_WINDOW_STARTS:
            raise DerivationError(f"{REQUEST_FILE}: unknown release window_start {window_start!r}")
        attachments = Attachments(
            waivers=_optional(reader, named.get("waivers")),
            decisions=_optional(reader, named.get("decisions")),
            previous_population=_optional(reader, named.get("previous_population")),
            previous={str(k): str(v) for k, v in previous.items()} if previous else None,
        )
        return Request(
            kind=data["kind"],
            scope=Scope(
                workspaces=tuple(Workspace(**w) for w in scope["workspaces"]),
                registries=tuple(scope["registries"]),
                organisation=scope["organisation"],
            ),
            window=Window(parse_timestamp(data["window"]["start"]), parse_timestamp(data["window"]["end"])),
            policy=policy,
            page_size=data["page_size"],
            release_model=data["release"]["model"],
            release_version=data["release"]["version"],
            release_window_start=window_start,
            signer=data["signer"],
            attachments=attachments,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DerivationError(f"{REQUEST_FILE} is malformed: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------ collection
@dataclass(frozen=True)
class Collected:
    """``data/collection.json`` parsed."""

    tool_version: str
    finished_at: str
    requests: tuple[Provenance, ...]
    gaps: tuple[Gap, ...]
    redactions: tuple[Redaction, ...]


def read_collection(reader: BagReader) -> Collected:
    data = _json(reader, COLLECTION_FILE)
    try:
        return Collected(
            tool_version=str(data["tool_version"]),
            finished_at=str(data["finished_at"]),
            requests=tuple(Provenance(**r) for r in data["requests"]),
            gaps=tuple(Gap(**g) for g in data["gaps"]),
            redactions=tuple(Redaction(**r) for r in data["redactions"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DerivationError(f"{COLLECTION_FILE} is malformed: {type(exc).__name__}: {exc}") from None


def _read_body(reader: BagReader, prov: Provenance) -> Any:
    body: Any = None
    if prov.file:
        try:
            data = reader.read(prov.file)
        except KeyError:
            raise DerivationError(f"{prov.file} is listed in {COLLECTION_FILE} but missing") from None
        try:
            if prov.file.endswith(".json"):
                body = json.loads(data)
            else:
                body = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except (ValueError, UnicodeDecodeError) as exc:
            raise DerivationError(f"{prov.file} cannot be read: {exc}") from None
    return body


def load_raw(reader: BagReader, requests: Sequence[Provenance]) -> dict[str, Sequence[RawResponse]]:
    """The stored raw files, grouped by collector in request order (as ``collect.store.load_raw``).

    Text bodies are decoded the way ``Path.read_text`` does (UTF-8, universal newlines), so a bag
    folder and the same bag in a zip give the same records.
    """
    grouped: dict[str, list[Provenance]] = {}
    for prov in requests:
        grouped.setdefault(prov.collector, []).append(prov)
    # The store's lazy sequence, reading through the bag reader (a folder or the zip itself):
    # normalising must not hold a large tenant's Activity Log pages in memory at once.
    from evidence.collect.store import StoredResponses

    return {name: StoredResponses(partial(_read_body, reader), provs) for name, provs in grouped.items()}


# -------------------------------------------------------------------------------------- derivation
@dataclass(frozen=True)
class Derivation:
    request: Request
    collected: Collected
    records: Mapping[str, Sequence[Record]]  # record kind -> rows, as written under data/records/
    results: tuple[ControlResult, ...]
    files: Mapping[str, bytes]  # every derived file, bag-relative path -> bytes
    evidence_files: tuple[tuple[str, str], ...]  # (path, sha256) of data/ but the report, sorted
    package_id: str
    report: ReportInput
    review: Mapping[str, Any] | None = None  # access review: population, changes, diff, decisions

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return self.collected.gaps

    @property
    def collected_at(self) -> datetime:
        return parse_timestamp(self.collected.finished_at)


def derive(
    source: Path | BagReader,
    *,
    collectors: Sequence[Collector] | None = None,
    controls: Sequence[Control] | None = None,
    write_to: Path | None = None,
) -> Derivation:
    """Recompute every derived file and the report input from a bag's inputs alone.

    ``collectors`` and ``controls`` default to the tool's own (``default_collectors()``,
    ``default_controls()``); the pipeline passes the ones it was given.

    ``write_to`` (the pipeline: the bag being built) writes the record files there as they are
    made, and ``files`` then reads them back from there when asked: on a large tenant the
    Activity Log's ``.jsonl`` and ``.csv`` are hundreds of MB, which must not sit in memory next
    to the records while the report renders (issue 7). Without it (``verify --rebuild``), they
    are made in a scratch folder and held as bytes, as before. The bytes are the same either way.
    """
    from evidence.check.findings_io import findings_csv, findings_document
    from evidence.check.interface import CheckContext
    from evidence.check.runner import run_checks
    from evidence.check.timeline import build_serving_timeline
    from evidence.check.waivers import apply_waivers, parse_waivers
    from evidence.collect.store import normalise_all, pretty_json
    from evidence.errors import ConfigError

    reader: BagReader = FolderReader(source) if isinstance(source, Path) else source
    if collectors is None:
        from evidence.collect.runner import default_collectors

        collectors = default_collectors()
    if controls is None:
        from evidence.check.runner import default_controls

        controls = default_controls()
    request = read_request(reader)
    collected = read_collection(reader)
    records: dict[str, list[Record]] = normalise_all(collectors, load_raw(reader, collected.requests))
    records["serving_timeline"] = build_serving_timeline(records)
    collected_at = parse_timestamp(collected.finished_at)

    ctx = CheckContext(
        records=records,
        gaps=collected.gaps,
        scope=request.scope,
        window=request.window,
        collected_at=collected_at,
        policy=request.policy,
        kind=request.kind,
        release_model=request.release_model,
        release_version=request.release_version,
    )
    results = run_checks(controls, ctx)
    if request.attachments.waivers is not None:
        try:
            waivers = parse_waivers(tomllib.loads(request.attachments.waivers.decode("utf-8")), WAIVERS_INPUT)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ConfigError) as exc:
            raise DerivationError(f"{WAIVERS_INPUT} cannot be read: {exc}") from None
        results = apply_waivers(results, waivers, collected_at.date())

    small: dict[str, bytes] = {}
    review: dict[str, Any] | None = None
    if request.kind == "access-review":
        review = _access_review(request, records, small)
    small[FINDINGS_JSON] = pretty_json(findings_document(results)).encode("utf-8")
    small[FINDINGS_CSV] = findings_csv(results).encode("utf-8")
    in_memory, on_disk = _record_files(records, write_to)
    files = DerivedFiles({**small, **in_memory}, on_disk)

    evidence_files = _evidence_files(reader, files)
    package_id = _package_id(evidence_files)
    # With write_to, the report and the Derivation read the rows back from the files just written,
    # one at a time: the in-memory rows are freed when this function returns, before the report
    # is rendered (issue 7: WeasyPrint needs ~400 MB for the large tenant's report on its own).
    kept: Mapping[str, Sequence[Record]] = records if write_to is None else _stored_records(write_to, records)
    report = _report_input(request, collected, kept, results, evidence_files, package_id, review)
    return Derivation(
        request=request,
        collected=collected,
        records=kept,
        results=tuple(results),
        files=files,
        evidence_files=evidence_files,
        package_id=package_id,
        report=report,
        review=review,
    )


class DerivedFiles(Mapping[str, bytes]):
    """Every derived file, bag-relative path -> bytes, in path order.

    Small files are held as bytes; the record files may instead be files already written under a
    folder (``derive(write_to=...)``), read when asked for, so that holding a ``Derivation`` does
    not hold the records twice (as rows and as their serialised files).
    """

    def __init__(self, in_memory: Mapping[str, bytes], on_disk: Mapping[str, Path]) -> None:
        self._in_memory = dict(in_memory)
        self._on_disk = dict(on_disk)
        self._paths = tuple(sorted({*self._in_memory, *self._on_disk}))

    def __getitem__(self, rel: str) -> bytes:
        if rel in self._in_memory:
            return self._in_memory[rel]
        return self._on_disk[rel].read_bytes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def stored_at(self, rel: str) -> Path | None:
        """Where the file already is on disk, or None when it is held in memory."""
        return self._on_disk.get(rel)

    def sha256(self, rel: str) -> str:
        """The file's SHA-256, read in chunks when it is on disk (never whole in memory)."""
        path = self._on_disk.get(rel)
        if path is None:
            return hashlib.sha256(self._in_memory[rel]).hexdigest()
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()


def write_derived(bag: Path, derivation: Derivation) -> None:
    files = derivation.files
    for rel in files:
        target = bag / rel
        stored = files.stored_at(rel) if isinstance(files, DerivedFiles) else None
        if stored is not None and stored.resolve() == target.resolve():
            continue  # derive(write_to=bag) already wrote it in place
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[rel])


def _record_files(
    records: Mapping[str, Sequence[Record]], write_to: Path | None
) -> tuple[dict[str, bytes], dict[str, Path]]:
    """What ``collect.store.write_records`` writes, one .jsonl and one .csv per kind: (in memory, on disk).

    ``write_to``: written under that folder and left there (on disk). None: written to a scratch
    folder and read back as bytes (in memory).
    """
    import tempfile

    from evidence.collect.store import write_records

    # write_records is the one definition of the record file formats; render it into a folder
    # rather than keep a second copy of those formats here.
    if write_to is not None:
        write_records(records, write_to)
        folder = write_to / RECORDS_DIR
        return {}, {f"{RECORDS_DIR}/{p.name}": p for p in sorted(folder.iterdir())}
    with tempfile.TemporaryDirectory(prefix="evidence-derive-") as tmp:
        write_records(records, Path(tmp))
        folder = Path(tmp) / RECORDS_DIR
        return {f"{RECORDS_DIR}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}, {}


def _stored_records(bag: Path, records: Mapping[str, Sequence[Record]]) -> dict[str, Sequence[Record]]:
    """Every kind's rows as ``collect.store.StoredRecords`` over the files written under ``bag``."""
    from evidence.collect.store import StoredRecords

    folder = bag / RECORDS_DIR
    return {kind: StoredRecords(folder / f"{kind}.jsonl") for kind in records}


def _access_review(request: Request, records: dict[str, list[Record]], files: dict[str, bytes]) -> dict[str, Any]:
    """The frozen population, the quarter's changes, the diff and the decisions, as records and a sheet.

    Adds ``access_review_*`` record kinds (written under data/records/ like the others) and the
    reviewer sheet template; returns what the report shows. A recorded decisions sheet that does
    not match the population raises the access review's one-line UsageError.
    """
    from evidence.check.access_review import (
        decisions_template,
        diff_population,
        load_decisions,
        review_changes,
        review_population,
    )

    population = review_population(records)
    changes = review_changes(records, request.window)
    records["access_review_population"] = population
    records["access_review_changes"] = changes
    files[DECISIONS_TEMPLATE] = decisions_template(population).encode("utf-8")
    review: dict[str, Any] = {
        "population": population,
        "changes": changes,
        "previous": dict(request.attachments.previous) if request.attachments.previous else None,
        "diff": None,
        "decisions": None,
        "pending_removals": None,
    }
    previous_rows = request.attachments.previous_population
    if previous_rows is not None:
        try:
            previous = [json.loads(line) for line in previous_rows.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise DerivationError(f"{PREVIOUS_INPUT} is malformed: {exc}") from None
        diff = diff_population(records.get("role_assignments", []), previous)
        records["access_review_added"] = diff["added"]
        records["access_review_removed"] = diff["removed"]
        review["diff"] = diff
    if request.attachments.decisions is not None:
        try:
            text = request.attachments.decisions.decode("utf-8-sig")  # a BOM, as spreadsheets save it
        except UnicodeDecodeError as exc:
            raise DerivationError(f"{DECISIONS_INPUT} is not UTF-8: {exc}") from None
        decisions = load_decisions(text, population, source="decisions file")
        records["access_review_decisions"] = [dict(row) for row in decisions.rows]
        review["decisions"] = [dict(row) for row in decisions.rows]
        review["pending_removals"] = list(decisions.pending_removals)
    return review


def _evidence_files(reader: BagReader, derived: Mapping[str, bytes]) -> tuple[tuple[str, str], ...]:
    """(path, sha256) of every payload file but the report: inputs as stored, derived as computed."""
    digests: dict[str, str] = {}
    for rel in reader.files:
        if rel.startswith("data/") and not is_report(rel) and not is_derived(rel):
            digests[rel] = hashlib.sha256(reader.read(rel)).hexdigest()
    for rel in derived:
        if isinstance(derived, DerivedFiles):
            digests[rel] = derived.sha256(rel)  # record files on disk: hashed in chunks
        else:
            digests[rel] = hashlib.sha256(derived[rel]).hexdigest()
    return tuple(sorted(digests.items(), key=lambda item: item[0].encode("utf-8")))


def _package_id(evidence_files: Sequence[tuple[str, str]]) -> str:
    """SHA-256 over the manifest lines of the evidence (everything in data/ but the report).

    The report shows the package ID on its cover, so the ID cannot cover the report itself; it is
    exactly reproducible from ``manifest-sha256.txt`` by dropping the ``data/report/`` lines.
    """
    lines = "".join(f"{digest}  {path}\n" for path, digest in evidence_files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _report_input(
    request: Request,
    collected: Collected,
    records: Mapping[str, Sequence[Record]],
    results: Sequence[ControlResult],
    evidence_files: Sequence[tuple[str, str]],
    package_id: str,
    review: Mapping[str, Any] | None,
) -> ReportInput:
    from evidence.render.interface import ReportInput

    scope = dict(request.scope.to_json())
    if request.kind == "release" and request.release_model:
        # The cover names the released model and version as part of the scope (issue #5, item 1).
        scope.update(model=request.release_model, version=request.release_version)
    return ReportInput(
        kind=request.kind,
        title=request.title,
        organisation=request.scope.organisation,
        scope=scope,
        window=request.window.to_json(),
        generated_at=collected.finished_at,
        tool_version=collected.tool_version,  # the version that collected, also when re-derived
        package_id=package_id,
        signer=request.signer,
        records=records,
        controls=[r.to_json() for r in results],
        findings=[f.to_json() for r in results for f in r.findings],
        gaps=[g.to_json() for g in collected.gaps],
        requests=[p.to_json() for p in collected.requests],
        redactions=[r.to_json() for r in collected.redactions],
        evidence_files=list(evidence_files),
        review=review,
        privileged_roles=tuple(request.policy.privileged_roles),
    )
