"""What the render stage is given, and how it fails.

The pipeline hands the renderer one frozen :class:`ReportInput`: everything a report shows, already
collected, checked and hashed. The renderer reads nothing else (no files, no network, no clock), so
the same input always gives the same HTML and PDF bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evidence.clock import parse_timestamp
from evidence.errors import EvidenceError

#: Report kinds and how the cover names them.
REPORT_KINDS: Mapping[str, str] = {
    "audit": "Audit evidence report",
    "release": "Release close-out",
    "access-review": "Access review",
}

#: Fake origin of the renderer's in-memory assets (bundled fonts, print charts): ``.invalid`` can
#: never resolve (RFC 6761), and only :mod:`evidence.render.fetcher`'s allow-list answers for it.
ASSET_BASE = "https://assets.evidence.invalid/"

#: Page sizes ``render_pdf`` accepts.
PAGE_SIZES: tuple[str, ...] = ("A4", "Letter")


class RenderError(EvidenceError):
    """A report could not be rendered (bad input, or WeasyPrint failed)."""


@dataclass(frozen=True)
class ReportInput:
    """Everything one report shows. Values are JSON types; timestamps are ISO 8601 UTC strings."""

    kind: str  # "audit" | "release" | "access-review"
    title: str
    organisation: str
    # {"organisation", "subscriptions": [...], "workspaces": [ARM ids], "registries": [...],
    #  optional "model"/"version" for a release}
    scope: Mapping[str, Any]
    window: Mapping[str, str]  # {"start": ISO, "end": ISO}
    generated_at: str  # ISO 8601 UTC: the package clock, also the PDF creation date
    tool_version: str
    package_id: str  # hex digest identifying the evidence (computed by the bundler)
    signer: Mapping[str, Any] | None  # {"label", "fingerprint", "algorithm", "insecure_demo": bool}
    records: Mapping[str, Sequence[Mapping[str, Any]]]  # record kind -> rows
    controls: Sequence[Mapping[str, Any]] = field(default=())
    findings: Sequence[Mapping[str, Any]] = field(default=())
    gaps: Sequence[Mapping[str, Any]] = field(default=())
    requests: Sequence[Mapping[str, Any]] = field(default=())
    redactions: Sequence[Mapping[str, Any]] = field(default=())
    evidence_files: Sequence[tuple[str, str]] = field(default=())  # (path in package, sha256 hex)
    # Access review only: {"population", "changes": [...], "previous": {"package", "package_id",
    # "sha256"} | None, "diff": {"added", "removed"} | None, "decisions": [...] | None,
    # "pending_removals": [assignment IDs] | None} (see evidence.derive._access_review)
    review: Mapping[str, Any] | None = None
    # The roles the policy counts as privileged (EV-08); the inventory bolds and counts the same
    # ones. Empty: the policy defaults (evidence.config.DEFAULT_PRIVILEGED_ROLES).
    privileged_roles: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in REPORT_KINDS:
            raise RenderError(
                f"unknown report kind {self.kind!r}",
                hint=f"use one of: {', '.join(REPORT_KINDS)}",
            )
        for key in ("start", "end"):
            if key not in self.window:
                raise RenderError(f"report window has no {key!r}", hint="pass {'start': ISO, 'end': ISO}")
        # Parse once here, so the templates and charts can rely on these three instants.
        for name, value in (
            ("window start", self.window["start"]),
            ("window end", self.window["end"]),
            ("generated_at", self.generated_at),
        ):
            try:
                parse_timestamp(str(value))
            except ValueError as exc:
                raise RenderError(
                    f"{name} is not an ISO 8601 timestamp: {value!r}", hint="e.g. 2025-01-31T12:00:00Z"
                ) from exc
