"""Online endpoints and their deployments: traffic, mirror traffic, and the model each serves.

``online_endpoints.get()`` makes a hidden second request (the deployments list at another
api-version), so the collector lists endpoints and then deployments per endpoint explicitly:
every request it causes is one it meant to make.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from evidence.collect.interface import Collector, CollectSession, Part, RawResponse, Record, run_parts
from evidence.collect.normalise import dedupe, listed_items, timestamp, workspace_of
from evidence.collect.paging import raw_items, raw_pages
from evidence.domain import Workspace

_ENDPOINTS_PATH = r".*/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/onlineEndpoints"
_DEPLOYMENTS_PATH = r".*/workspaces/[^/]+/onlineEndpoints/[^/]+/deployments"

# The forms azure-ai-ml accepts for a deployment's model (its INVALID_MODEL_ID_ERROR lists them).
_ARM_MODEL = re.compile(
    r"^(?P<ws>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    r"(?:workspaces|registries)/[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_AZUREML_URI = re.compile(
    r"^azureml://(?:locations/[^/]+/)?(?:workspaces|registries)/[^/]+(?:/[^/]+)*?/models/"
    r"(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_AZUREML_SHORT = re.compile(r"^azureml:(?P<name>[^:/]+):(?P<version>[^:/]+)$", re.IGNORECASE)


def parse_model_reference(reference: str | None) -> tuple[str | None, str | None]:
    """(model name, version) from any model reference form; (None, None) if not explicit.

    A reference without a version (``azureml:name@latest``, a bare name, an inline path) returns
    version None: that is a finding for the "explicit model version" control, not an error here.
    """
    if not reference:
        return None, None
    for pattern in (_ARM_MODEL, _AZUREML_URI, _AZUREML_SHORT):
        match = pattern.match(reference.strip())
        if match:
            return match.group("name"), match.group("version")
    return None, None


class EndpointsCollector(Collector):
    name: ClassVar[str] = "endpoints"
    record_kinds: ClassVar[tuple[str, ...]] = ("endpoints", "deployments")

    def collect(self, session: CollectSession) -> None:
        run_parts(self.parts(session), session)

    def parts(self, session: CollectSession) -> Sequence[Part]:
        # Workspaces are independent: one part each, in scope order.
        return [
            Part(partial(self._collect_workspace, workspace=w), subscription=w.subscription_id, label=w.name)
            for w in session.scope.workspaces
        ]

    def _collect_workspace(self, session: CollectSession, workspace: Workspace) -> None:
        ml = session.clients.ml(workspace)
        names: list[str] = []
        with session.attempt(f"{workspace.arm_id}/onlineEndpoints"):
            # The SDK's own requests, paged raw (no entity objects): see evidence.collect.paging.
            names = [str(e.get("name")) for e in raw_items(ml.online_endpoints.list())]
        for name in sorted(set(names)):
            with session.attempt(f"{workspace.arm_id}/onlineEndpoints/{name}/deployments"):
                for _ in raw_pages(ml.online_deployments.list(name)):
                    pass

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        endpoints = dedupe([_endpoint_row(i) for _, i in listed_items(responses, _ENDPOINTS_PATH)], "endpoint_id")
        traffic = {e["endpoint_id"].lower(): e for e in endpoints}
        deployments = dedupe(
            [_deployment_row(i, traffic) for _, i in listed_items(responses, _DEPLOYMENTS_PATH)], "deployment_id"
        )
        endpoints.sort(key=lambda r: r["endpoint_id"].lower())
        deployments.sort(key=lambda r: (r["endpoint_id"].lower(), r["deployment_name"]))
        return {"endpoints": endpoints, "deployments": deployments}


def _endpoint_row(item: dict[str, Any]) -> Record:
    endpoint_id = str(item.get("id", ""))
    props = item.get("properties") or {}
    system = item.get("systemData") or {}
    return {
        "endpoint_id": endpoint_id,
        "workspace_id": workspace_of(endpoint_id) or "",
        "endpoint_name": item.get("name"),
        "auth_mode": props.get("authMode"),
        "provisioning_state": props.get("provisioningState"),
        "traffic": {str(k): int(v) for k, v in (props.get("traffic") or {}).items()},
        "mirror_traffic": {str(k): int(v) for k, v in (props.get("mirrorTraffic") or {}).items()},
        "created_at": timestamp(system.get("createdAt")),
        "created_by": system.get("createdBy"),
        "last_modified_at": timestamp(system.get("lastModifiedAt")),
        "last_modified_by": system.get("lastModifiedBy"),
    }


def _deployment_row(item: dict[str, Any], endpoints: Mapping[str, Record]) -> Record:
    deployment_id = str(item.get("id", ""))
    endpoint_id = deployment_id.rsplit("/deployments/", 1)[0]
    name = str(item.get("name", ""))
    props = item.get("properties") or {}
    system = item.get("systemData") or {}
    sku = item.get("sku") or {}
    model_ref = props.get("model")
    model_name, model_version = parse_model_reference(model_ref)
    endpoint = endpoints.get(endpoint_id.lower()) or {}
    # Deployments not named in the endpoint's traffic map get 0 %: Azure omits them, it does not
    # mean "unknown". When the endpoint itself is missing (a gap), the share really is unknown.
    traffic = (endpoint.get("traffic") or {}).get(name, 0) if endpoint else None
    mirror = (endpoint.get("mirror_traffic") or {}).get(name, 0) if endpoint else None
    return {
        "endpoint_id": endpoint_id,
        "endpoint_name": endpoint_id.rsplit("/", 1)[-1],
        "workspace_id": workspace_of(deployment_id) or "",
        "deployment_name": name,
        "deployment_id": deployment_id,
        "model_asset_id": model_ref,
        "model_name": model_name,
        "model_version": model_version,
        "traffic_percent": traffic,
        "mirror_traffic_percent": mirror,
        "provisioning_state": props.get("provisioningState"),
        "instance_type": props.get("instanceType"),
        "instance_count": sku.get("capacity"),
        "created_at": timestamp(system.get("createdAt")),
        "created_by": system.get("createdBy"),
        "last_modified_at": timestamp(system.get("lastModifiedAt")),
        "last_modified_by": system.get("lastModifiedBy"),
    }
