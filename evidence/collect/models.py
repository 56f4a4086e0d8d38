"""Model versions: every version of every model in each workspace, archived ones included.

azure-ai-ml's ``models.list()`` returns containers only (version=None, tags dropped), so versions
need one more call per container: the N+1 pattern the feasibility study measured. Archived
versions are hidden by default (``listViewType=ActiveOnly``); an audit must see them, so every
call asks for ``ListViewType.ALL``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from evidence.collect.interface import Collector, CollectSession, RawResponse, Record
from evidence.collect.normalise import dedupe, listed_items, timestamp, version_key, workspace_of

_VERSIONS_PATH = r".*/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/models/[^/]+/versions"


class ModelVersionsCollector(Collector):
    name: ClassVar[str] = "model_versions"
    record_kinds: ClassVar[tuple[str, ...]] = ("model_versions",)

    def collect(self, session: CollectSession) -> None:
        from azure.ai.ml.constants import ListViewType

        for workspace in session.scope.workspaces:
            ml = session.clients.ml(workspace)
            names: list[str] = []
            with session.attempt(f"{workspace.arm_id}/models"):
                names = [c.name for c in ml.models.list(list_view_type=ListViewType.ALL)]
            for name in sorted(set(names)):
                with session.attempt(f"{workspace.arm_id}/models/{name}"):
                    # Iterating drives the SDK's paging; the tap keeps each raw page.
                    for _ in ml.models.list(name=name, list_view_type=ListViewType.ALL):
                        pass

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        rows = [_model_version_row(item) for _, item in listed_items(responses, _VERSIONS_PATH)]
        rows = dedupe(rows, "asset_id")
        rows.sort(key=lambda r: (r["workspace_id"].lower(), r["model_name"], version_key(r["version"])))
        return {"model_versions": rows}


def _model_version_row(item: dict[str, Any]) -> Record:
    asset_id = str(item.get("id", ""))
    props = item.get("properties") or {}
    system = item.get("systemData") or {}
    parts = asset_id.split("/")
    model_name = parts[-3] if len(parts) >= 3 else ""
    return {
        "workspace_id": workspace_of(asset_id) or "",
        "model_name": model_name,
        "version": str(item.get("name", "")),
        "asset_id": asset_id,
        "stage": props.get("stage"),
        "tags": props.get("tags") or {},
        "properties": props.get("properties") or {},
        "archived": bool(props.get("isArchived", False)),
        "model_type": props.get("modelType"),
        "description": props.get("description"),
        "job_name": props.get("jobName"),
        "provisioning_state": props.get("provisioningState"),
        "created_at": timestamp(system.get("createdAt")),
        "created_by": system.get("createdBy"),
        "created_by_type": system.get("createdByType"),
        "last_modified_at": timestamp(system.get("lastModifiedAt")),
        "last_modified_by": system.get("lastModifiedBy"),
    }
