"""Choosing how the tool reaches Azure: live, live while recording, or replayed offline.

This is the one place that decides the credential and the transport; everything downstream gets
an ``AzureClients`` factory and the evidence tap, and cannot tell the modes apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence.azure.clients import AZURE_PUBLIC, CLOUDS, AzureClients, Cloud
from evidence.azure.limiter import Limits, ThrottledTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import Clock, FixedClock, SystemClock, isoformat, parse_timestamp
from evidence.errors import ReplayError, UsageError

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport

#: The cassette variable that holds when a recording was made; a replay runs at that instant.
RECORDED_AT = "recorded_at"


@dataclass
class AzureSession:
    mode: str  # live | record | replay
    clients: AzureClients
    tap: EvidenceTap
    clock: Clock
    record_dir: Path | None = None
    #: ``--pseudonymize``: the salt for the saved recording's pseudonyms. Held here only; never written.
    pseudonymize_salt: bytes | None = field(default=None, repr=False)

    def finish(self) -> None:
        """Save the recording (one file per collector/channel), if this session records."""
        if self.record_dir is None:
            return
        from evidence.azure.recording import RecordingTransport

        recorder = self.tap.inner
        assert isinstance(recorder, RecordingTransport)
        recorder.save(
            self.record_dir,
            variables={RECORDED_AT: isoformat(self.clock.now())},
            pseudonymize_salt=self.pseudonymize_salt,
        )


def resolve_cloud(name: str, resource_manager: str = "") -> Cloud:
    if resource_manager:
        # Azure Stack Hub and other custom clouds: only the Resource Manager endpoint is known.
        return Cloud(name or "AzureCustomCloud", resource_manager.rstrip("/") + "/", AZURE_PUBLIC.log_analytics)
    try:
        return CLOUDS[name or AZURE_PUBLIC.name]
    except KeyError:
        raise UsageError(
            f"unknown cloud {name!r}", hint=f"use one of {', '.join(CLOUDS)} or give --resource-manager URL"
        ) from None


def replay_session(cassette: Path, *, cloud: Cloud = AZURE_PUBLIC, clock: Clock | None = None) -> AzureSession:
    """Offline: answers come from the cassette; the clock stands still at the recording's time.

    Never builds DefaultAzureCredential: its managed-identity leg probes the network.
    """
    from evidence.azure.credentials import StaticCredential
    from evidence.azure.replay import ReplayTransport, load_cassette

    recording = load_cassette(cassette)
    if clock is None:
        recorded_at = recording.variables.get(RECORDED_AT)
        if not isinstance(recorded_at, str):
            raise ReplayError(
                f"recording {cassette} does not say when it was made (Variables.{RECORDED_AT})",
                hint="re-record it with `evidence package --record DIR`",
            )
        try:
            clock = FixedClock(parse_timestamp(recorded_at))
        except ValueError:
            raise ReplayError(f"recording {cassette}: {RECORDED_AT} {recorded_at!r} is not a timestamp") from None
    tap = EvidenceTap(ReplayTransport(recording), clock)
    return AzureSession("replay", AzureClients(StaticCredential(), tap, cloud=cloud), tap, clock)


def live_session(
    *,
    credential_kind: str = "default",
    cloud: Cloud = AZURE_PUBLIC,
    record_dir: Path | None = None,
    clock: Clock | None = None,
    pseudonymize_salt: bytes | None = None,
) -> AzureSession:
    from azure.core.pipeline.transport import RequestsTransport

    from evidence.azure.credentials import live_credential

    clock = clock or SystemClock()
    # tap -> (recorder ->) limiter -> wire. The limiter resends the 429s it absorbs itself, below
    # the recorder: a recording holds exactly the responses the SDK was handed, so a replay (which
    # has no limiter) gives the same package as the live run.
    inner: HttpTransport[Any, Any] = ThrottledTransport(
        RequestsTransport(session=_requests_session(), session_owner=True)
    )
    if record_dir is not None:
        from evidence.azure.recording import RecordingTransport

        _check_record_dir(record_dir)
        inner = RecordingTransport(inner)
    tap = EvidenceTap(inner, clock)
    clients = AzureClients(live_credential(credential_kind), tap, cloud=cloud)
    return AzureSession("record" if record_dir else "live", clients, tap, clock, record_dir, pseudonymize_salt)


def _check_record_dir(record_dir: Path) -> None:
    """Refuse, before any call, a --record directory that already holds recording files.

    A recording is one file per collector; a replay reads every file in the directory, so files
    left from another run (a collector that made no request this time, another scope) would be
    mixed into this one and the replay would not be the recorded run. Failing closed beats
    deleting someone's files.
    """
    if record_dir.is_file():
        raise UsageError(f"--record {record_dir} is a file", hint="give a directory for the recording")
    if record_dir.is_dir():
        existing = sorted(p.name for p in record_dir.rglob("*.json") if not p.name.startswith("."))
        if existing:
            raise UsageError(
                f"--record {record_dir} already holds a recording ({', '.join(existing[:3])}"
                f"{', ...' if len(existing) > 3 else ''})",
                hint="record into a new or empty directory",
            )


def simulated_session(
    simulator: HttpTransport[Any, Any], *, clock: Clock, cloud: Cloud = AZURE_PUBLIC, limits: Limits | None = None
) -> AzureSession:
    """A simulated Resource Manager (``SimulatedAzure`` or several behind one transport) wired as live.

    The same chain as ``live_session`` (tap -> per-subscription limiter -> transport), so the
    benchmark measures the product's own path; only the credential and the wire are stand-ins.
    """
    from evidence.azure.credentials import StaticCredential

    tap = EvidenceTap(ThrottledTransport(simulator, limits=limits or Limits()), clock)
    return AzureSession("live", AzureClients(StaticCredential(), tap, cloud=cloud), tap, clock)


def limiter_of(session: AzureSession) -> ThrottledTransport | None:
    """The session's limiter (for its statistics), or None (replay has none: nothing to protect)."""
    inner: Any = session.tap.inner
    while inner is not None and not isinstance(inner, ThrottledTransport):
        inner = getattr(inner, "inner", None)
    return inner if isinstance(inner, ThrottledTransport) else None


def _requests_session() -> Any:
    """A requests session whose connection pool is as large as the collection pool.

    requests keeps 10 connections per host by default; with more worker threads than that, every
    extra request opens (and then discards) a TLS connection to management.azure.com.
    """
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
