"""Discovery through Azure Resource Graph: every Azure ML workspace an identity can read, in a few queries.

``--discover`` must find workspaces across many subscriptions or a management group without one
List call per resource group. Resource Graph answers a KQL query over every subscription at once
(``azure-mgmt-resourcegraph``: ``POST /providers/Microsoft.ResourceGraph/resources``). Points that
shape the code (azure-limits.md section 2, azure-sdk-feasibility.md section 2(f)):

* Paging is through ``$skipToken`` in the request *body* (not a ``nextLink``); at most 1,000 rows
  per page; the query must project ``id`` for paging to work.
* "The group size is recommended to be less than 300" subscriptions per query, and the CLI
  forwards only 1,000: subscriptions are sent in batches of 300.
* The quota is 15 queries per 5 seconds per user; ``ThrottledTransport`` keeps a separate bucket
  for Resource Graph and retries its 429s (which azure-core does not retry for a POST without
  ``Retry-After``).
* ``authorizationresources`` holds role assignments: one query covers every scope of a run instead
  of one ``roleAssignments`` call per workspace.

The caller builds the ``ResourceGraphClient`` (through the client factory, so it sends through the
evidence tap); this module only drives it.

The small case, ``[scope]`` with a resource group and no workspace names, needs no Resource Graph:
``list_resource_group_scope`` lists the resource group's workspaces through azure-ai-ml, on the
same ``discovery`` channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evidence.domain import Scope, Workspace
from evidence.errors import EvidenceError

if TYPE_CHECKING:
    from azure.mgmt.resourcegraph import ResourceGraphClient

    from evidence.azure.clients import AzureClients

#: The tap channel (and raw folder) discovery queries are attributed to.
DISCOVERY_CHANNEL = "discovery"

#: Resource Graph's maximum rows per page (azure-limits.md section 2).
PAGE_SIZE = 1000
#: Subscriptions per query: "the group size is recommended to be less than 300".
SUBSCRIPTION_BATCH = 300

WORKSPACE_TYPE = "microsoft.machinelearningservices/workspaces"
ENDPOINT_TYPE = "microsoft.machinelearningservices/workspaces/onlineendpoints"

WORKSPACES_QUERY = (
    f"resources | where type =~ '{WORKSPACE_TYPE}' "
    "| project id, name, resourceGroup, subscriptionId, location | order by id asc"
)
ENDPOINTS_QUERY = (
    f"resources | where type =~ '{ENDPOINT_TYPE}' "
    "| project id, name, resourceGroup, subscriptionId, location | order by id asc"
)


class DiscoveryError(EvidenceError):
    """Resource Graph could not answer a discovery query (permissions, quota, a bad scope)."""


def _kql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def role_assignments_query(scopes: Iterable[str]) -> str:
    """KQL for the role assignments made exactly at any of ``scopes`` (compared case-insensitively)."""
    wanted = sorted({(s.rstrip("/") or "/").lower() for s in scopes if s})
    if not wanted:
        raise ValueError("role_assignments_query needs at least one scope")
    listed = ", ".join(_kql_string(s) for s in wanted)
    return (
        "authorizationresources | where type =~ 'microsoft.authorization/roleassignments' "
        "| extend scope = tolower(tostring(properties.scope)) "
        f"| where scope in ({listed}) "
        "| project id, name, scope, properties | order by id asc"
    )


def ancestor_scopes(workspace: Workspace) -> tuple[str, ...]:
    """The scopes an assignment can be inherited from, workspace first (management groups aside).

    Management groups above a subscription are not visible in the workspace's ARM id; callers that
    know them (``--management-group``) add them.
    """
    sub = f"/subscriptions/{workspace.subscription_id}"
    rg = f"{sub}/resourceGroups/{workspace.resource_group}"
    return (workspace.arm_id, rg, sub, "/")


@dataclass(frozen=True)
class DiscoveredEndpoint:
    id: str
    name: str
    workspace: Workspace
    location: str


def _parse_workspace_id(arm_id: str) -> Workspace | None:
    parts = arm_id.strip("/").split("/")
    # subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}[/...]
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    if parts[4].lower() != "providers" or parts[6].lower() != "workspaces":
        return None
    return Workspace(subscription_id=parts[1], resource_group=parts[3], name=parts[7])


class ResourceGraphDiscovery:
    """Runs discovery queries over ``subscriptions`` and/or ``management_groups``.

    With neither, Resource Graph searches every subscription the identity can read (up to its
    limits); an audit normally names the management group.
    """

    def __init__(
        self,
        client: ResourceGraphClient,
        *,
        subscriptions: Sequence[str] = (),
        management_groups: Sequence[str] = (),
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.subscriptions = tuple(subscriptions)
        self.management_groups = tuple(management_groups)
        self.page_size = page_size

    def _batches(self) -> list[tuple[list[str] | None, list[str] | None]]:
        groups = list(self.management_groups) or None
        if not self.subscriptions:
            return [(None, groups)]
        subs = sorted(set(self.subscriptions))
        batches: list[tuple[list[str] | None, list[str] | None]] = [
            (subs[i : i + SUBSCRIPTION_BATCH], None) for i in range(0, len(subs), SUBSCRIPTION_BATCH)
        ]
        if groups:
            batches.append((None, groups))
        return batches

    def query(self, kql: str) -> Iterator[dict[str, Any]]:
        """Every row of ``kql`` (as objects), following ``$skipToken`` across pages and batches."""
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

        for subscriptions, groups in self._batches():
            token: str | None = None
            while True:
                request = QueryRequest(
                    query=kql,
                    subscriptions=subscriptions,
                    management_groups=groups,
                    options=QueryRequestOptions(skip_token=token, top=self.page_size, result_format="objectArray"),
                )
                try:
                    response = self.client.resources(request)
                except HttpResponseError as exc:
                    code = getattr(getattr(exc, "error", None), "code", None) or exc.status_code
                    raise DiscoveryError(
                        f"Resource Graph refused the discovery query ({code}): {exc.message}",
                        hint="the identity needs Reader on the subscriptions or management group searched",
                    ) from exc
                # objectArray: a list of row objects (the SDK types it as a generic object).
                data: Any = response.data
                rows: list[Any] = data if isinstance(data, list) else []
                for row in rows:
                    if isinstance(row, dict):
                        yield row
                token = response.skip_token
                if not token:
                    break

    def workspaces(self) -> tuple[Workspace, ...]:
        """Every Azure ML workspace in scope, sorted (subscription, resource group, name)."""
        found = {}
        for row in self.query(WORKSPACES_QUERY):
            ws = _parse_workspace_id(str(row.get("id", "")))
            if ws is not None:
                found[ws.arm_id.lower()] = ws
        return tuple(sorted(found.values()))

    def online_endpoints(self) -> tuple[DiscoveredEndpoint, ...]:
        """Online endpoints Resource Graph indexes (not verified to be complete: azure-limits.md 10.2)."""
        found = {}
        for row in self.query(ENDPOINTS_QUERY):
            arm_id = str(row.get("id", ""))
            ws = _parse_workspace_id(arm_id)
            if ws is None:
                continue
            found[arm_id.lower()] = DiscoveredEndpoint(
                id=arm_id, name=str(row.get("name", "")), workspace=ws, location=str(row.get("location", ""))
            )
        return tuple(sorted(found.values(), key=lambda e: e.id.lower()))

    def role_assignments(self, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """Role assignment rows made at any of ``scopes``, in one query (per subscription batch).

        For a workspace's effective assignments pass ``ancestor_scopes(workspace)``.
        """
        rows = {str(r.get("id", "")).lower(): r for r in self.query(role_assignments_query(scopes))}
        return [rows[k] for k in sorted(rows)]


def discover_workspaces(
    client: ResourceGraphClient, *, subscriptions: Sequence[str] = (), management_groups: Sequence[str] = ()
) -> tuple[Workspace, ...]:
    """Every Azure ML workspace the identity can read in the given subscriptions / management groups."""
    return ResourceGraphDiscovery(client, subscriptions=subscriptions, management_groups=management_groups).workspaces()


def discover_scope(
    clients: AzureClients,
    *,
    subscriptions: Sequence[str] = (),
    management_groups: Sequence[str] = (),
    organisation: str = "",
    registries: Sequence[str] = (),
) -> Scope:
    """``--discover``: a scope of every workspace Resource Graph shows the identity.

    The queries go through the client factory, so the evidence tap keeps their answers (attributed
    to the ``discovery`` channel): the package shows how its scope was found. Finding nothing is an
    error, not an empty package: an audit of nothing would look like an audit that passed.
    """
    from evidence.azure.tap import EvidenceTap

    with EvidenceTap.channel(DISCOVERY_CHANNEL):
        found = discover_workspaces(
            clients.resource_graph(), subscriptions=subscriptions, management_groups=management_groups
        )
    if not found:
        searched = ", ".join(
            [f"subscription {s}" for s in subscriptions] + [f"management group {g}" for g in management_groups]
        )
        raise DiscoveryError(
            f"Resource Graph shows no Azure ML workspace in {searched or 'any subscription the identity can read'}",
            hint="check the subscriptions / management group, and that the identity has Reader on them",
        )
    return Scope(workspaces=found, registries=tuple(registries), organisation=organisation)


def list_resource_group_scope(
    clients: AzureClients,
    *,
    subscriptions: Sequence[str],
    resource_group: str,
    organisation: str = "",
    registries: Sequence[str] = (),
) -> Scope:
    """``[scope]`` with a resource group and no workspace names: every workspace in it, per subscription.

    Listed through azure-ai-ml (``MLClient(credential, subscription, resource_group).workspaces.list(
    scope="resource_group")``, every kind of workspace) before collection, on the tap's ``discovery``
    channel, so the answers are kept in the package (``data/raw/discovery/``) and show how the scope
    was found.

    A failure is an error, not a gap: a gap says "this part of a known scope is missing", but here the
    scope itself would be unknown, and a package over the workspaces that happened to be listed would
    read as an audit of the whole resource group. Finding no workspace is an error for the same
    reason as in ``discover_scope``: an audit of nothing would look like an audit that passed.
    """
    from azure.core.exceptions import AzureError

    from evidence.azure.tap import EvidenceTap

    found: dict[str, Workspace] = {}
    for subscription in sorted(set(subscriptions)):
        where = f"resource group {resource_group} in subscription {subscription}"
        try:
            with EvidenceTap.channel(DISCOVERY_CHANNEL):
                listed = list(clients.ml_resource_group(subscription, resource_group).workspaces.list())
        except AzureError as exc:
            status = getattr(exc, "status_code", None)
            error = getattr(exc, "error", None)  # the ARM error body, when there was one
            detail = ", ".join(str(x) for x in (status, getattr(error, "code", None)) if x) or type(exc).__name__
            message = str(getattr(error, "message", None) or getattr(exc, "message", None) or exc)
            message = (message.strip().splitlines() or [""])[0]
            raise DiscoveryError(
                f"could not list the Azure ML workspaces in {where} ({detail}): {message}",
                hint="the identity needs Microsoft.MachineLearningServices/workspaces/read there; "
                "or name the workspaces ([scope] workspaces or --workspace)",
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DiscoveryError(
                f"could not list the Azure ML workspaces in {where}: unexpected answer ({type(exc).__name__}: {exc})",
                hint="name the workspaces ([scope] workspaces or --workspace)",
            ) from None
        for item in listed:
            name = str(getattr(item, "name", "") or "")
            if name:
                workspace = Workspace(subscription, resource_group, name)
                found[workspace.arm_id.lower()] = workspace
    if not found:
        raise DiscoveryError(
            f"there is no Azure ML workspace in resource group {resource_group} "
            f"(subscription {', '.join(sorted(set(subscriptions)))})",
            hint="check [scope] subscription and resource_group, and that the identity can read the workspaces",
        )
    return Scope(workspaces=tuple(sorted(found.values())), registries=tuple(registries), organisation=organisation)
