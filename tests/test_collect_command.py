"""``evidence collect`` and ``evidence cassette pseudonymize``, end to end over the Contoso recording."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.pseudonymize import SALT_ENV, Pseudonymizer
from evidence.azure.recording import RecordingTransport
from evidence.azure.replay import ReplayTransport, load_cassette
from evidence.azure.session import AzureSession, replay_session
from evidence.azure.tap import EvidenceTap
from evidence.cli import main
from evidence.collect.output import CollectRequest, collect_to_folder
from evidence.collect.runner import default_collectors
from evidence.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "contoso"
CONFIG = SAMPLE / "evidence.toml"
CASSETTE = SAMPLE / "cassette"
NAME = "evidence-contoso-ltd-collection-20260701-20260928"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@(?!pseudonym\.invalid)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def collect(out: Path, *extra: str, replay: Path = CASSETTE) -> int:
    return main(["collect", "--config", str(CONFIG), "--replay", str(replay), "--out", str(out), "-q", *extra])


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def records(folder: Path, kind: str) -> list[dict]:
    lines = (folder / "data" / "records" / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_collect_writes_raw_records_and_collection_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert collect(tmp_path) == 0
    out = capsys.readouterr().out
    folder = tmp_path / NAME
    assert f"folder:  {folder}" in out and "gaps: 0" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]  # no staging folder left behind
    files = tree(folder)
    assert {path.split("/")[1] for path in files} == {"raw", "records", "collection.json"}
    kinds = {"model_versions", "endpoints", "deployments", "role_assignments", "activity_events", "metrics"}
    assert {f"data/records/{k}.jsonl" for k in kinds} <= set(files)
    collection = json.loads(files["data/collection.json"])
    assert collection["mode"] == "replay" and collection["gaps"] == []
    assert collection["window"] == {"start": "2026-07-01T00:00:00Z", "end": "2026-09-28T00:00:00Z"}
    # Every raw file is named by a request in collection.json, and every stored request exists.
    named = {r["file"] for r in collection["requests"] if r["file"]}
    assert named == {p for p in files if p.startswith("data/raw/")}
    assert len(records(folder, "model_versions")) > 0


def test_collect_is_deterministic_and_replaces_an_earlier_run(tmp_path: Path) -> None:
    assert collect(tmp_path) == 0
    first = tree(tmp_path / NAME)
    (tmp_path / NAME / "data" / "stale.txt").write_text("from an older run")
    assert collect(tmp_path) == 0
    assert tree(tmp_path / NAME) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def _deny_one_model(cassette: Path) -> str:
    """Copy of the sample where listing one model's versions answers 403."""
    path = cassette / "model_versions.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    entry = next(e for e in doc["Entries"] if "/models/churn/versions" in e["RequestUri"])
    entry["StatusCode"] = 403
    entry["ResponseBody"] = {"error": {"code": "AuthorizationFailed", "message": "no read on models/versions"}}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return entry["RequestUri"]


def test_strict_fails_on_a_gap_after_writing_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cassette = tmp_path / "cassette"
    shutil.copytree(CASSETTE, cassette)
    _deny_one_model(cassette)
    assert collect(tmp_path / "lenient", replay=cassette) == 0
    assert collect(tmp_path / "strict", "--strict", replay=cassette) == 1
    assert "evidence: gate:" in capsys.readouterr().err
    collection = json.loads((tmp_path / "strict" / NAME / "data" / "collection.json").read_text(encoding="utf-8"))
    (gap,) = collection["gaps"]
    assert (gap["collector"], gap["status"], gap["error_code"]) == ("model_versions", 403, "AuthorizationFailed")
    assert gap["scope"].endswith("/workspaces/mlw-credit-prod/models/churn")


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert collect(tmp_path, "--pseudonymize") == 2
    assert "--pseudonymize only applies to a recording" in capsys.readouterr().err
    assert collect(tmp_path, "--record", str(tmp_path / "rec")) == 2
    assert main(["collect", "--replay", str(CASSETTE), "--out", str(tmp_path), "-q"]) == 2  # no scope
    assert not (tmp_path / NAME).exists()


def test_pseudonymized_cassette_still_replays_with_consistent_pseudonyms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    salt = "shared-only-with-the-team-4f1c"
    monkeypatch.setenv(SALT_ENV, salt)
    shared = tmp_path / "shared"
    assert main(["cassette", "pseudonymize", str(CASSETTE), str(shared), "-q"]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == sorted(p.name for p in CASSETTE.glob("*.json"))
    text = "".join(p.read_text(encoding="utf-8") for p in shared.glob("*.json"))
    original = "".join(p.read_text(encoding="utf-8") for p in CASSETTE.glob("*.json"))
    assert EMAIL.search(original) and not EMAIL.search(text)
    assert salt not in text

    assert collect(tmp_path / "plain") == 0
    assert collect(tmp_path / "pseudo", replay=shared) == 0
    plain, pseudo = tmp_path / "plain" / NAME, tmp_path / "pseudo" / NAME
    assert json.loads((pseudo / "data" / "collection.json").read_text())["gaps"] == []
    for kind in ("model_versions", "deployments", "role_assignments", "activity_events", "metrics"):
        assert len(records(pseudo, kind)) == len(records(plain, kind)), kind
    # Same input, same pseudonym, across collectors: a creator's e-mail maps the same way everywhere.
    pseudonymizer = Pseudonymizer(salt)
    assert any("@" in (r["created_by"] or "") for r in records(plain, "model_versions"))
    by_asset = {r["asset_id"]: r for r in records(pseudo, "model_versions")}
    for row in records(plain, "model_versions"):
        creator = row["created_by"] or ""
        if "@" in creator:
            expected = pseudonymizer.email(creator)
        elif GUID.fullmatch(creator):  # a service principal's object ID (createdBy is an identity field)
            expected = pseudonymizer.guid(creator)
        else:
            expected = creator
        assert by_asset[row["asset_id"]]["created_by"] == expected
    callers = {e["caller"] for e in records(pseudo, "activity_events")}
    assert all(not EMAIL.search(c or "") for c in callers)


def test_refuses_to_write_the_copy_inside_the_original(tmp_path: Path) -> None:
    shutil.copytree(CASSETTE, tmp_path / "c")
    assert main(["cassette", "pseudonymize", str(tmp_path / "c"), str(tmp_path / "c" / "out"), "-q"]) == 2
    assert main(["cassette", "pseudonymize", str(tmp_path / "missing"), str(tmp_path / "o"), "-q"]) == 2


def test_record_with_pseudonymize_saves_a_pseudonymized_replayable_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The --record --pseudonymize path (AzureSession.finish), over the sample instead of a tenant."""
    source = replay_session(CASSETTE)
    config = load_config(CONFIG)
    scope = config.scope.to_scope()
    window = config.window.resolve(source.clock.now())
    recorder = RecordingTransport(ReplayTransport(load_cassette(CASSETTE)))
    tap = EvidenceTap(recorder, source.clock)
    salt = b"random-for-this-run"
    session = AzureSession(
        "record", AzureClients(StaticCredential(), tap), tap, source.clock, tmp_path / "rec", pseudonymize_salt=salt
    )
    live = collect_to_folder(
        CollectRequest(scope, window, tmp_path / "live", mode="record"),
        clients=session.clients,
        tap=tap,
        clock=session.clock,
        collectors=default_collectors(),
    )
    session.finish()
    files = sorted((tmp_path / "rec").glob("*.json"))  # one file per collector
    assert [p.stem for p in files] == sorted(c.name for c in default_collectors())
    saved = "".join(p.read_text(encoding="utf-8") for p in files)
    assert not EMAIL.search(saved) and "random-for-this-run" not in saved
    assert collect(tmp_path / "replayed", replay=tmp_path / "rec") == 0
    replayed = tmp_path / "replayed" / NAME
    assert {k: len(records(replayed, k)) for k in live.records} == live.records
    # The package made while recording keeps the real names (it stays inside the company).
    assert EMAIL.search((live.folder / "data" / "records" / "model_versions.jsonl").read_text())


def test_package_shares_the_source_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["package", "--config", str(CONFIG), "--replay", str(CASSETTE), "--out", str(tmp_path), "--unsigned", "-q"]
    assert main([*args, "--pseudonymize"]) == 2
    assert "--pseudonymize only applies to a recording" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_registry_and_log_analytics_flags_reach_the_collectors() -> None:
    from evidence.collect.activity import ActivityLogCollector
    from evidence.collect_command import source_collectors, source_config

    config = source_config(load_config(CONFIG), {"registry": ("contoso-reg",), "log_analytics_workspace": "law-1"})
    assert config.scope.to_scope().registries == ("contoso-reg",)
    (activity,) = [c for c in source_collectors(config) if isinstance(c, ActivityLogCollector)]
    assert activity.log_analytics_workspace == "law-1"
    # Without the flags, the file's values (none here) stay.
    plain = source_config(load_config(CONFIG), {})
    assert plain.scope.registries == () and plain.azure.log_analytics_workspace == ""


#: One non-default value for every key evidence.toml accepts (the [window] ways are exclusive).
EVERY_KEY = {
    "scope": {
        "organisation": "Fabrikam",
        "subscriptions": ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"],
        "resource_group": "rg-x",
        "workspaces": ["ws-a", "ws-b"],
        "registries": ["reg-a"],
    },
    "window": {"last": "30d"},
    "azure": {
        "cloud": "AzureUSGovernment",
        "resource_manager": "https://management.local.azurestack.external/",
        "credential": "cli",
        "log_analytics_workspace": "law-1",
    },
    "policy": {
        "approval_tags": ["signed_off_by"],
        "approved_stages": ["Production"],
        "owner_tag": "team",
        "allowed_deployers": ["11111111-1111-1111-1111-111111111111"],
        "privileged_roles": ["Owner"],
        "monitoring_window_days": 14,
        "waivers": "waivers.toml",
    },
    "output": {"directory": "elsewhere", "page_size": "Letter"},
    "signing": {
        "key": "k.pem",
        "certificate": "c.pem",
        "password_env": "PW",
        "key_vault_key_id": "https://kv.vault.azure.net/keys/k/1",
        "tsa_url": "https://tsa.example",
    },
}


def test_every_config_key_can_be_set_from_the_command_line() -> None:
    from evidence.collect_command import apply_settings
    from evidence.config import Config, parse_config

    items = [f"{s}.{k}={json.dumps(v)}" for s, keys in EVERY_KEY.items() for k, v in keys.items()]
    assert apply_settings(Config(), items) == replace(parse_config(EVERY_KEY), source="")
    # Plain strings need no quotes; "subscription" is the file's singular key, as in evidence.toml.
    plain = apply_settings(Config(), ["policy.owner_tag=team", "scope.subscription=0000", "window.quarter=2026Q3"])
    assert plain.policy.owner_tag == "team" and plain.scope.subscriptions == ("0000",)
    assert plain.window.quarter == "2026Q3"


def test_set_is_checked_like_the_file_and_dedicated_flags_win(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert collect(tmp_path, "--set", "policy.owner=team") == 2
    assert "--set: unknown key [policy] owner" in capsys.readouterr().err
    assert collect(tmp_path, "--set", "policy.monitoring_window_days=-1") == 2
    assert "[policy] monitoring_window_days: expected a whole number" in capsys.readouterr().err
    assert collect(tmp_path, "--set", "nodot") == 2
    assert "expected SECTION.KEY=VALUE" in capsys.readouterr().err
    # --set over the file, the dedicated flag over --set: the window stays the file's...
    assert collect(tmp_path / "a", "--set", "scope.organisation=Fabrikam") == 0
    assert (tmp_path / "a" / NAME.replace("contoso-ltd", "fabrikam")).is_dir()
    # ... and --organisation beats --set scope.organisation.
    assert collect(tmp_path / "b", "--set", "scope.organisation=Fabrikam", "--organisation", "Contoso Ltd") == 0
    assert (tmp_path / "b" / NAME).is_dir()
