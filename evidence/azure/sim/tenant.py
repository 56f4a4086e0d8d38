"""A tenant description: what the simulated Resource Manager knows, loaded from readable TOML.

The description is deliberately small and human-oriented: principals by name, scopes as
``workspace/<name>`` / ``resourceGroup`` / ``subscription`` / ``managementGroup``, model
references as ``<name>:<version>``. Everything Azure would derive (ARM ids, ``systemData``,
Activity Log events for each write) is derived by the simulator, so the description cannot
contradict itself. See ``samples/contoso/tenant.toml`` for a commented example.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evidence.errors import EvidenceError

#: Built-in role definition ids (azure-limits.md section 6), by role name.
BUILTIN_ROLES: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "AzureML Data Scientist": "f6c7c914-8db3-469d-8ca1-694a8f32e121",
}

PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "Unknown")
STAGES = ("Development", "Staging", "Production", "Archived")

#: Namespace for every id the simulator derives (uuid5), so regenerating gives the same ids.
SIM_NAMESPACE = uuid.UUID("6f1c2a52-1d8e-5c7b-9a43-2e0d4b7c9e11")


class TenantError(EvidenceError):
    """The tenant description is invalid; the message names the entry and what is expected."""


def derived_id(*parts: str) -> str:
    """A stable GUID for a derived object (event ids, correlation ids, request ids)."""
    return str(uuid.uuid5(SIM_NAMESPACE, "\x1f".join(parts)))


@dataclass(frozen=True)
class Principal:
    id: str  # Entra object id
    name: str  # UPN for users, display name for groups and service principals
    type: str  # User | Group | ServicePrincipal | Unknown (deleted: no longer resolves)
    display_name: str = ""
    app_id: str | None = None  # service principals: the application (client) id

    @property
    def created_by_type(self) -> str:
        """``systemData.createdByType`` for this principal."""
        return "Application" if self.type == "ServicePrincipal" else "User"

    @property
    def system_data_name(self) -> str:
        """``systemData.createdBy``: the UPN for a user, the application id for an application."""
        return self.app_id if (self.type == "ServicePrincipal" and self.app_id) else self.name


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    created_by: str
    stage: str = "Development"
    archived: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    job_name: str | None = None
    description: str = ""
    model_type: str = "mlflow_model"
    modified_at: datetime | None = None
    modified_by: str | None = None


@dataclass(frozen=True)
class Model:
    workspace: str
    name: str
    description: str
    versions: tuple[ModelVersion, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    archived: bool = False


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str  # "<model name>:<version>" in the endpoint's workspace
    instance_type: str
    instance_count: int
    created_at: datetime
    created_by: str
    modified_at: datetime | None = None
    modified_by: str | None = None


@dataclass(frozen=True)
class TrafficUpdate:
    """An ``onlineEndpoints/write`` that changed the traffic split (Activity Log only)."""

    at: datetime
    by: str
    traffic: Mapping[str, int]


@dataclass(frozen=True)
class Load:
    """Synthetic load on an endpoint, the seed of its metrics."""

    requests_per_minute: float = 60.0
    latency_p50_ms: float = 40.0
    error_rate_4xx: float = 0.02
    error_rate_5xx: float = 0.005


@dataclass(frozen=True)
class Endpoint:
    workspace: str
    name: str
    auth_mode: str
    traffic: Mapping[str, int]
    mirror_traffic: Mapping[str, int]
    created_at: datetime
    created_by: str
    deployments: tuple[Deployment, ...]
    traffic_updates: tuple[TrafficUpdate, ...] = ()
    description: str = ""
    load: Load = field(default_factory=Load)


@dataclass(frozen=True)
class RoleAssignment:
    id: str  # the assignment GUID (its ARM name)
    scope: str  # symbolic: workspace/<name> | resourceGroup | subscription | managementGroup
    principal: str  # principal name
    role: str  # role name (built-in)
    created_on: datetime
    created_by: str  # principal name of who created it
    condition: str | None = None
    description: str | None = None
    #: False plants an assignment whose creation left no Activity Log event (a control finds it).
    activity_logged: bool = True


@dataclass(frozen=True)
class DenyAssignment:
    id: str
    name: str
    scope: str
    description: str
    actions: tuple[str, ...]
    excluded_principal: str | None = None


@dataclass(frozen=True)
class EligibleAssignment:
    """A PIM eligibility (served by ``roleEligibilityScheduleInstances``)."""

    id: str
    scope: str
    principal: str
    role: str
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class ActivityEvent:
    """An explicit Activity Log operation (for things no resource in the description implies)."""

    at: datetime
    operation: str
    resource: str  # symbolic scope + path, or a full ARM id
    caller: str
    status: str = "Succeeded"
    request_body: Mapping[str, Any] | None = None
    resource_group: str | None = None  # defaults to the tenant's resource group when the id has one


@dataclass(frozen=True)
class RecurringActivity:
    """Background operations (e.g. nightly training jobs) that make the log realistically long."""

    operation: str
    resource: str  # may contain {n} for a per-occurrence counter
    caller: str
    start: datetime
    end: datetime
    every: timedelta


@dataclass(frozen=True)
class PlantedProblem:
    id: str
    control: str
    description: str
    subject: str


@dataclass(frozen=True)
class Workspace:
    name: str
    created_at: datetime
    created_by: str
    description: str = ""
    friendly_name: str = ""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    subscription_id: str
    subscription_name: str
    resource_group: str
    location: str
    management_group: str
    now: datetime  # the simulated "now": Activity Log retention and metric data end here
    principals: tuple[Principal, ...]
    workspaces: tuple[Workspace, ...]
    models: tuple[Model, ...]
    endpoints: tuple[Endpoint, ...]
    role_assignments: tuple[RoleAssignment, ...]
    deny_assignments: tuple[DenyAssignment, ...] = ()
    eligible_assignments: tuple[EligibleAssignment, ...] = ()
    activity: tuple[ActivityEvent, ...] = ()
    recurring: tuple[RecurringActivity, ...] = ()
    planted_problems: tuple[PlantedProblem, ...] = ()
    #: Page sizes per list kind: models, model_versions, endpoints, deployments,
    #: role_assignments, activity_log (see ``DEFAULT_PAGE_SIZES``).
    page_sizes: Mapping[str, int] = field(default_factory=dict)
    #: URL regexes answered with 403 AuthorizationFailed (a collector identity lacking a permission).
    forbidden: tuple[str, ...] = ()

    # -- lookups ---------------------------------------------------------------------------------
    def principal(self, name: str) -> Principal:
        for p in self.principals:
            if p.name == name:
                return p
        raise TenantError(f"unknown principal {name!r}", hint="declare it under [[principals]]")

    def workspace(self, name: str) -> Workspace | None:
        for w in self.workspaces:
            if w.name.lower() == name.lower():
                return w
        return None

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def resource_group_id(self) -> str:
        return f"{self.subscription_scope}/resourceGroups/{self.resource_group}"

    @property
    def management_group_id(self) -> str:
        return f"/providers/Microsoft.Management/managementGroups/{self.management_group}"

    def workspace_id(self, name: str) -> str:
        return f"{self.resource_group_id}/providers/Microsoft.MachineLearningServices/workspaces/{name}"

    def scope_id(self, scope: str) -> str:
        """Turn a symbolic scope (or a full ARM id) into the ARM id."""
        if scope.startswith("/"):
            return scope
        if scope == "subscription":
            return self.subscription_scope
        if scope == "resourceGroup":
            return self.resource_group_id
        if scope == "managementGroup":
            return self.management_group_id
        kind, _, rest = scope.partition("/")
        if kind == "workspace" and rest:
            name, _, tail = rest.partition("/")
            return self.workspace_id(name) + (f"/{tail}" if tail else "")
        raise TenantError(
            f"unknown scope {scope!r}",
            hint="use workspace/<name>[/path], resourceGroup, subscription, managementGroup or an ARM id",
        )

    def model_version_id(self, workspace: str, reference: str) -> str:
        name, _, version = reference.partition(":")
        return f"{self.workspace_id(workspace)}/models/{name}/versions/{version}"

    def role_definition_id(self, role: str) -> str:
        return f"{self.subscription_scope}/providers/Microsoft.Authorization/roleDefinitions/{BUILTIN_ROLES[role]}"


DEFAULT_PAGE_SIZES: dict[str, int] = {
    "models": 100,
    "model_versions": 100,
    "endpoints": 100,
    "deployments": 100,
    "role_assignments": 100,
    "deny_assignments": 100,
    "eligible_assignments": 100,
    "activity_log": 200,  # ~200 events per page (azure-limits.md section 3.2)
}


# -- loading ---------------------------------------------------------------------------------------
def _dt(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TenantError(f"{where}: {value} has no timezone", hint="write times with a Z suffix")
        return value.astimezone(UTC)
    if isinstance(value, str):
        from evidence.clock import parse_timestamp

        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise TenantError(f"{where}: {value!r} is not an ISO 8601 time") from exc
    raise TenantError(f"{where}: expected a time, got {type(value).__name__}")


def _opt_dt(value: Any, where: str) -> datetime | None:
    return None if value is None else _dt(value, where)


def _req(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise TenantError(f"{where}: missing key {key!r}")
    return table[key]


def _strmap(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TenantError(f"{where}: expected a table")
    return {str(k): str(v) for k, v in value.items()}


def _intmap(value: Any, where: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TenantError(f"{where}: expected a table")
    return {str(k): int(v) for k, v in value.items()}


def _duration(text: str, where: str) -> timedelta:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) >= 2 and text[-1] in units and text[:-1].isdigit():
        return timedelta(**{units[text[-1]]: int(text[:-1])})
    raise TenantError(f"{where}: {text!r} is not a duration", hint="use e.g. 1d, 6h or 30m")


def load_tenant(path: str | Path) -> Tenant:
    """Read and check a tenant description (TOML)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TenantError(f"cannot read tenant description {p}: {exc}") from exc
    return tenant_from_dict(data)


def tenant_from_dict(data: Mapping[str, Any]) -> Tenant:
    t = _req(data, "tenant", "top level")
    principals = tuple(
        Principal(
            id=str(_req(p, "id", f"principals[{i}]")),
            name=str(_req(p, "name", f"principals[{i}]")),
            type=str(_req(p, "type", f"principals[{i}]")),
            display_name=str(p.get("display_name", "")),
            app_id=p.get("app_id"),
        )
        for i, p in enumerate(data.get("principals", []))
    )
    workspaces = tuple(
        Workspace(
            name=str(_req(w, "name", f"workspaces[{i}]")),
            created_at=_dt(_req(w, "created_at", f"workspaces[{i}]"), f"workspaces[{i}].created_at"),
            created_by=str(_req(w, "created_by", f"workspaces[{i}]")),
            description=str(w.get("description", "")),
            friendly_name=str(w.get("friendly_name", "")),
        )
        for i, w in enumerate(data.get("workspaces", []))
    )
    models = []
    for i, m in enumerate(data.get("models", [])):
        where = f"models[{i}]"
        versions = []
        for j, v in enumerate(m.get("versions", [])):
            vw = f"{where}.versions[{j}]"
            versions.append(
                ModelVersion(
                    version=str(_req(v, "version", vw)),
                    created_at=_dt(_req(v, "created_at", vw), f"{vw}.created_at"),
                    created_by=str(_req(v, "created_by", vw)),
                    stage=str(v.get("stage", "Development")),
                    archived=bool(v.get("archived", False)),
                    tags=_strmap(v.get("tags"), f"{vw}.tags"),
                    properties=_strmap(v.get("properties"), f"{vw}.properties"),
                    job_name=v.get("job_name"),
                    description=str(v.get("description", "")),
                    model_type=str(v.get("model_type", "mlflow_model")),
                    modified_at=_opt_dt(v.get("modified_at"), f"{vw}.modified_at"),
                    modified_by=v.get("modified_by"),
                )
            )
        models.append(
            Model(
                workspace=str(_req(m, "workspace", where)),
                name=str(_req(m, "name", where)),
                description=str(m.get("description", "")),
                versions=tuple(versions),
                tags=_strmap(m.get("tags"), f"{where}.tags"),
                archived=bool(m.get("archived", False)),
            )
        )
    endpoints = []
    for i, e in enumerate(data.get("endpoints", [])):
        where = f"endpoints[{i}]"
        deployments = tuple(
            Deployment(
                name=str(_req(d, "name", f"{where}.deployments[{j}]")),
                model=str(_req(d, "model", f"{where}.deployments[{j}]")),
                instance_type=str(d.get("instance_type", "Standard_DS3_v2")),
                instance_count=int(d.get("instance_count", 1)),
                created_at=_dt(_req(d, "created_at", f"{where}.deployments[{j}]"), f"{where}.deployments[{j}]"),
                created_by=str(_req(d, "created_by", f"{where}.deployments[{j}]")),
                modified_at=_opt_dt(d.get("modified_at"), f"{where}.deployments[{j}].modified_at"),
                modified_by=d.get("modified_by"),
            )
            for j, d in enumerate(e.get("deployments", []))
        )
        updates = tuple(
            TrafficUpdate(
                at=_dt(_req(u, "at", f"{where}.traffic_updates[{j}]"), f"{where}.traffic_updates[{j}].at"),
                by=str(_req(u, "by", f"{where}.traffic_updates[{j}]")),
                traffic=_intmap(u.get("traffic"), f"{where}.traffic_updates[{j}].traffic"),
            )
            for j, u in enumerate(e.get("traffic_updates", []))
        )
        load = e.get("load", {})
        endpoints.append(
            Endpoint(
                workspace=str(_req(e, "workspace", where)),
                name=str(_req(e, "name", where)),
                auth_mode=str(e.get("auth_mode", "Key")),
                traffic=_intmap(e.get("traffic"), f"{where}.traffic"),
                mirror_traffic=_intmap(e.get("mirror_traffic"), f"{where}.mirror_traffic"),
                created_at=_dt(_req(e, "created_at", where), f"{where}.created_at"),
                created_by=str(_req(e, "created_by", where)),
                deployments=deployments,
                traffic_updates=updates,
                description=str(e.get("description", "")),
                load=Load(
                    requests_per_minute=float(load.get("requests_per_minute", 60.0)),
                    latency_p50_ms=float(load.get("latency_p50_ms", 40.0)),
                    error_rate_4xx=float(load.get("error_rate_4xx", 0.02)),
                    error_rate_5xx=float(load.get("error_rate_5xx", 0.005)),
                ),
            )
        )
    role_assignments = tuple(
        RoleAssignment(
            id=str(_req(r, "id", f"role_assignments[{i}]")),
            scope=str(_req(r, "scope", f"role_assignments[{i}]")),
            principal=str(_req(r, "principal", f"role_assignments[{i}]")),
            role=str(_req(r, "role", f"role_assignments[{i}]")),
            created_on=_dt(_req(r, "created_on", f"role_assignments[{i}]"), f"role_assignments[{i}].created_on"),
            created_by=str(_req(r, "created_by", f"role_assignments[{i}]")),
            condition=r.get("condition"),
            description=r.get("description"),
            activity_logged=bool(r.get("activity_logged", True)),
        )
        for i, r in enumerate(data.get("role_assignments", []))
    )
    deny = tuple(
        DenyAssignment(
            id=str(_req(d, "id", f"deny_assignments[{i}]")),
            name=str(_req(d, "name", f"deny_assignments[{i}]")),
            scope=str(_req(d, "scope", f"deny_assignments[{i}]")),
            description=str(d.get("description", "")),
            actions=tuple(str(a) for a in d.get("actions", ["*"])),
            excluded_principal=d.get("excluded_principal"),
        )
        for i, d in enumerate(data.get("deny_assignments", []))
    )
    eligible = tuple(
        EligibleAssignment(
            id=str(_req(d, "id", f"eligible_assignments[{i}]")),
            scope=str(_req(d, "scope", f"eligible_assignments[{i}]")),
            principal=str(_req(d, "principal", f"eligible_assignments[{i}]")),
            role=str(_req(d, "role", f"eligible_assignments[{i}]")),
            start=_dt(_req(d, "start", f"eligible_assignments[{i}]"), f"eligible_assignments[{i}].start"),
            end=_opt_dt(d.get("end"), f"eligible_assignments[{i}].end"),
        )
        for i, d in enumerate(data.get("eligible_assignments", []))
    )
    activity = tuple(
        ActivityEvent(
            at=_dt(_req(a, "at", f"activity[{i}]"), f"activity[{i}].at"),
            operation=str(_req(a, "operation", f"activity[{i}]")),
            resource=str(_req(a, "resource", f"activity[{i}]")),
            caller=str(_req(a, "caller", f"activity[{i}]")),
            status=str(a.get("status", "Succeeded")),
            request_body=a.get("request_body"),
            resource_group=a.get("resource_group"),
        )
        for i, a in enumerate(data.get("activity", []))
    )
    recurring = tuple(
        RecurringActivity(
            operation=str(_req(a, "operation", f"recurring[{i}]")),
            resource=str(_req(a, "resource", f"recurring[{i}]")),
            caller=str(_req(a, "caller", f"recurring[{i}]")),
            start=_dt(_req(a, "start", f"recurring[{i}]"), f"recurring[{i}].start"),
            end=_dt(_req(a, "end", f"recurring[{i}]"), f"recurring[{i}].end"),
            every=_duration(str(_req(a, "every", f"recurring[{i}]")), f"recurring[{i}].every"),
        )
        for i, a in enumerate(data.get("recurring", []))
    )
    problems = tuple(
        PlantedProblem(
            id=str(_req(p, "id", f"planted_problems[{i}]")),
            control=str(_req(p, "control", f"planted_problems[{i}]")),
            description=str(_req(p, "description", f"planted_problems[{i}]")),
            subject=str(_req(p, "subject", f"planted_problems[{i}]")),
        )
        for i, p in enumerate(data.get("planted_problems", []))
    )
    sim = data.get("simulator", {})
    tenant = Tenant(
        tenant_id=str(_req(t, "tenant_id", "[tenant]")),
        subscription_id=str(_req(t, "subscription_id", "[tenant]")),
        subscription_name=str(t.get("subscription_name", "")),
        resource_group=str(_req(t, "resource_group", "[tenant]")),
        location=str(t.get("location", "westeurope")),
        management_group=str(t.get("management_group", "mg-root")),
        now=_dt(_req(t, "now", "[tenant]"), "[tenant].now"),
        principals=principals,
        workspaces=workspaces,
        models=tuple(models),
        endpoints=tuple(endpoints),
        role_assignments=role_assignments,
        deny_assignments=deny,
        eligible_assignments=eligible,
        activity=activity,
        recurring=recurring,
        planted_problems=problems,
        page_sizes={**DEFAULT_PAGE_SIZES, **_intmap(sim.get("page_sizes"), "[simulator].page_sizes")},
        forbidden=tuple(str(x) for x in sim.get("forbidden", [])),
    )
    _check(tenant)
    return tenant


def _check(t: Tenant) -> None:
    """Cross-references must resolve: a broken description would make a misleading sample."""
    names = {p.name for p in t.principals}
    for p in t.principals:
        if p.type not in PRINCIPAL_TYPES:
            raise TenantError(f"principal {p.name!r}: type {p.type!r}", hint=f"use one of {PRINCIPAL_TYPES}")

    def known(name: str, where: str) -> None:
        if name not in names:
            raise TenantError(f"{where}: unknown principal {name!r}", hint="declare it under [[principals]]")

    ws_names = {w.name for w in t.workspaces}
    for w in t.workspaces:
        known(w.created_by, f"workspace {w.name}")
    versions: set[tuple[str, str]] = set()
    for m in t.models:
        if m.workspace not in ws_names:
            raise TenantError(f"model {m.name!r}: unknown workspace {m.workspace!r}")
        for v in m.versions:
            known(v.created_by, f"model {m.name}:{v.version}")
            if v.modified_by:
                known(v.modified_by, f"model {m.name}:{v.version}")
            if v.stage not in STAGES:
                raise TenantError(f"model {m.name}:{v.version}: stage {v.stage!r}", hint=f"use one of {STAGES}")
            versions.add((m.workspace, f"{m.name}:{v.version}"))
    for e in t.endpoints:
        if e.workspace not in ws_names:
            raise TenantError(f"endpoint {e.name!r}: unknown workspace {e.workspace!r}")
        known(e.created_by, f"endpoint {e.name}")
        dep_names = {d.name for d in e.deployments}
        for d in e.deployments:
            known(d.created_by, f"deployment {e.name}/{d.name}")
            if (e.workspace, d.model) not in versions:
                raise TenantError(f"deployment {e.name}/{d.name}: unknown model version {d.model!r}")
        for label, split in (("traffic", e.traffic), ("mirror_traffic", e.mirror_traffic)):
            for dep in split:
                if dep not in dep_names:
                    raise TenantError(f"endpoint {e.name}: {label} names unknown deployment {dep!r}")
        if e.traffic and sum(e.traffic.values()) not in (0, 100):
            raise TenantError(f"endpoint {e.name}: traffic must sum to 0 or 100")
        for u in e.traffic_updates:
            known(u.by, f"endpoint {e.name} traffic update")
    for r in t.role_assignments:
        known(r.principal, f"role assignment {r.id}")
        known(r.created_by, f"role assignment {r.id}")
        if r.role not in BUILTIN_ROLES:
            raise TenantError(
                f"role assignment {r.id}: unknown role {r.role!r}", hint=f"use one of {list(BUILTIN_ROLES)}"
            )
        t.scope_id(r.scope)
    for g in t.eligible_assignments:
        known(g.principal, f"eligible assignment {g.id}")
        if g.role not in BUILTIN_ROLES:
            raise TenantError(f"eligible assignment {g.id}: unknown role {g.role!r}")
    for a in t.activity:
        known(a.caller, f"activity {a.operation} at {a.at}")
    for rec in t.recurring:
        known(rec.caller, f"recurring {rec.operation}")
