"""The evidence tap: a transport wrapper that keeps every HTTP exchange exactly as received.

Every SDK client the factory builds sends through one ``EvidenceTap``, which wraps the real,
recording or replay transport. Collectors drive the SDKs (so authentication, retries, paging and
api-versions stay the SDKs' own), while the tap keeps the raw bytes of each response with its
provenance. Records are later normalised from these raw bytes, not from SDK model objects: an SDK
model silently drops fields its api-version does not know, and evidence lost that way cannot be
found again.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.core.pipeline.transport import HttpTransport

from evidence.clock import Clock, isoformat

_channel: contextvars.ContextVar[str] = contextvars.ContextVar("evidence_channel", default="unattributed")


@dataclass(frozen=True)
class Exchange:
    """One request and its response as the SDK saw them (before any redaction)."""

    seq: int
    collector: str
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    received_at: str

    @property
    def api_version(self) -> str | None:
        for key, value in parse_qsl(urlsplit(self.url).query):
            if key.lower() == "api-version":
                return value
        return None

    @property
    def request_id(self) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get("x-ms-request-id") or lowered.get("x-ms-correlation-request-id")


def _response_bytes(response: Any) -> bytes:
    # azure-core has two response families: azure.core.rest (read()/content) and the legacy
    # pipeline.transport one (body()). Reading caches the bytes, so the SDK can still parse them.
    data = response.read() if hasattr(response, "read") else response.body()
    return bytes(data or b"")


class EvidenceTap(HttpTransport):  # type: ignore[type-arg]  # azure-core's generic params are not public API
    def __init__(self, inner: "HttpTransport[Any, Any]", clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    @property
    def inner(self) -> "HttpTransport[Any, Any]":
        return self._inner

    @staticmethod
    @contextmanager
    def channel(collector: str) -> Iterator[None]:
        """Attribute every exchange made inside the block to ``collector``."""
        token = _channel.set(collector)
        try:
            yield
        finally:
            _channel.reset(token)

    def exchanges(self, collector: str | None = None) -> list[Exchange]:
        with self._lock:
            items = list(self._exchanges)
        return [e for e in items if collector is None or e.collector == collector]

    # -- HttpTransport ---------------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> Any:
        # Evidence must be complete: never let the SDK stream a body we would then not see.
        kwargs["stream"] = False
        response = self._inner.send(request, **kwargs)
        body = _response_bytes(response)
        with self._lock:
            exchange = Exchange(
                seq=len(self._exchanges),
                collector=_channel.get(),
                method=request.method.upper(),
                url=request.url,
                status=int(response.status_code),
                headers={str(k): str(v) for k, v in response.headers.items()},
                body=body,
                received_at=isoformat(self._clock.now()),
            )
            self._exchanges.append(exchange)
        return response

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> EvidenceTap:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._inner.__exit__(*args)

    def sleep(self, duration: float) -> None:
        # Retry back-off goes through the transport; replay makes it instant, live waits for real.
        self._inner.sleep(duration)
