"""Response bodies in the shape real Resource Manager returns them.

Shapes follow the Azure REST API specs examples (Azure/azure-rest-api-specs:
machinelearningservices ``ModelVersion/get.json``, ``OnlineEndpoint/get.json``,
``OnlineDeployment/list.json``; authorization RoleAssignment/RoleDefinition/DenyAssignment/
RoleEligibilityScheduleInstance). azure-ai-ml's converters crash on thin bodies
(azure-sdk-feasibility.md section 7), so every body carries the full set of fields a real one has.
"""

from __future__ import annotations

from typing import Any

from evidence.azure.sim.tenant import (
    BUILTIN_ROLES,
    DenyAssignment,
    Deployment,
    EligibleAssignment,
    Endpoint,
    Model,
    ModelVersion,
    RoleAssignment,
    Tenant,
    derived_id,
)
from evidence.clock import isoformat

Json = dict[str, Any]

ML = "Microsoft.MachineLearningServices"

_ROLE_TEXT: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (description, actions, notActions) as the built-in definitions read.
    "Owner": (
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        ["*"],
        [],
    ),
    "Contributor": (
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
        "manage assignments in Azure Blueprints, or share image galleries.",
        ["*"],
        [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
        ],
    ),
    "Reader": ("View all resources, but does not allow you to make any changes.", ["*/read"], []),
    "User Access Administrator": (
        "Lets you manage user access to Azure resources.",
        ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        [],
    ),
    "AzureML Data Scientist": (
        "Can perform all actions within an Azure Machine Learning workspace, except for creating or deleting "
        "compute resources and modifying the workspace itself.",
        [
            "Microsoft.MachineLearningServices/workspaces/*/read",
            "Microsoft.MachineLearningServices/workspaces/*/action",
            "Microsoft.MachineLearningServices/workspaces/*/delete",
            "Microsoft.MachineLearningServices/workspaces/*/write",
        ],
        [
            "Microsoft.MachineLearningServices/workspaces/delete",
            "Microsoft.MachineLearningServices/workspaces/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/delete",
            "Microsoft.MachineLearningServices/workspaces/computes/listKeys/action",
            "Microsoft.MachineLearningServices/workspaces/listKeys/action",
            "Microsoft.MachineLearningServices/workspaces/hubs/write",
            "Microsoft.MachineLearningServices/workspaces/hubs/delete",
            "Microsoft.MachineLearningServices/workspaces/featurestores/write",
            "Microsoft.MachineLearningServices/workspaces/featurestores/delete",
        ],
    ),
}

_ROLE_DATES = {
    "Owner": ("2015-02-02T21:55:09.8806423Z", "2021-11-11T20:13:45.8978856Z"),
    "Contributor": ("2015-02-02T21:55:09.8806423Z", "2023-07-10T15:10:53.1097068Z"),
    "Reader": ("2015-02-02T21:55:09.8806423Z", "2021-11-11T20:13:47.8628684Z"),
    "User Access Administrator": ("2015-02-02T21:55:09.8806423Z", "2021-11-11T20:13:48.8778327Z"),
    "AzureML Data Scientist": ("2020-11-10T19:24:33.1584346Z", "2024-06-14T18:40:08.0563924Z"),
}

ROLE_BY_GUID = {guid: name for name, guid in BUILTIN_ROLES.items()}


def system_data(
    tenant: Tenant, created_at: Any, created_by: str, modified_at: Any = None, modified_by: str | None = None
) -> Json:
    creator = tenant.principal(created_by)
    modifier = tenant.principal(modified_by) if modified_by else creator
    return {
        "createdAt": isoformat(created_at),
        "createdBy": creator.system_data_name,
        "createdByType": creator.created_by_type,
        "lastModifiedAt": isoformat(modified_at or created_at),
        "lastModifiedBy": modifier.system_data_name,
        "lastModifiedByType": modifier.created_by_type,
    }


# -- Azure ML -------------------------------------------------------------------------------------
def workspace_body(tenant: Tenant, name: str) -> Json:
    ws = tenant.workspace(name)
    assert ws is not None
    wid = tenant.workspace_id(ws.name)
    rg = tenant.resource_group_id
    short = ws.name.replace("-", "")[:16]
    return {
        "id": wid,
        "name": ws.name,
        "type": f"{ML}/workspaces",
        "location": tenant.location,
        "tags": {},
        "kind": "Default",
        "sku": {"name": "Basic", "tier": "Basic"},
        "identity": {
            "type": "SystemAssigned",
            "principalId": derived_id("workspace-identity", wid),
            "tenantId": tenant.tenant_id,
        },
        "properties": {
            "friendlyName": ws.friendly_name or ws.name,
            "description": ws.description,
            "storageAccount": f"{rg}/providers/Microsoft.Storage/storageAccounts/st{short}",
            "keyVault": f"{rg}/providers/Microsoft.KeyVault/vaults/kv-{short}",
            "applicationInsights": f"{rg}/providers/Microsoft.Insights/components/appi-{ws.name}",
            "containerRegistry": f"{rg}/providers/Microsoft.ContainerRegistry/registries/cr{short}",
            "hbiWorkspace": False,
            "provisioningState": "Succeeded",
            "workspaceId": derived_id("workspace-guid", wid),
            "discoveryUrl": f"https://{tenant.location}.api.azureml.ms/discovery",
            "mlFlowTrackingUri": f"azureml://{tenant.location}.api.azureml.ms/mlflow/v1.0{wid}",
            "publicNetworkAccess": "Enabled",
            "v1LegacyMode": False,
        },
        "systemData": system_data(tenant, ws.created_at, ws.created_by),
    }


def model_container_body(tenant: Tenant, model: Model) -> Json:
    wid = tenant.workspace_id(model.workspace)
    ordered = sorted(model.versions, key=lambda v: v.created_at)
    latest = ordered[-1]
    numeric = [int(v.version) for v in model.versions if v.version.isdigit()]
    return {
        "id": f"{wid}/models/{model.name}",
        "name": model.name,
        "type": f"{ML}/workspaces/models",
        "properties": {
            "description": model.description,
            "tags": dict(model.tags),
            "properties": {},
            "isArchived": model.archived,
            "latestVersion": latest.version,
            "nextVersion": str(max(numeric) + 1) if numeric else None,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(
            tenant, ordered[0].created_at, ordered[0].created_by, latest.created_at, latest.created_by
        ),
    }


def model_version_body(tenant: Tenant, model: Model, v: ModelVersion) -> Json:
    wid = tenant.workspace_id(model.workspace)
    ws_guid = derived_id("workspace-guid", wid)
    if v.job_name:
        model_uri = (
            f"azureml://subscriptions/{tenant.subscription_id}/resourceGroups/{tenant.resource_group}"
            f"/workspaces/{model.workspace}/datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{v.job_name}/model"
        )
    else:
        model_uri = (
            f"azureml://subscriptions/{tenant.subscription_id}/resourceGroups/{tenant.resource_group}"
            f"/workspaces/{model.workspace}/datastores/workspaceblobstore/paths/LocalUpload/"
            f"{derived_id('upload', wid, model.name, v.version).replace('-', '')}/{model.name}"
        )
    flavors: Json = {}
    if v.model_type == "mlflow_model":
        flavors = {
            "python_function": {
                "data": {
                    "loader_module": "mlflow.sklearn",
                    "python_version": "3.10.14",
                    "env": '{"conda": "conda.yaml", "virtualenv": "python_env.yaml"}',
                    "model_path": "model.pkl",
                    "predict_fn": "predict",
                }
            },
            "sklearn": {
                "data": {
                    "pickled_model": "model.pkl",
                    "sklearn_version": "1.5.1",
                    "serialization_format": "cloudpickle",
                    "code": "",
                }
            },
        }
    props: dict[str, str] = {"azureml.workspaceId": ws_guid}
    props.update(v.properties)
    return {
        "id": f"{wid}/models/{model.name}/versions/{v.version}",
        "name": v.version,
        "type": f"{ML}/workspaces/models/versions",
        "properties": {
            "description": v.description or None,
            "tags": dict(v.tags),
            "properties": props,
            "isArchived": v.archived,
            "isAnonymous": False,
            "flavors": flavors,
            "modelType": v.model_type,
            "modelUri": model_uri,
            "jobName": v.job_name,
            "stage": v.stage,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(tenant, v.created_at, v.created_by, v.modified_at, v.modified_by),
    }


def _async_op_uri(tenant: Tenant, kind: str, key: str) -> str:
    return (
        f"https://management.azure.com/subscriptions/{tenant.subscription_id}/providers/{ML}/locations/"
        f"{tenant.location}/mfeOperationsStatus/{kind}:{derived_id('op', key)}?api-version=2022-02-01-preview"
    )


def endpoint_body(tenant: Tenant, e: Endpoint) -> Json:
    eid = f"{tenant.workspace_id(e.workspace)}/onlineEndpoints/{e.name}"
    host = f"{e.name}.{tenant.location}.inference.ml.azure.com"
    last = max([e.created_at, *(u.at for u in e.traffic_updates)])
    last_by = e.created_by
    for u in e.traffic_updates:
        if u.at == last:
            last_by = u.by
    return {
        "id": eid,
        "name": e.name,
        "type": f"{ML}/workspaces/onlineEndpoints",
        "location": tenant.location,
        "tags": {},
        "kind": "Managed",
        "identity": {
            "type": "SystemAssigned",
            "principalId": derived_id("endpoint-identity", eid),
            "tenantId": tenant.tenant_id,
        },
        "properties": {
            "description": e.description or None,
            "properties": {
                "azureml.onlineendpointid": eid.lower(),
                "AzureAsyncOperationUri": _async_op_uri(tenant, "oe", eid),
            },
            "scoringUri": f"https://{host}/score",
            "swaggerUri": f"https://{host}/swagger.json",
            "authMode": e.auth_mode,
            "provisioningState": "Succeeded",
            "traffic": dict(e.traffic),
            "mirrorTraffic": dict(e.mirror_traffic),
            "publicNetworkAccess": "Enabled",
        },
        "systemData": system_data(tenant, e.created_at, e.created_by, last, last_by),
    }


def deployment_body(tenant: Tenant, e: Endpoint, d: Deployment) -> Json:
    eid = f"{tenant.workspace_id(e.workspace)}/onlineEndpoints/{e.name}"
    did = f"{eid}/deployments/{d.name}"
    probe = {
        "failureThreshold": 30,
        "successThreshold": 1,
        "timeout": "PT2S",
        "period": "PT10S",
        "initialDelay": "PT10S",
    }
    return {
        "id": did,
        "name": d.name,
        "type": f"{ML}/workspaces/onlineEndpoints/deployments",
        "location": tenant.location,
        "tags": {},
        "kind": "Managed",
        "sku": {"name": "Default", "tier": "Standard", "capacity": d.instance_count},
        "properties": {
            "description": None,
            "properties": {"AzureAsyncOperationUri": _async_op_uri(tenant, "od", did)},
            "endpointComputeType": "Managed",
            "model": tenant.model_version_id(e.workspace, d.model),
            "instanceType": d.instance_type,
            "environmentVariables": {},
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1},
            "livenessProbe": dict(probe),
            "readinessProbe": {**probe, "initialDelay": "PT10S", "failureThreshold": 30},
            "appInsightsEnabled": True,
            "egressPublicNetworkAccess": "Enabled",
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(tenant, d.created_at, d.created_by, d.modified_at, d.modified_by),
    }


# -- Authorization --------------------------------------------------------------------------------
def role_definition_body(tenant: Tenant, guid: str) -> Json | None:
    name = ROLE_BY_GUID.get(guid.lower())
    if name is None:
        return None
    description, actions, not_actions = _ROLE_TEXT[name]
    created, updated = _ROLE_DATES[name]
    return {
        "id": f"{tenant.subscription_scope}/providers/Microsoft.Authorization/roleDefinitions/{guid.lower()}",
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": guid.lower(),
        "properties": {
            "roleName": name,
            "type": "BuiltInRole",
            "description": description,
            "assignableScopes": ["/"],
            "permissions": [{"actions": actions, "notActions": not_actions, "dataActions": [], "notDataActions": []}],
            "createdOn": created,
            "updatedOn": updated,
            "createdBy": None,
            "updatedBy": None,
        },
    }


def role_assignment_body(tenant: Tenant, r: RoleAssignment) -> Json:
    scope = tenant.scope_id(r.scope)
    principal = tenant.principal(r.principal)
    creator = tenant.principal(r.created_by)
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{r.id}",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": r.id,
        "properties": {
            "roleDefinitionId": tenant.role_definition_id(r.role),
            "principalId": principal.id,
            "principalType": principal.type,
            "scope": scope,
            "condition": r.condition,
            "conditionVersion": "2.0" if r.condition else None,
            "createdOn": isoformat(r.created_on),
            "updatedOn": isoformat(r.created_on),
            "createdBy": creator.id,
            "updatedBy": creator.id,
            "delegatedManagedIdentityResourceId": None,
            "description": r.description,
        },
    }


def deny_assignment_body(tenant: Tenant, d: DenyAssignment) -> Json:
    scope = tenant.scope_id(d.scope)
    excluded = []
    if d.excluded_principal:
        p = tenant.principal(d.excluded_principal)
        excluded.append({"id": p.id, "type": p.type})
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/denyAssignments/{d.id}",
        "type": "Microsoft.Authorization/denyAssignments",
        "name": d.id,
        "properties": {
            "denyAssignmentName": d.name,
            "description": d.description,
            "permissions": [{"actions": list(d.actions), "notActions": [], "dataActions": [], "notDataActions": []}],
            "scope": scope,
            "doNotApplyToChildScopes": False,
            "principals": [{"id": "00000000-0000-0000-0000-000000000000", "type": "SystemDefined"}],
            "excludePrincipals": excluded,
            "isSystemProtected": True,
        },
    }


def eligible_assignment_body(tenant: Tenant, g: EligibleAssignment) -> Json:
    scope = tenant.scope_id(g.scope)
    principal = tenant.principal(g.principal)
    role_id = tenant.role_definition_id(g.role)
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/{g.id}",
        "name": g.id,
        "type": "Microsoft.Authorization/roleEligibilityScheduleInstances",
        "properties": {
            "scope": scope,
            "roleDefinitionId": role_id,
            "principalId": principal.id,
            "principalType": principal.type,
            "roleEligibilityScheduleId": f"{scope}/providers/Microsoft.Authorization/roleEligibilitySchedules/{g.id}",
            "status": "Provisioned",
            "startDateTime": isoformat(g.start),
            "endDateTime": isoformat(g.end) if g.end else None,
            "memberType": "Direct",
            "createdOn": isoformat(g.start),
            "condition": None,
            "conditionVersion": None,
            "expandedProperties": {
                "scope": {"id": scope, "displayName": scope.rsplit("/", 1)[-1], "type": _scope_type(scope)},
                "roleDefinition": {"id": role_id, "displayName": g.role, "type": "BuiltInRole"},
                "principal": {
                    "id": principal.id,
                    "displayName": principal.display_name or principal.name,
                    "email": principal.name if principal.type == "User" else None,
                    "type": principal.type,
                },
            },
        },
    }


def _scope_type(scope: str) -> str:
    lowered = scope.lower()
    if "/providers/microsoft.management/managementgroups/" in lowered:
        return "managementgroup"
    if lowered.count("/") == 2:
        return "subscription"
    if lowered.count("/") == 4:
        return "resourcegroup"
    return "resource"


def error_body(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message}}
