"""The shipped custom role: valid, read-only, and the same list the README documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "samples" / "roles" / "evidence-collector.json"


def role() -> dict:
    return json.loads(ROLE.read_text(encoding="utf-8"))


def test_role_is_valid_json_in_the_az_cli_format() -> None:
    data = role()
    assert set(data) == {
        "Name", "IsCustom", "Description", "Actions", "NotActions", "DataActions", "NotDataActions", "AssignableScopes"
    }  # fmt: skip
    assert data["IsCustom"] is True
    assert all(isinstance(a, str) for a in data["Actions"]) and len(set(data["Actions"])) == len(data["Actions"])
    assert all(s.startswith("/subscriptions/") for s in data["AssignableScopes"])


def test_role_lists_only_read_actions() -> None:
    data = role()
    assert data["Actions"], "a role with no actions reads nothing"
    for action in data["Actions"]:
        # No wildcard (a "*" would grant actions added to Azure later) and nothing but reads.
        assert "*" not in action, action
        assert action.lower().endswith("/read"), action
        assert re.fullmatch(r"Microsoft\.[A-Za-z]+(/[A-Za-z]+)+", action), action
    # No data plane access at all (data actions read model files, logs and secrets).
    assert data["DataActions"] == [] and data["NotDataActions"] == [] and data["NotActions"] == []


def test_secret_returning_operations_are_not_granted() -> None:
    lowered = [a.lower() for a in role()["Actions"]]
    for secret in ("listkeys", "sharedkeys", "token", "listsecrets", "regeneratekeys"):
        assert not any(secret in a for a in lowered), secret


def test_readme_documents_exactly_the_role_actions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Permissions for live use", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(Microsoft\.[^`]+)` \|", section, flags=re.MULTILINE)
    assert documented == role()["Actions"]
