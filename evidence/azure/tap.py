"""The evidence tap: a transport wrapper that keeps every HTTP exchange exactly as received.

Every SDK client the factory builds sends through one ``EvidenceTap``, which wraps the real,
recording or replay transport. Collectors drive the SDKs (so authentication, retries, paging and
api-versions stay the SDKs' own), while the tap keeps the raw bytes of each response with its
provenance. Records are later normalised from these raw bytes, not from SDK model objects: an SDK
model silently drops fields its api-version does not know, and evidence lost that way cannot be
found again.

Ordering: concurrent collection makes requests in an order that depends on timing, but the package
must not. Each exchange carries the *task key* of the collection task that made it (set by the
runner with ``EvidenceTap.task``; a tuple such as ``(collector index, part index)``) and its place
within that task (``task_seq``). A task's calls are sequential, so sorting by ``order_key`` gives the
order a sequential run would have made them in, whatever order they arrived in.

Memory: by default the tap keeps every exchange (tests and the sample generator read them back). A
run that writes a package hands them to a sink instead (``EvidenceTap.streaming``): the store writes
each body to disk as it arrives and the tap keeps nothing, so memory does not grow with the number
of Activity Log pages.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.core.pipeline.transport import HttpTransport

from evidence.clock import Clock, isoformat

_channel: contextvars.ContextVar[str] = contextvars.ContextVar("evidence_channel", default="unattributed")
_task: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("evidence_task", default=())


def current_channel() -> str:
    """The collector the current code collects for (``"unattributed"`` outside a channel)."""
    return _channel.get()


#: Receives each exchange as it arrives (from the thread that made the request).
Sink = Callable[["Exchange"], None]


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
    #: The collection task that made the request (``()`` outside one) and its place in that task.
    task: tuple[int, ...] = ()
    task_seq: int = 0

    @property
    def order_key(self) -> tuple[tuple[int, ...], int]:
        """Sorts exchanges into sequential-run order, independent of arrival order."""
        return (self.task, self.task_seq)

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
    def __init__(self, inner: HttpTransport[Any, Any], clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._count = 0
        self._task_counts: dict[tuple[int, ...], int] = {}
        self._sink: Sink | None = None

    @property
    def inner(self) -> HttpTransport[Any, Any]:
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

    @staticmethod
    @contextmanager
    def task(key: tuple[int, ...]) -> Iterator[None]:
        """Attribute every exchange made inside the block to the collection task ``key``."""
        token = _task.set(key)
        try:
            yield
        finally:
            _task.reset(token)

    @contextmanager
    def streaming(self, sink: Sink) -> Iterator[None]:
        """Hand each exchange to ``sink`` as it arrives instead of keeping it.

        Exchanges kept before (e.g. ``--discover``'s Resource Graph queries, made before the
        package folder existed) go to the sink first: nothing the tap saw is left out.
        """
        with self._lock:
            if self._sink is not None:
                raise RuntimeError("the evidence tap already streams to a sink")
            self._sink = sink
            earlier, self._exchanges = self._exchanges, []
        for exchange in earlier:
            sink(exchange)
        try:
            yield
        finally:
            with self._lock:
                self._sink = None

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
        task = _task.get()
        with self._lock:
            task_seq = self._task_counts.get(task, 0)
            self._task_counts[task] = task_seq + 1
            exchange = Exchange(
                seq=self._count,
                collector=_channel.get(),
                method=request.method.upper(),
                url=request.url,
                status=int(response.status_code),
                headers={str(k): str(v) for k, v in response.headers.items()},
                body=body,
                received_at=isoformat(self._clock.now()),
                task=task,
                task_seq=task_seq,
            )
            self._count += 1
            sink = self._sink
            if sink is None:
                self._exchanges.append(exchange)
        if sink is not None:
            # Outside the lock: the sink redacts and writes to disk, in this worker thread.
            sink(exchange)
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
