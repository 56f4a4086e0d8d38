"""Cassettes: recorded HTTP exchanges in the Azure SDK test-proxy recording format.

A cassette is a directory of JSON files, each ``{"Entries": [...], "Variables": {...}}`` with the
entry keys the test-proxy writes (``RequestUri``, ``RequestMethod``, ``RequestHeaders``,
``RequestBody``, ``StatusCode``, ``ResponseHeaders``, ``ResponseBody``). Using that format means
recordings made by Azure's own SDK test suites replay here too.

``ResponseBody`` is a JSON value when the response was JSON, a string otherwise (HTML error pages,
truncated JSON), or null when empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    request_uri: str
    request_method: str
    status_code: int
    response_body: Any = None
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "RequestUri": self.request_uri,
            "RequestMethod": self.request_method,
            "RequestHeaders": dict(sorted(self.request_headers.items())),
            "RequestBody": self.request_body,
            "StatusCode": self.status_code,
            "ResponseHeaders": dict(sorted(self.response_headers.items())),
            "ResponseBody": self.response_body,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            request_uri=data["RequestUri"],
            request_method=data["RequestMethod"],
            status_code=int(data["StatusCode"]),
            response_body=data.get("ResponseBody"),
            request_headers=dict(data.get("RequestHeaders") or {}),
            request_body=data.get("RequestBody"),
            response_headers=dict(data.get("ResponseHeaders") or {}),
        )
