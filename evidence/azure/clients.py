"""The one factory that builds every Azure SDK client, from a credential and a transport.

No module-level clients anywhere: everything that talks to Azure is built here, so a replay
transport (offline), a recording transport (``--record``) or the real one (live) is a choice made
in one place, and every client sends through the same evidence tap.

SDK imports happen inside the methods: ``azure.ai.ml`` alone takes over a second to import, and
``evidence verify`` must start fast without it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evidence.domain import Workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import HttpTransport
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.monitor import MonitorManagementClient
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.monitor.query import LogsQueryClient


@dataclass(frozen=True)
class Cloud:
    """A sovereign cloud: where Resource Manager and Log Analytics live, and the token audience."""

    name: str
    resource_manager: str
    log_analytics: str

    @property
    def arm_scope(self) -> str:
        return self.resource_manager.rstrip("/") + "/.default"


AZURE_PUBLIC = Cloud("AzureCloud", "https://management.azure.com/", "https://api.loganalytics.io/v1")
AZURE_US_GOVERNMENT = Cloud(
    "AzureUSGovernment", "https://management.usgovcloudapi.net/", "https://api.loganalytics.us/v1"
)
AZURE_CHINA = Cloud("AzureChinaCloud", "https://management.chinacloudapi.cn/", "https://api.loganalytics.azure.cn/v1")
CLOUDS = {c.name: c for c in (AZURE_PUBLIC, AZURE_US_GOVERNMENT, AZURE_CHINA)}

#: azure-mgmt-authorization API versions (its default profile's, pinned per client: see
#: ``AzureClients.authorization``). Role assignments, deny assignments and role definitions:
AUTHORIZATION_API = "2022-04-01"
#: PIM eligibility (``role_eligibility_schedule_instances``):
ELIGIBILITY_API = "2020-10-01"


class AzureClients:
    """Builds SDK clients that all send through ``transport`` and authenticate with ``credential``."""

    def __init__(
        self,
        credential: TokenCredential,
        transport: HttpTransport[Any, Any],
        *,
        cloud: Cloud = AZURE_PUBLIC,
    ) -> None:
        self.credential = credential
        self.transport = transport
        self.cloud = cloud
        self._cache: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def _common(self) -> dict[str, Any]:
        return {"transport": self.transport}

    def _ml_kwargs(self) -> dict[str, Any]:
        # Always name the cloud, the public one too: without ``cloud=`` MLClient falls back to the
        # process-global AZUREML_CURRENT_CLOUD, which an earlier MLClient for another cloud set.
        kwargs: dict[str, Any] = {"enable_telemetry": False, **self._common()}
        if CLOUDS.get(self.cloud.name) == self.cloud:
            kwargs["cloud"] = self.cloud.name
            return kwargs
        # A custom Resource Manager (Azure Stack Hub). azure-ai-ml knows only the three clouds above;
        # for any other name it fetches ARM's cloud metadata with an HTTP client of its own, outside
        # this transport (a network call even in a replay). Registering the cloud avoids that. The
        # name is derived from the endpoint because MLClient silently ignores a second registration
        # of a name with other endpoints. Every ML endpoint points at this Resource Manager: Azure ML
        # has no other known host there, and a call must fail there rather than reach public Azure.
        manager = self.cloud.resource_manager
        kwargs["cloud"] = "evidence-" + hashlib.sha256(manager.encode("utf-8")).hexdigest()[:16]
        kwargs["cloud_metadata"] = {
            "azure_portal": manager,
            "resource_manager": manager,
            "active_directory": manager,
            "aml_resource_id": manager,
            "storage_endpoint": "",
            "registry_discovery_endpoint": manager,
        }
        return kwargs

    def _arm_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.cloud.resource_manager,
            "credential_scopes": [self.cloud.arm_scope],
            **self._common(),
        }

    def _cached(self, key: tuple[str, ...], build: Callable[[], Any]) -> Any:
        """The client under ``key``, built once: pool threads share the factory."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def ml(self, workspace: Workspace) -> MLClient:
        from azure.ai.ml import MLClient

        # MLClient forwards transport= to each of its inner generated clients (verified in the
        # feasibility study by identity check), so this one seam covers all of azure-ai-ml.
        key = ("ml", workspace.subscription_id, workspace.resource_group, workspace.name)
        return self._cached(  # type: ignore[no-any-return]
            key,
            lambda: MLClient(
                self.credential,
                workspace.subscription_id,
                workspace.resource_group,
                workspace.name,
                **self._ml_kwargs(),
            ),
        )

    def ml_resource_group(self, subscription_id: str, resource_group: str) -> MLClient:
        """An ``MLClient`` for a resource group, with no workspace: lists the workspaces in it.

        ``[scope]`` with a resource group and no workspace names means every workspace there; the
        list goes through this client (``workspaces.list(scope="resource_group")``), so it sends
        through the evidence tap like every other call. Building it makes no request.
        """
        from azure.ai.ml import MLClient

        key = ("ml-resource-group", subscription_id, resource_group)
        return self._cached(  # type: ignore[no-any-return]
            key, lambda: MLClient(self.credential, subscription_id, resource_group, **self._ml_kwargs())
        )

    def registry(self, name: str) -> MLClient:
        """An ``MLClient`` for an Azure ML registry (a top-level space shared across workspaces).

        Unlike the workspace client, the constructor itself makes a request: it asks the cloud's
        registry discovery service (``GET <discovery>/registrymanagement/v1.0/registries/<name>/
        discovery``) for the registry's subscription, resource group and regional host, and every
        later call goes to that host (feasibility §1a). So build it inside ``session.attempt``: a
        registry that does not exist or is not visible fails here, as a 404 or 403.
        """
        from azure.ai.ml import MLClient

        return self._cached(  # type: ignore[no-any-return]
            ("registry", name), lambda: MLClient(self.credential, registry_name=name, **self._ml_kwargs())
        )

    def registry_location(self, name: str) -> tuple[str, str]:
        """(subscription, resource group) of an Azure ML registry, from its discovery answer.

        Builds a registry client of its own, never the cached one: the discovery request is then
        made, and kept, on the caller's tap channel every time. A cached client would make it on
        whichever channel asked first, and under concurrent collection that depends on timing.
        """
        from azure.ai.ml import MLClient

        client = MLClient(self.credential, registry_name=name, **self._ml_kwargs())
        return str(client.subscription_id), str(client.resource_group_name)

    def authorization(
        self, subscription_id: str, api_version: str = AUTHORIZATION_API
    ) -> AuthorizationManagementClient:
        """An authorization client pinned to one API version (``ELIGIBILITY_API`` for PIM).

        azure-mgmt-authorization's multi-API client writes the version of whichever operation
        group was last accessed into its shared ``_config.api_version``, and its pagers read that
        value for every next page. Shared by concurrent collection tasks, one client asked for a
        second page of role assignments with PIM's 2020-10-01 once another task had touched
        ``role_eligibility_schedule_instances`` (seen on the large benchmark tenant: 7 pages in a
        run, a different 7 in the next; live Resource Manager would refuse the version, a gap). A
        client per version never has its version changed under it.
        """
        from azure.mgmt.authorization import AuthorizationManagementClient

        return self._cached(  # type: ignore[no-any-return]
            ("authorization", subscription_id, api_version),
            lambda: AuthorizationManagementClient(
                self.credential, subscription_id, api_version=api_version, **self._arm_kwargs()
            ),
        )

    def monitor(self, subscription_id: str) -> MonitorManagementClient:
        from azure.mgmt.monitor import MonitorManagementClient

        return self._cached(  # type: ignore[no-any-return]
            ("monitor", subscription_id),
            lambda: MonitorManagementClient(self.credential, subscription_id, **self._arm_kwargs()),
        )

    def resource_graph(self) -> ResourceGraphClient:
        """Azure Resource Graph (``--discover``): tenant-wide queries, no subscription in the client."""
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return self._cached(  # type: ignore[no-any-return]
            ("resourcegraph",), lambda: ResourceGraphClient(self.credential, **self._arm_kwargs())
        )

    def logs(self) -> LogsQueryClient:
        from azure.monitor.query import LogsQueryClient

        return self._cached(  # type: ignore[no-any-return]
            ("logs",), lambda: LogsQueryClient(self.credential, endpoint=self.cloud.log_analytics, **self._common())
        )
