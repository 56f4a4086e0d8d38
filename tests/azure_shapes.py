"""Realistic ARM bodies for hand-written replay entries (shapes from the Azure REST API specs).

azure-ai-ml's converters fail on thin fixtures, so these carry what Azure really returns: full ARM
IDs, systemData, and the properties the 2023-era api-versions send.
"""

from __future__ import annotations

import zlib
from typing import Any

from evidence.azure.cassette import Entry

ARM = "https://management.azure.com"
SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
RG = "rg-ml-prod"
WS = "mlw-credit-prod"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
MODELS_API = "2023-08-01-preview"
ENDPOINTS_API = "2022-02-01-preview"
DEPLOYMENTS_API = "2023-04-01-preview"


def system_data(by: str = "alice@contoso.com", at: str = "2026-07-02T09:15:00.1234567Z") -> dict[str, Any]:
    return {
        "createdAt": at,
        "createdBy": by,
        "createdByType": "User",
        "lastModifiedAt": at,
        "lastModifiedBy": by,
        "lastModifiedByType": "User",
    }


def model_container(name: str, latest: str) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/models/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/models",
        "properties": {"description": None, "tags": {}, "properties": {}, "isArchived": False, "latestVersion": latest},
        "systemData": system_data(),
    }


def model_version(
    name: str, version: str, *, tags: dict[str, str], stage: str, archived: bool = False
) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/models/{name}/versions/{version}",
        "name": version,
        "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
        "properties": {
            "description": f"{name} {version}",
            "tags": tags,
            "properties": {"auc": "0.91"},
            "isArchived": archived,
            "isAnonymous": False,
            "flavors": {},
            "jobName": f"train-{name}-{version}",
            "modelType": "mlflow_model",
            "modelUri": f"azureml://subscriptions/{SUB}/resourcegroups/{RG}/workspaces/{WS}/datastores/workspaceartifactstore/paths/{name}/{version}",
            "provisioningState": "Succeeded",
            "stage": stage,
        },
        "systemData": system_data(at=f"2026-07-0{version}T10:00:00Z"),
    }


def endpoint(name: str, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/onlineEndpoints/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "location": "westeurope",
        "tags": {},
        "kind": "Managed",
        "identity": {
            "type": "SystemAssigned",
            "principalId": "9a1b2c3d-0000-4000-8000-000000000001",
            "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        },
        "properties": {
            "authMode": "AADToken",
            "description": "credit scoring",
            "properties": {},
            "provisioningState": "Succeeded",
            "scoringUri": f"https://{name}.westeurope.inference.ml.azure.com/score",
            "swaggerUri": f"https://{name}.westeurope.inference.ml.azure.com/swagger.json",
            "traffic": traffic,
            "mirrorTraffic": mirror or {},
            "publicNetworkAccess": "Enabled",
        },
        "systemData": system_data(by="sp-mlops-release"),
    }


def deployment(endpoint_name: str, name: str, model: str) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/onlineEndpoints/{endpoint_name}/deployments/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": "westeurope",
        "tags": {},
        "kind": "Managed",
        "sku": {"name": "Default", "tier": "Standard", "capacity": 2},
        "properties": {
            "endpointComputeType": "Managed",
            "model": model,
            "instanceType": "Standard_DS3_v2",
            "provisioningState": "Succeeded",
            "appInsightsEnabled": False,
            "egressPublicNetworkAccess": "Enabled",
            "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1},
            "livenessProbe": {
                "initialDelay": "PT10M",
                "period": "PT10S",
                "timeout": "PT2S",
                "successThreshold": 1,
                "failureThreshold": 30,
            },
            "scaleSettings": {"scaleType": "Default"},
            "environmentVariables": {},
            "properties": {},
        },
        "systemData": system_data(by="sp-mlops-release"),
    }


def get(url: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Entry:
    return Entry(
        request_uri=url,
        request_method="GET",
        status_code=status,
        response_body=body,
        response_headers={
            "Content-Type": "application/json; charset=utf-8",
            "x-ms-request-id": f"req-{zlib.crc32(url.encode()):08x}",
            **(headers or {}),
        },
    )


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# -- Azure ML registries ---------------------------------------------------------------------------
# A registry lives in its own subscription and resource group, which only its discovery answer names;
# after discovery azure-ai-ml talks to the registry's regional host, not to Resource Manager.
REGISTRY = "contoso-reg"
REG_SUB = "5a1c3e7d-2b4f-4c6a-9e8d-7f0a1b2c3d4e"
REG_RG = "rg-ml-registry"
REG_HOST = "https://cert-westeurope.experiments.azureml.net/"
_REG_RG_ID = f"/subscriptions/{REG_SUB}/resourceGroups/{REG_RG}"
REG_ID = f"{_REG_RG_ID}/providers/Microsoft.MachineLearningServices/registries/{REGISTRY}"
REGISTRY_API = "2021-10-01-dataplanepreview"


def registry_discovery_url(name: str = REGISTRY, host: str = "https://eastus.api.azureml.ms/") -> str:
    return f"{host}registrymanagement/v1.0/registries/{name}/discovery?api-version=v1.0"


def registry_discovery(name: str = REGISTRY) -> dict[str, Any]:
    """The discovery answer (RegistryDiscoveryDto in azure-ai-ml's registry_discovery client)."""
    return {
        "registryName": name,
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "primaryRegion": "westeurope",
        "regions": ["westeurope", "northeurope"],
        "subscriptionId": REG_SUB,
        "resourceGroup": REG_RG,
        "workspaceName": None,
        "primaryRegionResourceProviderUri": REG_HOST,
        "registryFqdns": {
            "westeurope": {"primary": f"https://{name}.westeurope.api.azureml.ms"},
            "northeurope": {"primary": f"https://{name}.northeurope.api.azureml.ms"},
        },
    }


def registry_url(path: str = "", **query: str) -> str:
    params = "&".join([f"api-version={REGISTRY_API}", *(f"{k}={v}" for k, v in query.items())])
    return f"{REG_HOST}mferp/managementfrontend{REG_ID}/models{path}?{params}"


def registry_model_container(name: str, latest: str) -> dict[str, Any]:
    return {
        "id": f"{REG_ID}/models/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/registries/models",
        "properties": {"description": None, "tags": {}, "properties": {}, "isArchived": False, "latestVersion": latest},
        "systemData": system_data(),
    }


def registry_model_version(
    name: str, version: str, *, tags: dict[str, str], stage: str | None = None, archived: bool = False
) -> dict[str, Any]:
    return {
        "id": f"{REG_ID}/models/{name}/versions/{version}",
        "name": version,
        "type": "Microsoft.MachineLearningServices/registries/models/versions",
        "properties": {
            "description": f"{name} {version}",
            "tags": tags,
            "properties": {"auc": "0.93"},
            "isArchived": archived,
            "isAnonymous": False,
            "flavors": {},
            "jobName": None,
            "modelType": "mlflow_model",
            "modelUri": f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}",
            "provisioningState": "Succeeded",
            "stage": stage,
        },
        "systemData": system_data(by="sp-mlops-release", at=f"2026-08-0{version}T12:00:00Z"),
    }
