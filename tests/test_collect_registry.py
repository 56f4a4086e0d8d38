"""Registry model versions, replayed through azure-ai-ml's real registry client (discovery included)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from azure_shapes import (
    ARM,
    MODELS_API,
    REG_ID,
    REGISTRY,
    RG,
    SUB,
    WS,
    WS_ID,
    arm_error,
    get,
    model_container,
    model_version,
    registry_discovery,
    registry_discovery_url,
    registry_model_container,
    registry_model_version,
    registry_url,
)

from evidence.azure.cassette import Entry
from evidence.azure.clients import AZURE_US_GOVERNMENT, AzureClients, Cloud
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.models import ModelVersionsCollector
from evidence.collect.runner import run_collection
from evidence.collect.store import load_raw, normalise_all, write_raw
from evidence.domain import Gap, Scope, Window, Workspace

CLOCK = FixedClock(datetime(2026, 9, 28, 6, 0, tzinfo=UTC))
WINDOW = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
SCOPE = Scope(workspaces=(Workspace(SUB, RG, WS),), registries=(REGISTRY,), organisation="Contoso Ltd")
MODELS = f"{ARM}{WS_ID}/models?api-version={MODELS_API}&listViewType=All"
REG_MODELS = registry_url(listViewType="All")


def ws_versions(name: str) -> str:
    return f"{ARM}{WS_ID}/models/{name}/versions?api-version={MODELS_API}&listViewType=All"


def reg_versions(name: str) -> str:
    return registry_url(f"/{name}/versions", listViewType="All")


def workspace_entries() -> list[Entry]:
    return [
        get(MODELS, {"value": [model_container("churn", "1")]}),
        get(ws_versions("churn"), {"value": [model_version("churn", "1", tags={}, stage="Production")]}),
    ]


def _run(
    entries: list[Entry], tmp_path: Path, *, scope: Scope = SCOPE, cloud: Cloud | None = None
) -> tuple[list[dict], tuple[Gap, ...], ReplayTransport, list]:
    replay = ReplayTransport(entries)
    tap = EvidenceTap(replay, CLOCK)
    clients = AzureClients(StaticCredential(), tap, **({"cloud": cloud} if cloud else {}))
    collectors = [ModelVersionsCollector()]
    run = run_collection(clients=clients, tap=tap, scope=scope, window=WINDOW, clock=CLOCK, collectors=collectors)
    provenance, _ = write_raw(run.exchanges, tmp_path)
    records = normalise_all(collectors, load_raw(tmp_path, provenance))
    return records["model_versions"], run.gaps, replay, provenance


def test_registry_versions_across_pages_including_archived_after_discovery(tmp_path: Path) -> None:
    page2 = reg_versions("credit-risk") + "&$skipToken=p2"
    entries = [
        *workspace_entries(),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, {"value": [registry_model_container("credit-risk", "3")]}),
        get(
            reg_versions("credit-risk"),
            {
                "value": [
                    registry_model_version("credit-risk", "1", tags={}, archived=True),
                    registry_model_version("credit-risk", "2", tags={"approved_by": "carol@contoso.com"}),
                ],
                "nextLink": page2,
            },
        ),
        get(page2, {"value": [registry_model_version("credit-risk", "3", tags={"approved_by": "dan@contoso.com"})]}),
    ]
    rows, gaps, replay, provenance = _run(entries, tmp_path)
    assert gaps == ()
    assert replay.unused() == []
    assert [(r["registry"], r["workspace_id"], r["model_name"], r["version"]) for r in rows] == [
        (None, WS_ID, "churn", "1"),
        (REGISTRY, None, "credit-risk", "1"),
        (REGISTRY, None, "credit-risk", "2"),
        (REGISTRY, None, "credit-risk", "3"),
    ]
    archived = rows[1]
    assert archived["archived"] is True
    assert archived["asset_id"] == f"{REG_ID}/models/credit-risk/versions/1"
    assert rows[3]["tags"] == {"approved_by": "dan@contoso.com"} and rows[3]["created_by"] == "sp-mlops-release"
    # A deployment's registry reference, in either form, finds the collected version (the controls' lookup).
    from evidence.check.population import model_version_of

    uri = f"azureml://registries/{REGISTRY}/models/credit-risk/versions/3"
    assert model_version_of(rows, WS_ID, uri, "credit-risk", "3") is rows[3]
    assert model_version_of(rows, WS_ID, rows[2]["asset_id"].upper(), "credit-risk", "2") is rows[2]
    assert model_version_of(rows, WS_ID, "azureml:credit-risk:3", "credit-risk", "3") is None  # not in the workspace
    # The discovery answer is evidence too: it says where the registry lives.
    urls = [p.url for p in provenance]
    assert urls[2] == registry_discovery_url()
    # Every registry list asks for archived assets as well, as the plain value (not the enum's repr).
    for url in urls[3:]:
        assert dict(parse_qsl(urlsplit(url).query))["listViewType"] == "All", url


def test_registry_that_does_not_exist_is_a_gap_and_workspace_models_are_kept(tmp_path: Path) -> None:
    entries = [
        *workspace_entries(),
        get(
            registry_discovery_url(),
            {"error": {"code": "NotFound", "message": f"Registry {REGISTRY} not found"}},
            status=404,
        ),
    ]
    rows, gaps, replay, _ = _run(entries, tmp_path)
    assert [r["model_name"] for r in rows] == ["churn"]
    assert replay.unused() == []
    (gap,) = gaps
    assert (gap.collector, gap.scope, gap.status) == ("model_versions", f"azureml://registries/{REGISTRY}/models", 404)


def test_registry_403_on_one_model_is_a_gap_and_the_others_are_collected(tmp_path: Path) -> None:
    entries = [
        get(MODELS, {"value": []}),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, {"value": [registry_model_container("a", "1"), registry_model_container("b", "1")]}),
        get(reg_versions("a"), {"value": [registry_model_version("a", "1", tags={})]}),
        get(
            reg_versions("b"),
            arm_error("AuthorizationFailed", "The client does not have authorization to perform action."),
            status=403,
        ),
    ]
    rows, gaps, replay, _ = _run(entries, tmp_path)
    assert [(r["model_name"], r["version"]) for r in rows] == [("a", "1")]
    (gap,) = gaps
    assert (gap.scope, gap.status, gap.error_code) == (
        f"azureml://registries/{REGISTRY}/models/b",
        403,
        "AuthorizationFailed",
    )
    assert replay.unused() == []


def test_registry_list_denied_is_a_gap(tmp_path: Path) -> None:
    entries = [
        get(MODELS, {"value": []}),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, arm_error("AuthorizationFailed", "no read on registries/models"), status=403),
    ]
    rows, gaps, _, _ = _run(entries, tmp_path)
    assert rows == []
    assert [(g.scope, g.status) for g in gaps] == [(f"azureml://registries/{REGISTRY}/models", 403)]


def test_no_registries_configured_makes_no_registry_request(tmp_path: Path) -> None:
    scope = Scope(workspaces=SCOPE.workspaces)
    rows, gaps, _, provenance = _run(workspace_entries(), tmp_path, scope=scope)
    assert gaps == () and [r["registry"] for r in rows] == [None]
    assert all(p.url.startswith(ARM) for p in provenance)


def test_government_cloud_discovers_registries_in_that_cloud(tmp_path: Path) -> None:
    gov = "https://management.usgovcloudapi.net"
    entries = [
        get(f"{gov}{WS_ID}/models?api-version={MODELS_API}&listViewType=All", {"value": []}),
        get(registry_discovery_url(host="https://usgovarizona.api.ml.azure.us/"), registry_discovery()),
        get(REG_MODELS, {"value": []}),
    ]
    rows, gaps, replay, _ = _run(entries, tmp_path, cloud=AZURE_US_GOVERNMENT)
    assert (rows, gaps, replay.unused()) == ([], (), [])
    # ... and a public-cloud client built afterwards in the same process is not sent there
    # (MLClient keeps the current cloud in a process-global environment variable).
    public = [
        *workspace_entries(),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, {"value": []}),
    ]
    rows, gaps, replay, _ = _run(public, tmp_path / "public")
    assert gaps == () and replay.unused() == []


def test_registry_html_and_server_errors_become_gaps_after_the_sdk_retries(tmp_path: Path) -> None:
    html = Entry(
        request_uri=reg_versions("a"),
        request_method="GET",
        status_code=200,
        response_body="<html><body>Sign in to continue</body></html>",
        response_headers={"Content-Type": "text/html"},
    )
    busy = get(reg_versions("b"), arm_error("ServiceUnavailable", "try later"), status=503)
    entries = [
        get(MODELS, {"value": []}),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, {"value": [registry_model_container("a", "1"), registry_model_container("b", "1")]}),
        html,
        *[busy] * 4,  # azure-core's default policy: the first attempt and three retries
    ]
    rows, gaps, replay, _ = _run(entries, tmp_path)
    assert rows == []
    assert replay.unused() == []  # exactly four attempts at the 503, one at the HTML page
    assert [(g.scope.rsplit("/", 1)[-1], g.status, g.error_code) for g in gaps] == [
        ("a", None, "MalformedResponse"),
        ("b", 503, "ServiceUnavailable"),
    ]


def test_registry_discovery_is_kept_once_per_collector_whatever_the_concurrency(tmp_path: Path) -> None:
    """The Activity Log reads the registry's resource group too (its discovery on its own channel)."""
    from urllib.parse import urlencode

    from azure_shapes import REG_RG, REG_SUB

    from evidence.collect.activity import ActivityLogCollector

    def events(subscription: str, predicate: str) -> str:
        flt = f"eventTimestamp ge '2026-07-01T00:00:00Z' and eventTimestamp le '2026-09-28T00:00:00Z' and {predicate}"
        query = urlencode({"api-version": "2015-04-01", "$filter": flt})
        return f"{ARM}/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values?{query}"

    entries = [
        *workspace_entries(),
        get(registry_discovery_url(), registry_discovery()),
        get(REG_MODELS, {"value": [registry_model_container("credit-risk", "1")]}),
        get(reg_versions("credit-risk"), {"value": [registry_model_version("credit-risk", "1", tags={})]}),
        get(events(SUB, f"resourceGroupName eq '{RG}'"), {"value": []}),
        get(events(SUB, "resourceProvider eq 'Microsoft.Authorization'"), {"value": []}),
        get(events(REG_SUB, f"resourceGroupName eq '{REG_RG}'"), {"value": []}),
    ]
    collectors = [ModelVersionsCollector(), ActivityLogCollector()]
    seen = []
    for workers in (1, 8):
        replay = ReplayTransport(entries)
        tap = EvidenceTap(replay, CLOCK)
        clients = AzureClients(StaticCredential(), tap)
        run = run_collection(
            clients=clients, tap=tap, scope=SCOPE, window=WINDOW, clock=CLOCK, collectors=collectors, workers=workers
        )
        assert run.gaps == () and replay.unused() == []
        provenance, _ = write_raw(run.exchanges, tmp_path / str(workers))
        seen.append([(p.collector, p.url, p.file) for p in provenance])
    assert seen[0] == seen[1]
    discovered = [collector for collector, url, _ in seen[0] if url == registry_discovery_url()]
    assert discovered == ["model_versions", "activity_log"]
