"""Sovereign and custom clouds: every SDK client the factory builds talks to the configured cloud."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from azure_shapes import MODELS_API, RG, SUB, WS_ID, get, model_container, model_version

from evidence.azure.clients import AZURE_PUBLIC, AZURE_US_GOVERNMENT, AzureClients, Cloud
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport, load_cassette
from evidence.azure.session import replay_session, resolve_cloud
from evidence.azure.tap import EvidenceTap
from evidence.collect.models import ModelVersionsCollector
from evidence.collect.runner import default_collectors, run_collection
from evidence.config import load_config
from evidence.domain import Scope, Workspace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "contoso"


def _moved(cloud: Cloud) -> ReplayTransport:
    """The Contoso recording as if it had been made in ``cloud``."""
    cassette = load_cassette(SAMPLE / "cassette")
    public, target = AZURE_PUBLIC.resource_manager, cloud.resource_manager
    entries = [
        replace(
            e,
            request_uri=e.request_uri.replace(public, target),
            response_body=_swap(e.response_body, public, target),
        )
        for e in cassette.entries
    ]
    return ReplayTransport(entries)


def _swap(value: object, old: str, new: str) -> object:
    # nextLinks point at the cloud that answered; move them too.
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    return value


def _collect(cloud: Cloud, transport: ReplayTransport) -> tuple[tuple, StaticCredential]:
    session = replay_session(SAMPLE / "cassette")  # for the recording's clock
    config = load_config(SAMPLE / "evidence.toml")
    credential = StaticCredential()
    tap = EvidenceTap(transport, session.clock)
    run = run_collection(
        clients=AzureClients(credential, tap, cloud=cloud),
        tap=tap,
        scope=config.scope.to_scope(),
        window=config.window.resolve(session.clock.now()),
        clock=session.clock,
        collectors=default_collectors(),
    )
    return run.gaps, credential


def test_every_collector_reaches_the_government_cloud() -> None:
    transport = _moved(AZURE_US_GOVERNMENT)
    gaps, credential = _collect(AZURE_US_GOVERNMENT, transport)
    assert gaps == ()
    assert transport.unused() == []  # every recorded request was made, to the government endpoint
    assert all(s.url.startswith("https://management.usgovcloudapi.net/") for s in transport.served)
    assert {s for scopes in credential.scopes_seen for s in scopes} == {"https://management.usgovcloudapi.net/.default"}


def test_custom_resource_manager_reaches_every_client_without_a_hidden_metadata_call() -> None:
    # Azure Stack Hub: only the Resource Manager endpoint is known. azure-ai-ml knows three clouds;
    # for any other it would fetch ARM's cloud metadata with its own HTTP client, outside the replay.
    cloud = resolve_cloud("", "https://management.local.azurestack.external")
    workspace = Workspace(SUB, RG, "mlw-credit-prod")
    ws_id = WS_ID.replace("mlw-credit-prod", workspace.name)
    base = f"{cloud.resource_manager.rstrip('/')}{ws_id}"
    entries = [
        get(f"{base}/models?api-version={MODELS_API}&listViewType=All", {"value": [model_container("churn", "1")]}),
        get(
            f"{base}/models/churn/versions?api-version={MODELS_API}&listViewType=All",
            {"value": [model_version("churn", "1", tags={}, stage="Production")]},
        ),
    ]
    transport = ReplayTransport(entries)
    session = replay_session(SAMPLE / "cassette")
    tap = EvidenceTap(transport, session.clock)
    run = run_collection(
        clients=AzureClients(StaticCredential(), tap, cloud=cloud),
        tap=tap,
        scope=Scope(workspaces=(workspace,)),
        window=load_config(SAMPLE / "evidence.toml").window.resolve(session.clock.now()),
        clock=session.clock,
        collectors=[ModelVersionsCollector()],
    )
    assert run.gaps == ()
    assert transport.unused() == []


def test_log_analytics_queries_go_to_the_government_endpoint_with_its_audience() -> None:
    from datetime import UTC, datetime

    from evidence.azure.cassette import Entry

    query = "AzureActivity | take 1"
    sent = {"query": query, "timespan": "2026-06-01T00:00:00.000Z/2026-06-02T00:00:00.000Z", "workspaces": None}
    table = {"name": "PrimaryResult", "columns": [{"name": "n", "type": "long"}], "rows": [[1]]}
    transport = ReplayTransport([
        Entry(
            request_uri="https://api.loganalytics.us/v1/workspaces/law-1/query",
            request_method="POST",
            status_code=200,
            request_body=sent,
            response_body={"tables": [table]},
            response_headers={"Content-Type": "application/json; charset=utf-8"},
        )
    ])  # fmt: skip
    credential = StaticCredential()
    session = replay_session(SAMPLE / "cassette")
    clients = AzureClients(credential, EvidenceTap(transport, session.clock), cloud=AZURE_US_GOVERNMENT)
    span = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    result = clients.logs().query_workspace("law-1", query, timespan=span)
    assert result.tables[0].rows[0][0] == 1
    assert transport.unused() == []
    assert {s for scopes in credential.scopes_seen for s in scopes} == {"https://api.loganalytics.us/.default"}
