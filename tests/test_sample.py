"""The bundled Contoso sample: regenerable byte for byte, and carrying its planted problems."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from evidence.azure.simulator import load_tenant
from evidence.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "contoso"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("samples_generate", ROOT / "samples" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_cassette_gives_identical_bytes(tmp_path: Path) -> None:
    written = _generator().generate(tmp_path)
    committed = sorted(p.name for p in (SAMPLE / "cassette").glob("*.json"))
    assert sorted(p.name for p in written) == committed
    stale = [name for name in committed if (tmp_path / name).read_bytes() != (SAMPLE / "cassette" / name).read_bytes()]
    assert stale == [], f"samples/contoso/cassette is stale ({stale}): run `python samples/generate.py`"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    gen = _generator()
    first = {p.name: p.read_bytes() for p in gen.generate(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in gen.generate(tmp_path / "b")}
    assert first == second


def test_cassette_has_recorded_at_and_a_multi_page_list() -> None:
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SAMPLE / "cassette").glob("*.json"))]
    assert {d["Variables"]["recorded_at"] for d in docs} == {"2026-09-28T06:00:00Z"}
    paged = [
        e["RequestUri"]
        for d in docs
        for e in d["Entries"]
        if isinstance(e["ResponseBody"], dict) and e["ResponseBody"].get("nextLink")
    ]
    assert any("/models" in u for u in paged)
    assert any("eventtypes/management/values" in u for u in paged)
    # No bearer token or request secrets in the committed recording.
    text = "".join(p.read_text(encoding="utf-8") for p in (SAMPLE / "cassette").glob("*.json"))
    assert "Bearer" not in text and "offline-token" not in text


def test_config_matches_the_tenant() -> None:
    tenant = load_tenant(SAMPLE / "tenant.toml")
    config = load_config(SAMPLE / "evidence.toml")
    scope = config.scope.to_scope()
    assert scope.organisation == "Contoso Ltd"
    assert scope.subscriptions == (tenant.subscription_id,)
    assert sorted(w.name for w in scope.workspaces) == sorted(w.name for w in tenant.workspaces)
    assert {w.resource_group for w in scope.workspaces} == {tenant.resource_group}


def test_planted_problems_are_in_the_tenant() -> None:
    t = load_tenant(SAMPLE / "tenant.toml")
    assert [p.id for p in t.planted_problems] == ["a", "b", "c", "d", "e"]
    # (a) the deployed fraud-detector:3 has no approval tags
    (fraud,) = [e for e in t.endpoints if e.name == "fraud-endpoint"]
    assert [d.model for d in fraud.deployments] == ["fraud-detector:3"]
    (model,) = [m for m in t.models if m.name == "fraud-detector"]
    v3 = next(v for v in model.versions if v.version == "3")
    assert not {"approved_by", "approval_date", "approval_ticket"} & set(v3.tags)
    # every other deployed version is approved before its deployment write
    for e in t.endpoints:
        for d in e.deployments:
            name, _, version = d.model.partition(":")
            (m,) = [m for m in t.models if m.name == name and m.workspace == e.workspace]
            mv = next(v for v in m.versions if v.version == version)
            if d.model != "fraud-detector:3":
                assert mv.tags["approval_date"] <= (d.modified_at or d.created_at).date().isoformat()
    # (b) bob holds Owner directly at a workspace
    owners = [r for r in t.role_assignments if r.role == "Owner" and r.scope.startswith("workspace/")]
    assert [(r.principal, t.principal(r.principal).type) for r in owners] == [("bob@contoso.com", "User")]
    # (c) exactly one deployment written by a person
    people = [
        d.name for e in t.endpoints for d in e.deployments if t.principal(d.modified_by or d.created_by).type == "User"
    ]
    assert people == ["shadow"]
    # (d) exactly one assignment without an Activity Log event
    assert [r.principal for r in t.role_assignments if not r.activity_logged] == ["dave@contoso.com"]
    # (e) exactly one assignment to a principal that no longer resolves
    assert [r.principal for r in t.role_assignments if t.principal(r.principal).type == "Unknown"] == [
        "unknown-68c66160"
    ]


def test_no_secret_returning_operation_is_called() -> None:
    """The recording is every request the collectors make: none of them returns keys or tokens."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SAMPLE / "cassette").glob("*.json"))]
    requests = [(e["RequestMethod"], e["RequestUri"].split("?")[0].lower()) for d in docs for e in d["Entries"]]
    assert {method for method, _ in requests} == {"GET"}  # reads only
    for _, path in requests:
        assert not path.endswith(("/listkeys", "/token", "/listsecrets", "/regeneratekeys", "/getkeys")), path
