"""A Resource Graph responder for tests: serves ``POST /providers/Microsoft.ResourceGraph/resources``.

The simulated Resource Manager (another module) does not serve Resource Graph, so discovery tests
use this small ``HttpTransport``. It does not evaluate KQL: a test hands it ``rows_for(query,
subscriptions, management_groups)`` and it pages the rows by ``options.$top`` through an opaque
``$skipToken`` in the body, as the service does, recording each request body it saw.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from azure.core.pipeline.transport import HttpTransport

from evidence.azure.replay import CannedResponse, request_body

RowsFor = Callable[[str, Sequence[str], Sequence[str]], list[dict[str, Any]]]


def _token(offset: int) -> str:
    return base64.b64encode(f"page-offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    return int(base64.b64decode(token).decode().split(":")[1])


class ResourceGraphResponder(HttpTransport[Any, Any]):
    def __init__(self, rows_for: RowsFor, *, max_page: int = 1000) -> None:
        self.rows_for = rows_for
        self.max_page = max_page
        self.bodies: list[dict[str, Any]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        if (
            request.method.upper() != "POST"
            or "/providers/microsoft.resourcegraph/resources" not in request.url.lower()
        ):
            body = {"error": {"code": "NotFound", "message": f"no route for {request.method} {request.url}"}}
            return CannedResponse(request, 404, {"Content-Type": "application/json"}, json.dumps(body).encode())
        payload = json.loads(request_body(request) or b"{}")
        self.bodies.append(payload)
        options = payload.get("options") or {}
        rows = self.rows_for(
            payload["query"], payload.get("subscriptions") or (), payload.get("managementGroups") or ()
        )
        size = min(int(options.get("$top") or self.max_page), self.max_page)
        start = _offset(options["$skipToken"]) if options.get("$skipToken") else 0
        page = rows[start : start + size]
        answer: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "data": page,
            "facets": [],
        }
        if start + size < len(rows):
            answer["$skipToken"] = _token(start + size)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-ms-user-quota-remaining": "14",
            "x-ms-user-quota-resets-after": "00:00:05",
        }
        return CannedResponse(request, 200, headers, json.dumps(answer).encode())

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> ResourceGraphResponder:
        return self

    def __exit__(self, *args: Any) -> None:
        return None
