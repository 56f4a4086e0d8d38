"""Planted secrets never reach the collected evidence, and every removal is recorded.

Azure puts secrets in places a collector cannot avoid reading: a SAS URL in a model's tags or
``modelUri``, a key or connection string in free-form properties, a password in an Activity Log
``requestbody``. Here they are planted in responses replayed through the real SDK pipelines; the
collection written to disk (raw files, records, ``collection.json``) must hold none of them, and
``collection.json`` must name each redaction by file, JSON pointer and reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from azure_shapes import ARM, MODELS_API, RG, SUB, WS, WS_ID, get, model_container, model_version

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.replay import ReplayTransport
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.models import ModelVersionsCollector
from evidence.collect.output import CollectRequest, collect_to_folder
from evidence.domain import Scope, Window, Workspace

CLOCK = FixedClock(datetime(2026, 9, 28, 6, 0, tzinfo=UTC))
WINDOW = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 28, tzinfo=UTC))
SCOPE = Scope(workspaces=(Workspace(SUB, RG, WS),), organisation="Contoso Ltd")

SAS_SIG = "Zm9vYmFyU0VDUkVUc2ln%2BAbC%3D"
SAS_URL = (
    "https://stcontoso.blob.core.windows.net/models/credit/model.pkl?sv=2023-11-03&st=2026-07-01"
    f"&se=2026-07-02&sr=b&sp=r&sig={SAS_SIG}"
)
ACCOUNT_KEY = "c2VjcmV0LWFjY291bnQta2V5LVJFQUw="
CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName=stcontoso;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
)
PRIMARY_KEY = "pk-REAL-4f1c9e"
SECRETS = (SAS_SIG, "Zm9vYmFyU0VDUkVU", ACCOUNT_KEY, PRIMARY_KEY)


def planted_version() -> dict:
    version = model_version("credit", "1", tags={"training_data": SAS_URL}, stage="Production")
    version["properties"]["properties"] = {"auc": "0.91", "primaryKey": PRIMARY_KEY}
    version["properties"]["description"] = f"trained from {CONNECTION_STRING}"
    return version


def test_planted_sas_url_key_and_connection_string_never_reach_the_collection(tmp_path: Path) -> None:
    models = f"{ARM}{WS_ID}/models?api-version={MODELS_API}&listViewType=All"
    versions = f"{ARM}{WS_ID}/models/credit/versions?api-version={MODELS_API}&listViewType=All"
    replay = ReplayTransport([
        get(models, {"value": [model_container("credit", "1")]}),
        get(versions, {"value": [planted_version()]}),
    ])  # fmt: skip
    tap = EvidenceTap(replay, CLOCK)
    result = collect_to_folder(
        CollectRequest(SCOPE, WINDOW, tmp_path, mode="replay"),
        clients=AzureClients(StaticCredential(), tap),
        tap=tap,
        clock=CLOCK,
        collectors=[ModelVersionsCollector()],
    )
    assert result.gaps == () and replay.unused() == []

    files = {p.relative_to(result.folder).as_posix(): p.read_bytes() for p in result.folder.rglob("*") if p.is_file()}
    for path, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, path)

    # The evidence around the secrets is still there: the record keeps the tag, minus its signature.
    (row,) = [json.loads(line) for line in files["data/records/model_versions.jsonl"].decode().splitlines()]
    assert row["tags"]["training_data"].startswith("https://stcontoso.blob.core.windows.net/models/credit/model.pkl?")
    assert row["properties"]["auc"] == "0.91"

    collection = json.loads(files["data/collection.json"])
    (stored,) = [r["file"] for r in collection["requests"] if "/versions" in r["url"]]
    found = {(r["file"], r["pointer"], r["reason"]) for r in collection["redactions"]}
    assert (stored, "/value/0/properties/tags/training_data", "sas-signature") in found
    assert (stored, "/value/0/properties/properties/primaryKey", "secret-key-name") in found
    assert (stored, "/value/0/properties/description", "connection-string") in found
