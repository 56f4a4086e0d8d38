"""``[scope]`` with a resource group and no workspace names: every workspace there, listed first.

The list goes through azure-ai-ml's real ``MLClient(credential, subscription, resource_group)
.workspaces.list(scope="resource_group")`` against the simulated tenant (or a replayed recording),
and its answers are kept in the package on the ``discovery`` channel. A list that fails or finds
nothing stops the run: an audit over an unknown or empty scope must never read as a pass.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from azure_shapes import arm_error, get

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.simulator import Fault, SimulatedAzure, Throttle, VirtualTime, load_tenant
from evidence.azure.tap import EvidenceTap
from evidence.cli import main
from evidence.clock import FixedClock
from evidence.collect.discovery import DISCOVERY_CHANNEL, DiscoveryError, list_resource_group_scope
from evidence.config import parse_config
from evidence.domain import Scope, Workspace
from evidence.errors import ExitCode
from evidence.resources import bundled
from evidence.verify import OpenedPackage

SAMPLE = bundled("samples") / "contoso"
TENANT = load_tenant(SAMPLE / "tenant.toml")
SUB, RG = TENANT.subscription_id, TENANT.resource_group
ML = "https://management.azure.com/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices"
#: The workspaces api-version azure-ai-ml 1.35.2 lists with.
WORKSPACES_API = "2024-10-01-preview"


def listing(
    faults: tuple[Fault, ...] = (), *, subscriptions: tuple[str, ...] = (SUB,), rg: str = RG
) -> tuple[Scope, EvidenceTap]:
    virtual = VirtualTime()
    simulator = SimulatedAzure(TENANT, throttle=Throttle(), clock=virtual.now, sleep=virtual.sleep, faults=faults)
    tap = EvidenceTap(simulator, FixedClock(TENANT.now))
    clients = AzureClients(StaticCredential(), tap)
    scope = list_resource_group_scope(
        clients, subscriptions=subscriptions, resource_group=rg, organisation="Contoso Ltd", registries=("reg",)
    )
    return scope, tap


def test_every_workspace_in_the_resource_group_through_azure_ai_ml() -> None:
    scope, tap = listing()
    assert scope == Scope(
        workspaces=(Workspace(SUB, RG, "mlw-credit-prod"), Workspace(SUB, RG, "mlw-fraud-prod")),
        registries=("reg",),
        organisation="Contoso Ltd",
    )
    (exchange,) = tap.exchanges()
    # Kept on the discovery channel: the package shows how its scope was found.
    assert exchange.collector == DISCOVERY_CHANNEL and exchange.status == 200
    assert exchange.url.startswith(ML.format(sub=SUB, rg=RG) + "/workspaces?")
    assert {w["name"] for w in json.loads(exchange.body)["value"]} == {"mlw-credit-prod", "mlw-fraud-prod"}


def test_the_list_follows_next_links() -> None:
    base = ML.format(sub=SUB, rg=RG) + f"/workspaces?api-version={WORKSPACES_API}"
    page2 = base + "&$skipToken=p2"

    def ws(name: str) -> dict[str, object]:
        arm_id = Workspace(SUB, RG, name).arm_id
        return {"id": arm_id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces", "properties": {}}

    replay = ReplayTransport([get(base, {"value": [ws("b")], "nextLink": page2}), get(page2, {"value": [ws("a")]})])
    tap = EvidenceTap(replay, FixedClock(TENANT.now))
    scope = list_resource_group_scope(AzureClients(StaticCredential(), tap), subscriptions=[SUB], resource_group=RG)
    assert [w.name for w in scope.workspaces] == ["a", "b"]
    assert replay.unused() == [] and len(tap.exchanges(DISCOVERY_CHANNEL)) == 2


def test_an_empty_resource_group_is_an_error_not_an_empty_audit() -> None:
    base = ML.format(sub=SUB, rg=RG) + f"/workspaces?api-version={WORKSPACES_API}"
    tap = EvidenceTap(ReplayTransport([get(base, {"value": []})]), FixedClock(TENANT.now))
    with pytest.raises(DiscoveryError, match=f"there is no Azure ML workspace in resource group {RG}") as caught:
        list_resource_group_scope(AzureClients(StaticCredential(), tap), subscriptions=[SUB], resource_group=RG)
    assert caught.value.exit_code is ExitCode.CANNOT_RUN


def test_a_denied_list_is_an_error_that_names_the_permission() -> None:
    denied = Fault.forbidden(r"/resourceGroups/rg-ml-prod/providers/Microsoft\.MachineLearningServices/workspaces\?")
    with pytest.raises(DiscoveryError) as caught:
        listing((denied,))
    text = caught.value.diagnostics()
    assert f"could not list the Azure ML workspaces in resource group {RG} in subscription {SUB} (403" in text
    assert "Microsoft.MachineLearningServices/workspaces/read" in text and "--workspace" in text
    assert len(text.splitlines()) == 1


def test_a_resource_group_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(DiscoveryError, match=r"rg-nope .*\(404, ResourceGroupNotFound\)"):
        listing(rg="rg-nope")


def test_one_failing_subscription_fails_the_whole_scope() -> None:
    # Listing the workspaces of one subscription but not another would silently narrow the audit.
    with pytest.raises(DiscoveryError, match=r"subscription 00000000-0000-0000-0000-000000000000 .*404"):
        listing(subscriptions=(SUB, "00000000-0000-0000-0000-000000000000"))


def test_config_without_workspace_names_lists_them() -> None:
    scope = parse_config({"scope": {"subscription": SUB, "resource_group": RG}}).scope
    assert scope.lists_workspaces
    named = parse_config({"scope": {"subscription": SUB, "resource_group": RG, "workspaces": ["w"]}}).scope
    assert not named.lists_workspaces
    assert not parse_config({"scope": {"subscription": SUB}}).scope.lists_workspaces  # no resource group: an error


# -------------------------------------------------------------------------------- through the CLI
@pytest.fixture(scope="module")
def listed_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Contoso sample's config without workspace names, and a recording made with it.

    Recorded by samples/generate.py against the simulated tenant, exactly as the bundled cassette:
    the list is recorded too (discovery.json), so the replay answers it.
    """
    root = tmp_path_factory.mktemp("listed")
    text = (SAMPLE / "evidence.toml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("workspaces")]
    assert len(lines) == len(text.splitlines()) - 1
    (root / "evidence.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location("samples_generate_listed", Path(bundled("samples")) / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.generate(root / "cassette", config_path=root / "evidence.toml")
    assert (root / "cassette" / "discovery.json").is_file()
    return root / "evidence.toml", root / "cassette"


def read(zip_path: Path, rel: str) -> bytes:
    with OpenedPackage.open(zip_path) as pkg:
        return pkg.read(rel, max_bytes=1 << 30)


def test_package_over_a_listed_resource_group_keeps_the_list_as_evidence(
    listed_sample: tuple[Path, Path], tmp_path: Path
) -> None:
    config, cassette = listed_sample
    common = ["package", "--replay", str(cassette), "--unsigned", "-q"]
    assert main([*common, "--config", str(config), "--out", str(tmp_path / "listed")]) == 0
    # The same recording, with the workspaces named: the same evidence, minus the list.
    assert main([*common, "--config", str(SAMPLE / "evidence.toml"), "--out", str(tmp_path / "named")]) == 0
    (listed,) = (tmp_path / "listed").glob("*.zip")
    (named,) = (tmp_path / "named").glob("*.zip")
    request = json.loads(read(listed, "data/inputs/request.json"))
    assert [w["name"] for w in request["scope"]["workspaces"]] == ["mlw-credit-prod", "mlw-fraud-prod"]
    assert request["scope"] == json.loads(read(named, "data/inputs/request.json"))["scope"]
    collection = json.loads(read(listed, "data/collection.json"))
    (asked,) = [r for r in collection["requests"] if r["collector"] == DISCOVERY_CHANNEL]
    assert asked["file"] == "data/raw/discovery/00001.json" and asked["status"] == 200
    assert f"/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces?" in asked["url"]
    answer = json.loads(read(listed, asked["file"]))
    assert {w["name"] for w in answer["value"]} == {"mlw-credit-prod", "mlw-fraud-prod"}
    for kind in ("model_versions", "deployments", "role_assignments", "activity_events", "metrics"):
        rel = f"data/records/{kind}.jsonl"
        assert read(listed, rel) == read(named, rel), kind
    assert json.loads(read(listed, "data/findings.json")) == json.loads(read(named, "data/findings.json"))


def test_collect_over_a_listed_resource_group(listed_sample: tuple[Path, Path], tmp_path: Path) -> None:
    config, cassette = listed_sample
    assert main(["collect", "--config", str(config), "--replay", str(cassette), "--out", str(tmp_path), "-q"]) == 0
    (folder,) = tmp_path.iterdir()
    assert (folder / "data" / "raw" / "discovery" / "00001.json").is_file()
    collection = json.loads((folder / "data" / "collection.json").read_text(encoding="utf-8"))
    assert [r["collector"] for r in collection["requests"]].count(DISCOVERY_CHANNEL) == 1


def test_a_recording_that_cannot_answer_the_list_stops_the_run(
    listed_sample: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = listed_sample
    # The bundled recording was made with the workspaces named: it holds no list to replay.
    code = main(
        ["package", "--config", str(config), "--replay", str(SAMPLE / "cassette"), "--unsigned", "--out", str(tmp_path)]
    )
    assert code == ExitCode.CANNOT_RUN
    assert not list(tmp_path.glob("*.zip"))
    err = capsys.readouterr().err
    assert "workspaces?api-version" in err and len(err.strip().splitlines()) == 1


def test_denied_list_through_arm_error_shape() -> None:
    base = ML.format(sub=SUB, rg=RG) + f"/workspaces?api-version={WORKSPACES_API}"
    answer = arm_error("AuthorizationFailed", "no read on workspaces")
    tap = EvidenceTap(ReplayTransport([get(base, answer, status=403)]), FixedClock(TENANT.now))
    with pytest.raises(DiscoveryError, match=r"\(403, AuthorizationFailed\): no read on workspaces"):
        list_resource_group_scope(AzureClients(StaticCredential(), tap), subscriptions=[SUB], resource_group=RG)
    # The refused answer was seen on the discovery channel (a --record run keeps it in the recording).
    assert [e.status for e in tap.exchanges(DISCOVERY_CHANNEL)] == [403]
