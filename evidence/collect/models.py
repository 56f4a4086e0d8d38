"""Model versions: every version of every model in each workspace and registry, archived ones included.

azure-ai-ml's ``models.list()`` returns containers only (version=None, tags dropped), so versions
need one more call per container: the N+1 pattern the feasibility study measured. Archived
versions are hidden by default (``listViewType=ActiveOnly``); an audit must see them, so every
call asks for ``ListViewType.ALL``.

Registries (``[scope] registries``, ``--registry``) are read through ``MLClient(registry_name=)``,
which discovers the registry's host first (see ``AzureClients.registry``). Two azure-ai-ml 1.35.2
registry quirks are worked around here, both measured (feasibility §1a):

* the containers list puts ``str(ListViewType.ALL)`` on the wire (``listViewType=ListViewType.ALL``,
  a ``(str, Enum)`` formatting change in Python 3.11), so the plain value ``"All"`` is passed;
* the versions list (``models.list(name=)``) sends no ``listViewType`` at all, leaving archived
  versions to the service's default. The versions are therefore read with the registry client
  azure-ai-ml built (its own pipeline: credential, retries, transport, replay), through
  ``send_request`` with ``listViewType=All``: the request the SDK makes, plus the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, cast

from evidence.collect.interface import Collector, CollectSession, Part, RawResponse, Record, run_parts
from evidence.collect.normalise import dedupe, listed_items, timestamp, version_key, workspace_of
from evidence.collect.paging import raw_items, raw_pages
from evidence.domain import Workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

_VERSIONS_PATH = (
    r".*/providers/Microsoft\.MachineLearningServices/(?:workspaces|registries)/[^/]+/models/[^/]+/versions"
)
_REGISTRY_OF = re.compile(r"/providers/Microsoft\.MachineLearningServices/registries/([^/]+)/", re.IGNORECASE)
#: The registry data-plane api-version azure-ai-ml pins (``_registry_utils.REGISTRY_DATAPLANE_API_VERSION``).
REGISTRY_API_VERSION = "2021-10-01-dataplanepreview"
#: A nextLink chain longer than this is a service fault, not a registry: stop rather than loop.
MAX_PAGES = 10_000


def registry_scope(name: str) -> str:
    """How gaps name a registry: its asset URI prefix (the ARM ID is only known after discovery)."""
    return f"azureml://registries/{name}"


class ModelVersionsCollector(Collector):
    name: ClassVar[str] = "model_versions"
    record_kinds: ClassVar[tuple[str, ...]] = ("model_versions",)

    def collect(self, session: CollectSession) -> None:
        run_parts(self.parts(session), session)

    def parts(self, session: CollectSession) -> Sequence[Part]:
        # Workspaces and registries are independent: one part each, in the order listed here.
        parts = [
            Part(partial(self._collect_workspace, workspace=w), subscription=w.subscription_id, label=w.name)
            for w in session.scope.workspaces
        ]
        parts.extend(
            Part(partial(self._collect_registry, registry=r), label=registry_scope(r))
            for r in sorted(set(session.scope.registries))
        )
        return parts

    def _collect_workspace(self, session: CollectSession, workspace: Workspace) -> None:
        from azure.ai.ml.constants import ListViewType

        ml = session.clients.ml(workspace)
        names: list[str] = []
        with session.attempt(f"{workspace.arm_id}/models"):
            # The SDK's own requests, paged raw (no Model objects): see evidence.collect.paging.
            names = [str(c.get("name")) for c in raw_items(ml.models.list(list_view_type=ListViewType.ALL))]
        for name in sorted(set(names)):
            with session.attempt(f"{workspace.arm_id}/models/{name}"):
                # Paging is all that is needed: the tap keeps each raw page, normalise reads them.
                for _ in raw_pages(ml.models.list(name=name, list_view_type=ListViewType.ALL)):
                    pass

    def _collect_registry(self, session: CollectSession, registry: str) -> None:
        from azure.ai.ml.constants import ListViewType

        scope = registry_scope(registry)
        names: list[str] = []
        with session.attempt(f"{scope}/models"):
            ml = session.clients.registry(registry)  # discovery happens here: 404/403 are gaps
            # The plain value, not the enum: see the module docstring.
            every = cast(Any, ListViewType.ALL.value)
            names = [c.name for c in ml.models.list(list_view_type=every)]
        for name in sorted(set(names)):
            with session.attempt(f"{scope}/models/{name}"):
                for _ in _registry_version_pages(session.clients.registry(registry), name):
                    pass

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        rows = [_model_version_row(item) for _, item in listed_items(responses, _VERSIONS_PATH)]
        rows = dedupe(rows, "asset_id")
        rows.sort(
            key=lambda r: (
                r["registry"] is not None,  # workspace models first, then registry models
                str(r["workspace_id"] or r["registry"] or "").lower(),
                r["model_name"],
                version_key(r["version"]),
            )
        )
        return {"model_versions": rows}


def _registry_version_pages(ml: MLClient, model: str) -> Iterator[Any]:
    """Every page of one registry model's versions, archived included; raises like the SDK does."""
    from urllib.parse import quote

    from azure.core.rest import HttpRequest

    operations: Any = ml.models
    # The registry client and scope azure-ai-ml resolved through discovery (private attributes of
    # azure-ai-ml 1.35.2; if they move, the AttributeError becomes an UnexpectedResponseShape gap).
    client = operations._registry_service_client
    path = (
        f"/subscriptions/{quote(str(client._config.subscription_id), safe='')}"
        f"/resourceGroups/{quote(str(operations._resource_group_name), safe='')}"
        f"/providers/Microsoft.MachineLearningServices/registries/{quote(str(operations._registry_name), safe='')}"
        f"/models/{quote(model, safe='')}/versions"
    )
    request = HttpRequest(
        "GET",
        path,
        params={"api-version": REGISTRY_API_VERSION, "listViewType": "All"},
        headers={"Accept": "application/json"},
    )
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        response = client.send_request(request)
        response.raise_for_status()
        body = response.json()  # a malformed body raises ValueError: a MalformedResponse gap
        yield body
        link = body.get("nextLink") if isinstance(body, dict) else None
        if not link or link in seen:
            return
        seen.add(link)
        request = HttpRequest("GET", link, headers={"Accept": "application/json"})
    raise ValueError(f"more than {MAX_PAGES} pages of versions for registry model {model}")


def _model_version_row(item: dict[str, Any]) -> Record:
    asset_id = str(item.get("id", ""))
    props = item.get("properties") or {}
    system = item.get("systemData") or {}
    parts = asset_id.split("/")
    model_name = parts[-3] if len(parts) >= 3 else ""
    registry = _REGISTRY_OF.search(asset_id)
    return {
        # A registry model belongs to no workspace: None there, as before for workspace models.
        "workspace_id": None if registry else (workspace_of(asset_id) or ""),
        "registry": registry.group(1) if registry else None,
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
