"""Model-version and endpoint collectors, replayed through azure-ai-ml's real pipelines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from azure_shapes import (
    ARM,
    DEPLOYMENTS_API,
    ENDPOINTS_API,
    MODELS_API,
    RG,
    SUB,
    WS,
    WS_ID,
    arm_error,
    deployment,
    endpoint,
    get,
    model_container,
    model_version,
)

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.endpoints import EndpointsCollector, parse_model_reference
from evidence.collect.models import ModelVersionsCollector
from evidence.collect.runner import run_collection
from evidence.collect.store import load_raw, normalise_all, write_raw
from evidence.domain import Scope, Window, Workspace

CLOCK = FixedClock(datetime(2026, 9, 28, 6, 0, tzinfo=UTC))
WINDOW = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
SCOPE = Scope(workspaces=(Workspace(SUB, RG, WS),), organisation="Contoso Ltd")
MODELS = f"{ARM}{WS_ID}/models?api-version={MODELS_API}&listViewType=All"


def versions_url(name: str) -> str:
    return f"{ARM}{WS_ID}/models/{name}/versions?api-version={MODELS_API}&listViewType=All"


def _run(entries: list, tmp_path: Path, collectors: list) -> tuple[dict, tuple, ReplayTransport, list]:
    replay = ReplayTransport(entries)
    tap = EvidenceTap(replay, CLOCK)
    clients = AzureClients(StaticCredential(), tap)
    run = run_collection(clients=clients, tap=tap, scope=SCOPE, window=WINDOW, clock=CLOCK, collectors=collectors)
    provenance, _ = write_raw(run.exchanges, tmp_path)
    records = normalise_all(collectors, load_raw(tmp_path, provenance))
    return records, run.gaps, replay, provenance


def test_model_versions_across_pages_including_archived(tmp_path: Path) -> None:
    page2 = f"{MODELS}&$skipToken=page2"
    entries = [
        get(MODELS, {"value": [model_container("credit-risk", "3")], "nextLink": page2}),
        get(page2, {"value": [model_container("churn", "1")]}),
        get(
            versions_url("credit-risk"),
            {
                "value": [
                    model_version("credit-risk", "1", tags={"owner": "risk-team"}, stage="Archived", archived=True),
                    model_version("credit-risk", "3", tags={"approved_by": "carol@contoso.com"}, stage="Production"),
                    model_version("credit-risk", "2", tags={}, stage="Staging"),
                ]
            },
        ),
        get(versions_url("churn"), {"value": [model_version("churn", "1", tags={}, stage="Development")]}),
    ]
    records, gaps, replay, _ = _run(entries, tmp_path, [ModelVersionsCollector()])
    rows = records["model_versions"]
    assert gaps == ()
    assert [(r["model_name"], r["version"]) for r in rows] == [
        ("churn", "1"),
        ("credit-risk", "1"),
        ("credit-risk", "2"),
        ("credit-risk", "3"),
    ]
    first = rows[1]
    assert first["archived"] is True and first["stage"] == "Archived"
    assert first["workspace_id"] == WS_ID
    assert first["job_name"] == "train-credit-risk-1"
    assert first["created_by"] == "alice@contoso.com"
    # 7-digit .NET fractions are normalised to UTC ISO 8601 with Z
    assert rows[3]["tags"] == {"approved_by": "carol@contoso.com"}
    assert rows[0]["created_at"] == "2026-07-01T10:00:00Z"
    assert replay.unused() == []


def test_failed_version_list_becomes_gap_and_others_still_collected(tmp_path: Path) -> None:
    entries = [
        get(MODELS, {"value": [model_container("credit-risk", "1"), model_container("secret-model", "1")]}),
        get(versions_url("credit-risk"), {"value": [model_version("credit-risk", "1", tags={}, stage="Production")]}),
        get(
            versions_url("secret-model"),
            arm_error("AuthorizationFailed", "The client does not have authorization to perform action."),
            status=403,
        ),
    ]
    records, gaps, _, provenance = _run(entries, tmp_path, [ModelVersionsCollector()])
    assert [r["model_name"] for r in records["model_versions"]] == ["credit-risk"]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.collector == "model_versions"
    assert gap.scope == f"{WS_ID}/models/secret-model"
    assert (gap.status, gap.error_code) == (403, "AuthorizationFailed")
    # the 403 body is kept as evidence of why, and the request is in the provenance
    (denied,) = [p for p in provenance if p.status == 403]
    assert denied.file is not None and "AuthorizationFailed" in (tmp_path / denied.file).read_text()
    assert denied.url.endswith("/models/secret-model/versions?api-version=2023-08-01-preview&listViewType=All")


def test_endpoints_and_deployments_with_traffic(tmp_path: Path) -> None:
    ep_list = f"{ARM}{WS_ID}/onlineEndpoints?api-version={ENDPOINTS_API}"
    deps = f"{ARM}{WS_ID}/onlineEndpoints/credit-risk-endpoint/deployments?api-version={DEPLOYMENTS_API}"
    entries = [
        get(ep_list, {"value": [endpoint("credit-risk-endpoint", {"blue": 90, "green": 10}, {"shadow": 20})]}),
        get(
            deps,
            {
                "value": [
                    deployment("credit-risk-endpoint", "green", f"{WS_ID}/models/credit-risk/versions/4"),
                    deployment("credit-risk-endpoint", "blue", f"{WS_ID}/models/credit-risk/versions/3"),
                    deployment("credit-risk-endpoint", "shadow", "azureml:credit-risk:5"),
                ]
            },
        ),
    ]
    records, gaps, _, _ = _run(entries, tmp_path, [EndpointsCollector()])
    assert gaps == ()
    (ep,) = records["endpoints"]
    assert ep["traffic"] == {"blue": 90, "green": 10} and ep["mirror_traffic"] == {"shadow": 20}
    rows = {r["deployment_name"]: r for r in records["deployments"]}
    assert [r["deployment_name"] for r in records["deployments"]] == ["blue", "green", "shadow"]
    assert (rows["blue"]["model_name"], rows["blue"]["model_version"], rows["blue"]["traffic_percent"]) == (
        "credit-risk",
        "3",
        90,
    )
    assert rows["shadow"]["traffic_percent"] == 0 and rows["shadow"]["mirror_traffic_percent"] == 20
    assert rows["green"]["instance_count"] == 2


def test_model_reference_forms() -> None:
    assert parse_model_reference(f"{WS_ID}/models/m/versions/7") == ("m", "7")
    assert parse_model_reference("azureml:m:7") == ("m", "7")
    assert parse_model_reference("azureml://registries/contoso-reg/models/m/versions/7") == ("m", "7")
    assert parse_model_reference("azureml://locations/westeurope/workspaces/abc/models/m/versions/7") == ("m", "7")
    # no explicit version: a finding for the explicit-version control, not a parse error
    assert parse_model_reference("azureml:m@latest") == (None, None)
    assert parse_model_reference(None) == (None, None)
