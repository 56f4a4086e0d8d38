"""Regenerate the Contoso sample cassette from its readable description.

    python samples/generate.py            # writes samples/contoso/cassette/*.json

The cassette is a *recording of the tool's own collection run* against the simulated Resource
Manager: ``SimulatedAzure(tenant)`` (evidence.azure.simulator) serves
``samples/contoso/tenant.toml``, ``RecordingTransport`` captures every exchange exactly as the
real recorder would (``--record``), and the collectors run through ``run_collection`` with the
scope and window of ``samples/contoso/evidence.toml``. So the demo replays precisely the requests
the tool makes, and a collector that changes its requests shows up as a stale sample (the test
``tests/test_sample.py`` regenerates into a temporary directory and compares bytes).

Files are split per collector (``<collector>.json``, sorted entries, sorted keys), each with
``Variables.recorded_at`` (the replay clock) set to the tenant's ``now``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from evidence.azure.cassette import Entry
from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.recording import RecordingTransport, write_recording
from evidence.azure.simulator import SimulatedAzure, Throttle, VirtualTime, load_tenant
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock, isoformat
from evidence.collect.interface import Collector
from evidence.collect.runner import default_collectors, run_collection
from evidence.config import load_config

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "contoso"


def generate(
    out_dir: Path,
    *,
    tenant_path: Path = SAMPLE / "tenant.toml",
    config_path: Path = SAMPLE / "evidence.toml",
    collectors: Sequence[Collector] | None = None,
) -> list[Path]:
    """Record a collection run against the simulated tenant into ``out_dir``; return the files."""
    tenant = load_tenant(tenant_path)
    config = load_config(config_path)
    clock = FixedClock(tenant.now)
    virtual = VirtualTime()
    # The ARM read throttle is on (realistic remaining-reads headers); its clock is virtual, so
    # the run is instant and the headers are the same on every run.
    simulator = SimulatedAzure(tenant, throttle=Throttle(), clock=virtual.now, sleep=virtual.sleep, strict=True)
    recorder = RecordingTransport(simulator)
    tap = EvidenceTap(recorder, clock)
    clients = AzureClients(StaticCredential(), tap)
    if config.scope.lists_workspaces:
        # No workspace names: list the resource group's workspaces as `evidence package` does (the
        # answers go to discovery.json, which a replay then answers from).
        from evidence.collect.discovery import list_resource_group_scope

        scope = list_resource_group_scope(
            clients,
            subscriptions=config.scope.subscriptions,
            resource_group=config.scope.resource_group,
            organisation=config.scope.organisation,
            registries=config.scope.registries,
        )
    else:
        scope = config.scope.to_scope()
    window = config.window.resolve(clock.now())
    chosen = list(collectors) if collectors is not None else default_collectors()
    run = run_collection(clients=clients, tap=tap, scope=scope, window=window, clock=clock, collectors=chosen)
    if run.gaps:
        # The sample must record what the tenant says, not failures of the simulator.
        raise SystemExit(f"collection against the simulator left gaps: {[g.message for g in run.gaps]}")
    exchanges = tap.exchanges()
    entries = recorder.entries
    if len(exchanges) != len(entries):
        raise SystemExit("recorder and tap disagree on the number of exchanges")
    groups: dict[str, list[Entry]] = {}
    for exchange, entry in zip(exchanges, entries, strict=True):
        groups.setdefault(exchange.collector, []).append(entry)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        stale.unlink()
    variables = {"recorded_at": isoformat(tenant.now), "tenant": "contoso (simulated, samples/contoso/tenant.toml)"}
    return [write_recording(groups[name], out_dir, f"{name}.json", variables) for name in sorted(groups)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SAMPLE / "cassette", help="cassette directory to (re)write")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
