"""Role assignments, deny assignments and PIM eligibility at each workspace scope.

``$filter=atScope()`` returns the assignments *at or above* a scope, so one call per workspace
also yields those inherited from its resource group, subscription and management groups. Each
row records the workspace it was collected for: an assignment inherited by two workspaces is two
rows, one per workspace, because an auditor reads access per workspace.

Role names are not in assignments; they come from role definitions, looked up once per distinct
definition ID (``role_definitions.get_by_id``) and shared across workspaces. A definition that
cannot be read leaves ``role_name`` None and a gap naming the definition.

PIM eligibility (``roleEligibilityScheduleInstances``, api-version 2020-10-01 on the default
profile of azure-mgmt-authorization 4.0.0) needs Microsoft.Authorization/roleEligibilitySchedule*
read permission and an Entra ID P2 tenant; a 403 there is recorded as a gap like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from evidence.azure.clients import ELIGIBILITY_API
from evidence.collect.interface import Collector, CollectSession, Part, RawResponse, Record, run_parts
from evidence.collect.normalise import timestamp
from evidence.collect.paging import raw_items, raw_pages
from evidence.domain import Workspace

#: Role definition ID -> (role name, role type).
RoleNames = Mapping[str, tuple[str | None, str | None]]

_PROVIDER = r"/providers/Microsoft\.Authorization"
_ASSIGNMENTS_PATH = rf"(?P<scope>.*?){_PROVIDER}/roleAssignments/?"
_DENY_PATH = rf"(?P<scope>.*?){_PROVIDER}/denyAssignments/?"
_ELIGIBILITY_PATH = rf"(?P<scope>.*?){_PROVIDER}/roleEligibilityScheduleInstances/?"
_DEFINITION_PATH = rf".*{_PROVIDER}/roleDefinitions/[^/]+"
_GUID_TAIL = re.compile(r"/roleDefinitions/(?P<guid>[^/]+)$", re.IGNORECASE)

#: The only filter that returns assignments at the scope *and* inherited from above it.
AT_SCOPE = "atScope()"


class RoleAssignmentsCollector(Collector):
    name: ClassVar[str] = "role_assignments"
    record_kinds: ClassVar[tuple[str, ...]] = ("role_assignments", "deny_assignments", "role_eligibility")

    def collect(self, session: CollectSession) -> None:
        run_parts(self.parts(session), session)

    def parts(self, session: CollectSession) -> Sequence[Part]:
        """One part per workspace (its lists), then one for the role definitions they name.

        Each workspace part notes the definition IDs it saw in its own slot; the definitions part
        merges the slots in workspace order, so which spelling of an ID is looked up does not
        depend on which part finished first.
        """
        workspaces = sorted(session.scope.workspaces)
        seen: list[dict[str, str]] = [{} for _ in workspaces]
        parts = [
            Part(
                partial(self._collect_workspace, workspace=w, definition_ids=seen[i]),
                subscription=w.subscription_id,
                label=w.name,
            )
            for i, w in enumerate(workspaces)
        ]
        subscriptions = session.scope.subscriptions
        if subscriptions:
            parts.append(
                Part(
                    partial(self._collect_definitions, subscription=subscriptions[0], seen=seen),
                    subscription=subscriptions[0],
                    label="role definitions",
                    after=tuple(range(len(workspaces))),
                )
            )
        return parts

    def _collect_workspace(self, session: CollectSession, workspace: Workspace, definition_ids: dict[str, str]) -> None:
        def want(definition_id: str | None) -> None:
            if definition_id:
                definition_ids.setdefault(definition_id.lower(), definition_id)

        auth = session.clients.authorization(workspace.subscription_id)
        scope = workspace.arm_id
        # The SDK's own requests, paged raw (no model objects): see evidence.collect.paging. The
        # definition ID is read where the SDK's models read it from (properties.roleDefinitionId).
        with session.attempt(f"{scope}/providers/Microsoft.Authorization/roleAssignments"):
            for assignment in raw_items(auth.role_assignments.list_for_scope(scope, filter=AT_SCOPE)):
                want(_definition_id(assignment))
        with session.attempt(f"{scope}/providers/Microsoft.Authorization/denyAssignments"):
            for _ in raw_pages(auth.deny_assignments.list_for_scope(scope, filter=AT_SCOPE)):
                pass
        pim = session.clients.authorization(workspace.subscription_id, ELIGIBILITY_API)  # its own client: see there
        with session.attempt(f"{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances"):
            pager = pim.role_eligibility_schedule_instances.list_for_scope(scope, filter=AT_SCOPE)
            for instance in raw_items(pager):
                want(_definition_id(instance))

    def _collect_definitions(self, session: CollectSession, subscription: str, seen: list[dict[str, str]]) -> None:
        # Shared across workspaces: one lookup per distinct role definition for the whole run.
        definition_ids: dict[str, str] = {}
        for found in seen:
            for key, definition_id in found.items():
                definition_ids.setdefault(key, definition_id)
        # Role definitions are global objects; any subscription's client can read one by full ID.
        auth = session.clients.authorization(subscription)
        for key in sorted(definition_ids):
            definition_id = definition_ids[key]
            with session.attempt(definition_id):
                auth.role_definitions.get_by_id(definition_id)

    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        names = _role_names(responses)
        assignments = [
            _assignment_row(item, workspace, names)
            for workspace, item in _listed_for_scope(responses, _ASSIGNMENTS_PATH)
        ]
        denies = [_deny_row(item, workspace) for workspace, item in _listed_for_scope(responses, _DENY_PATH)]
        eligible = [
            _eligibility_row(item, workspace, names)
            for workspace, item in _listed_for_scope(responses, _ELIGIBILITY_PATH)
        ]
        assignments = _dedupe(assignments, ("workspace_id", "assignment_id"))
        denies = _dedupe(denies, ("workspace_id", "deny_assignment_id"))
        eligible = _dedupe(eligible, ("workspace_id", "eligibility_id"))
        assignments.sort(key=lambda r: (r["workspace_id"].lower(), r["assignment_id"].lower()))
        denies.sort(key=lambda r: (r["workspace_id"].lower(), r["deny_assignment_id"].lower()))
        eligible.sort(key=lambda r: (r["workspace_id"].lower(), r["eligibility_id"].lower()))
        return {"role_assignments": assignments, "deny_assignments": denies, "role_eligibility": eligible}


# ------------------------------------------------------------------------------------- helpers
def _listed_for_scope(responses: Sequence[RawResponse], pattern: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(the scope the list was asked for, item) for every item of every successful list page."""
    for response in responses:
        if not response.ok or not isinstance(response.body, dict):
            continue
        match = response.path_matches(pattern)
        if match is None:
            continue
        scope = match.group("scope").rstrip("/")
        for item in response.body.get("value") or ():
            if isinstance(item, dict):
                yield scope, item


def _role_names(responses: Sequence[RawResponse]) -> dict[str, tuple[str | None, str | None]]:
    """Role definition ID (lower-cased, and its GUID alone) -> (role name, role type)."""
    names: dict[str, tuple[str | None, str | None]] = {}
    for response in responses:
        if not response.ok or not isinstance(response.body, dict):
            continue
        if response.path_matches(_DEFINITION_PATH) is None:
            continue
        body = response.body
        props = body.get("properties") or {}
        value = (props.get("roleName"), props.get("type"))
        definition_id = str(body.get("id") or "")
        if definition_id:
            names[definition_id.lower()] = value
        guid = body.get("name") or _guid(definition_id)
        if guid:
            # A built-in role has the same GUID under every subscription; an assignment may
            # spell the definition ID under another subscription than the one we asked.
            names.setdefault(f"guid:{str(guid).lower()}", value)
    return names


def _definition_id(item: Mapping[str, Any]) -> str | None:
    """``properties.roleDefinitionId`` of a listed assignment or eligibility, when it is a string."""
    props = item.get("properties")
    value = props.get("roleDefinitionId") if isinstance(props, dict) else None
    return value if isinstance(value, str) else None


def _guid(definition_id: str | None) -> str | None:
    match = _GUID_TAIL.search(definition_id or "")
    return match.group("guid") if match else None


def _lookup(names: RoleNames, definition_id: str | None) -> tuple[str | None, str | None]:
    if not definition_id:
        return None, None
    found = names.get(definition_id.lower())
    if found is None:
        guid = _guid(definition_id)
        found = names.get(f"guid:{guid.lower()}") if guid else None
    return found or (None, None)


def _same_scope(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/").lower() == b.rstrip("/").lower()


def _dedupe(rows: list[Record], keys: tuple[str, ...]) -> list[Record]:
    """A page fetched twice (a retried nextLink) is still one row per workspace and ID."""
    seen: dict[tuple[str, ...], Record] = {}
    for row in rows:
        seen[tuple(str(row[k]).lower() for k in keys)] = row
    return list(seen.values())


# ------------------------------------------------------------------------------------- rows
def _assignment_row(item: dict[str, Any], workspace: str, names: RoleNames) -> Record:
    props = item.get("properties") or {}
    definition_id = props.get("roleDefinitionId")
    role_name, role_type = _lookup(names, definition_id)
    scope = props.get("scope")
    return {
        "assignment_id": str(item.get("id") or ""),
        "workspace_id": workspace,
        "scope": scope,
        "inherited": not _same_scope(scope, workspace),
        "principal_id": props.get("principalId"),
        "principal_type": props.get("principalType"),
        "role_definition_id": definition_id,
        "role_name": role_name,
        "role_type": role_type,
        "created_on": timestamp(props.get("createdOn")),
        "created_by": props.get("createdBy"),
        "updated_on": timestamp(props.get("updatedOn")),
        "updated_by": props.get("updatedBy"),
        "condition": props.get("condition"),
        "condition_version": props.get("conditionVersion"),
        "description": props.get("description"),
        "delegated_managed_identity_resource_id": props.get("delegatedManagedIdentityResourceId"),
    }


def _principals(values: Any) -> list[dict[str, Any]]:
    out = [
        {"id": p.get("id"), "type": p.get("type"), "display_name": p.get("displayName")}
        for p in (values or ())
        if isinstance(p, dict)
    ]
    return sorted(out, key=lambda p: (str(p["id"]).lower(), str(p["type"])))


def _permissions(values: Any) -> list[dict[str, list[str]]]:
    out = []
    for perm in values or ():
        if not isinstance(perm, dict):
            continue
        out.append(
            {
                "actions": list(perm.get("actions") or []),
                "not_actions": list(perm.get("notActions") or []),
                "data_actions": list(perm.get("dataActions") or []),
                "not_data_actions": list(perm.get("notDataActions") or []),
            }
        )
    return out


def _deny_row(item: dict[str, Any], workspace: str) -> Record:
    props = item.get("properties") or {}
    scope = props.get("scope")
    return {
        "deny_assignment_id": str(item.get("id") or ""),
        "workspace_id": workspace,
        "scope": scope,
        "inherited": not _same_scope(scope, workspace),
        "deny_assignment_name": props.get("denyAssignmentName"),
        "description": props.get("description"),
        "permissions": _permissions(props.get("permissions")),
        "principals": _principals(props.get("principals")),
        "exclude_principals": _principals(props.get("excludePrincipals")),
        "does_not_apply_to_child_scopes": props.get("doNotApplyToChildScopes"),
        "is_system_protected": props.get("isSystemProtected"),
        "condition": props.get("condition"),
        "created_on": timestamp(props.get("createdOn")),
        "created_by": props.get("createdBy"),
        "updated_on": timestamp(props.get("updatedOn")),
        "updated_by": props.get("updatedBy"),
    }


def _eligibility_row(item: dict[str, Any], workspace: str, names: RoleNames) -> Record:
    props = item.get("properties") or {}
    expanded = props.get("expandedProperties") or {}
    definition_id = props.get("roleDefinitionId")
    role_name, _ = _lookup(names, definition_id)
    if role_name is None:
        role_name = (expanded.get("roleDefinition") or {}).get("displayName")
    principal = expanded.get("principal") or {}
    scope = props.get("scope")
    return {
        "eligibility_id": str(item.get("id") or ""),
        "workspace_id": workspace,
        "scope": scope,
        "inherited": not _same_scope(scope, workspace),
        "principal_id": props.get("principalId"),
        "principal_type": props.get("principalType"),
        "principal_name": principal.get("displayName"),
        "role_definition_id": definition_id,
        "role_name": role_name,
        "member_type": props.get("memberType"),
        "status": props.get("status"),
        "start": timestamp(props.get("startDateTime")),
        "end": timestamp(props.get("endDateTime")),
        "condition": props.get("condition"),
        "condition_version": props.get("conditionVersion"),
        "created_on": timestamp(props.get("createdOn")),
        "schedule_id": props.get("roleEligibilityScheduleId"),
    }
