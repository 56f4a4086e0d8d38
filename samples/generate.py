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

Evidence kinds whose collector is not yet part of ``default_collectors()`` are still recorded,
from the collector class when it exists, else by ``interim_calls`` (plain SDK calls, clearly
marked, to be deleted once every collector is wired into the runner).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
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
from evidence.domain import Scope, Window

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "contoso"

#: Collectors recorded even before the runner lists them by default: (module, class) by name.
#: Only committed collectors belong here; an uncommitted one would make the sample depend on a
#: work-in-progress tree.
EXTRA_COLLECTORS: dict[str, tuple[str, str]] = {
    "role_assignments": ("evidence.collect.rbac", "RoleAssignmentsCollector"),
    "activity_log": ("evidence.collect.activity", "ActivityLogCollector"),
}


def collectors_to_record() -> list[Collector]:
    chosen = list(default_collectors())
    names = {c.name for c in chosen}
    for name, (module, cls) in EXTRA_COLLECTORS.items():
        if name not in names:
            chosen.append(getattr(importlib.import_module(module), cls)())
            names.add(name)
    return chosen


# -- INTERIM: plain SDK calls for evidence no collector records yet ------------------------------
# Delete an entry as soon as a collector of that name is in default_collectors() (or
# EXTRA_COLLECTORS); `generate` skips entries whose name a collector already covers.
def _interim_metrics(clients: AzureClients, scope: Scope, window: Window) -> None:
    timespan = f"{isoformat(window.start)}/{isoformat(window.end)}"
    for ws in sorted(scope.workspaces):
        monitor = clients.monitor(ws.subscription_id)
        for endpoint in clients.ml(ws).online_endpoints.list():
            eid = f"{ws.arm_id}/onlineEndpoints/{endpoint.name}"
            monitor.metrics.list(
                eid,
                timespan=timespan,
                interval="P1D",
                metricnames="RequestsPerMinute",
                aggregation="Average,Total",
                filter="deployment eq '*' and statusCodeClass eq '*'",
                metricnamespace="Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            )
            monitor.metrics.list(
                eid,
                timespan=timespan,
                interval="P1D",
                metricnames="RequestLatency_P50,RequestLatency_P99",
                aggregation="Average",
                filter="deployment eq '*'",
                metricnamespace="Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            )
            for deployment in sorted(clients.ml(ws).online_deployments.list(endpoint.name), key=lambda d: d.name):
                monitor.metrics.list(
                    f"{eid}/deployments/{deployment.name}",
                    timespan=timespan,
                    interval="P1D",
                    metricnames="CpuUtilizationPercentage,CpuMemoryUtilizationPercentage,DeploymentCapacity",
                    aggregation="Average,Maximum",
                    metricnamespace="Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                )


INTERIM_CALLS: dict[str, Callable[[AzureClients, Scope, Window], None]] = {"metrics": _interim_metrics}
# -- end INTERIM ----------------------------------------------------------------------------------


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
    scope = config.scope.to_scope()
    window = config.window.resolve(clock.now())
    chosen = list(collectors) if collectors is not None else collectors_to_record()
    run = run_collection(clients=clients, tap=tap, scope=scope, window=window, clock=clock, collectors=chosen)
    if run.gaps:
        # The sample must record what the tenant says, not failures of the simulator.
        raise SystemExit(f"collection against the simulator left gaps: {[g.message for g in run.gaps]}")
    covered = {c.name for c in chosen}
    for name, calls in INTERIM_CALLS.items():
        if name not in covered:
            with tap.channel(name):
                calls(clients, scope, window)
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
