"""``evidence package --discover / --management-group / --concurrency`` through ``main`` (the CLI itself).

The discovery run replays the bundled Contoso recording plus one recorded Resource Graph answer,
through the real ResourceGraphClient and collectors.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from evidence.cli import main
from evidence.resources import bundled

SAMPLE = bundled("samples") / "contoso"
CONFIG = SAMPLE / "evidence.toml"
SUB = "89baca1f-d4bd-5f8d-8a98-1ad174a67ed2"
ML = "Microsoft.MachineLearningServices"


def _row(name: str) -> dict[str, str]:
    return {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg-ml-prod/providers/{ML}/workspaces/{name}",
        "name": name,
        "resourceGroup": "rg-ml-prod",
        "subscriptionId": SUB,
        "location": "westeurope",
    }


def _cassette_with_discovery(tmp_path: Path) -> Path:
    cassette = tmp_path / "cassette"
    shutil.copytree(SAMPLE / "cassette", cassette)
    rows = [_row("mlw-credit-prod"), _row("mlw-fraud-prod")]
    entry = {
        "RequestUri": "https://management.azure.com/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01",
        "RequestMethod": "POST",
        "RequestHeaders": {},
        "RequestBody": None,  # any query body: the answer is the same
        "StatusCode": 200,
        "ResponseHeaders": {"Content-Type": "application/json"},
        "ResponseBody": {"totalRecords": 2, "count": 2, "resultTruncated": "false", "data": rows, "facets": []},
    }
    recorded_at = json.loads((cassette / "endpoints.json").read_text(encoding="utf-8"))["Variables"]
    (cassette / "discovery.json").write_text(json.dumps({"Entries": [entry], "Variables": recorded_at}), "utf-8")
    return cassette


def package(out: Path, *flags: str, cassette: Path = SAMPLE / "cassette") -> int:
    """``evidence package`` over a replayed cassette, unsigned, into ``out``, with ``flags``."""
    replay = ["--replay", str(cassette), "--unsigned"]
    return main(["package", "--config", str(CONFIG), *replay, *flags, "--out", str(out)])


def test_discover_finds_the_workspaces_and_keeps_the_answer_in_the_package(tmp_path: Path) -> None:
    cassette = _cassette_with_discovery(tmp_path)
    code = package(tmp_path / "out", "--discover", "--concurrency", "4", "--quiet", cassette=cassette)
    assert code == 0
    (zip_path,) = (tmp_path / "out").glob("*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        collection = json.loads(zf.read(f"{root}/data/collection.json"))
    assert f"{root}/data/raw/discovery/00001.json" in names
    assert [w.rsplit("/", 1)[1] for w in collection["scope"]["workspaces"]] == ["mlw-credit-prod", "mlw-fraud-prod"]
    assert collection["requests"][0]["collector"] == "discovery"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--management-group", "mg-contoso"], "--management-group is only searched with --discover"),
        (["--discover", "--workspace", "mlw-credit-prod"], "--discover finds the workspaces itself"),
        (["--concurrency", "0"], "--concurrency"),
    ],
)
def test_discovery_and_concurrency_usage_errors(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = package(tmp_path, *flags)
    assert code == 2
    assert message in capsys.readouterr().err


def test_plain_progress_lines_per_collector_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = package(tmp_path)
    assert code == 0
    err = capsys.readouterr().err
    assert f"evidence: activity_log [{SUB}]: done" in err
    assert "evidence: collecting model_versions" in err
    quiet_out = tmp_path / "quiet"
    assert package(quiet_out, "--quiet") == 0
    assert capsys.readouterr().err == ""
