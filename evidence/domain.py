"""Value types shared by every stage: scope, window, provenance, gaps and redactions.

All frozen: once collection has produced them, nothing downstream may change them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from evidence.clock import isoformat


@dataclass(frozen=True, order=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("window end must be after its start")

    def to_json(self) -> dict[str, str]:
        return {"start": isoformat(self.start), "end": isoformat(self.end)}

    def __str__(self) -> str:
        return f"{isoformat(self.start)}/{isoformat(self.end)}"


@dataclass(frozen=True)
class Scope:
    """What a package covers."""

    workspaces: tuple[Workspace, ...]
    registries: tuple[str, ...] = ()
    organisation: str = ""

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return tuple(sorted({w.subscription_id for w in self.workspaces}))

    def to_json(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "subscriptions": list(self.subscriptions),
            "workspaces": [w.arm_id for w in sorted(self.workspaces)],
            "registries": sorted(self.registries),
        }


@dataclass(frozen=True)
class Provenance:
    """Where one raw response came from. One per HTTP exchange a collector caused."""

    collector: str
    method: str
    url: str  # redacted: never carries a SAS signature or token
    api_version: str | None
    status: int
    request_id: str | None
    received_at: str  # ISO 8601 UTC
    file: str | None  # the raw file in the package holding the body, relative to the bag root

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Gap:
    """Evidence that could not be collected, and why. Never dropped silently."""

    collector: str
    scope: str  # ARM ID (or URL) of what was being read
    status: int | None  # HTTP status, None when no response came back
    error_code: str | None
    message: str
    at: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Redaction:
    """A secret removed from evidence before it was written: which file, where, and why."""

    file: str
    pointer: str  # RFC 6901 JSON pointer, or "url" / "header:<name>"
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CollectionSummary:
    """What ``data/collection.json`` says about one run."""

    tool_version: str
    scope: Scope
    window: Window
    started_at: str
    finished_at: str
    requests: tuple[Provenance, ...]
    gaps: tuple[Gap, ...]
    redactions: tuple[Redaction, ...] = field(default=())
    mode: str = "live"  # live | replay | record

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "evidence-collection/v1",
            "tool_version": self.tool_version,
            "mode": self.mode,
            "scope": self.scope.to_json(),
            "window": self.window.to_json(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "requests": [r.to_json() for r in self.requests],
            "gaps": [g.to_json() for g in self.gaps],
            "redactions": [r.to_json() for r in self.redactions],
        }
