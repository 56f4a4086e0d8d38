"""The Activity Log of a simulated tenant: events derived from the description, and the filter.

Every write the description implies (a model version registered, an endpoint or deployment
written, a traffic split changed, a role assignment created) becomes a ``Started`` + ``Succeeded``
pair of ``EventData`` sharing a correlation id, as Resource Manager logs them. Shape from the REST
spec example ``monitor/.../2015-04-01/examples/GetActivityLogsFiltered.json``.

The ``$filter`` grammar is the restricted one the REST API documents (azure-limits.md 3.2):
``eventTimestamp ge '…' and eventTimestamp le '…'`` optionally followed by exactly one of
``resourceGroupName``, ``resourceUri``, ``resourceProvider`` or ``correlationId`` ``eq '…'``.
Anything else is refused with 400, as Azure does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from evidence.azure.sim.arm import ML, role_assignment_body
from evidence.azure.sim.tenant import BUILTIN_ROLES, Tenant, derived_id
from evidence.clock import isoformat, parse_timestamp

Json = dict[str, Any]

#: Events older than this are gone (azure-limits.md 3.1).
RETENTION = timedelta(days=90)

#: Client app ids seen in claims: Azure CLI for people; the pipeline signs in as itself.
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

_LOCALIZED = {
    f"{ML}/workspaces/models/versions/write": "Create or Update Model Versions",
    f"{ML}/workspaces/models/write": "Create or Update Models",
    f"{ML}/workspaces/onlineEndpoints/write": "Create or Update Online Endpoints",
    f"{ML}/workspaces/onlineEndpoints/deployments/write": "Create or Update Online Deployments",
    f"{ML}/workspaces/onlineEndpoints/deployments/delete": "Delete Online Deployments",
    f"{ML}/workspaces/jobs/write": "Create or Update Jobs",
    "Microsoft.Authorization/roleAssignments/write": "Create role assignment",
    "Microsoft.Authorization/roleAssignments/delete": "Delete role assignment",
}
_PROVIDER_NAMES = {
    ML.lower(): "Microsoft Machine Learning Services",
    "microsoft.authorization": "Microsoft Authorization",
}


class FilterError(ValueError):
    """The ``$filter`` is outside the grammar the Activity Log accepts."""


@dataclass(frozen=True)
class ActivityFilter:
    start: datetime
    end: datetime
    field: str | None = None  # resourcegroupname | resourceuri | resourceprovider | correlationid
    value: str | None = None

    def matches(self, event: Json) -> bool:
        ts = parse_timestamp(event["eventTimestamp"])
        if ts < self.start or ts > self.end:
            return False
        if self.field is None or self.value is None:
            return True
        wanted = self.value.lower()
        if self.field == "resourcegroupname":
            return str(event.get("resourceGroupName") or "").lower() == wanted
        if self.field == "resourceuri":
            return str(event.get("resourceId") or "").lower() == wanted
        if self.field == "resourceprovider":
            return str(event["resourceProviderName"]["value"]).lower() == wanted
        return str(event.get("correlationId") or "").lower() == wanted


_QUOTED = r"'([^']*)'"
_FILTER = re.compile(
    rf"^\s*eventTimestamp\s+ge\s+{_QUOTED}\s+and\s+eventTimestamp\s+le\s+{_QUOTED}"
    rf"(?:\s+and\s+(resourceGroupName|resourceUri|resourceProvider|correlationId)\s+eq\s+{_QUOTED})?\s*$",
    re.IGNORECASE,
)


def parse_filter(text: str | None) -> ActivityFilter:
    if not text:
        raise FilterError("The $filter query parameter is required and must contain an eventTimestamp range.")
    m = _FILTER.match(text)
    if m is None:
        raise FilterError(
            f"The filter '{text}' is not supported. Supported: eventTimestamp ge '<start>' and eventTimestamp le "
            "'<end>' [and (resourceGroupName|resourceUri|resourceProvider|correlationId) eq '<value>']."
        )
    try:
        start, end = parse_timestamp(m.group(1)), parse_timestamp(m.group(2))
    except ValueError as exc:
        raise FilterError(f"The filter contains an invalid timestamp: {exc}") from exc
    if end < start:
        raise FilterError("The end time of the filter must be after its start time.")
    field = m.group(3).lower() if m.group(3) else None
    return ActivityFilter(start=start, end=end, field=field, value=m.group(4))


def _ticks(at: datetime) -> int:
    # .NET ticks (100 ns since 0001-01-01), as in Activity Log event ids.
    delta = at - datetime(1, 1, 1, tzinfo=at.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _timestamp(at: datetime) -> str:
    # Azure writes 7 fractional digits; keep that realism (parse_timestamp reads it).
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}0Z"


class ActivityLog:
    """All events of a tenant, newest first, built once."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.events: list[Json] = []
        self._derive()
        # Newest first, as Azure returns them; ties broken by id so the order is total.
        self.events.sort(key=lambda e: (e["eventTimestamp"], e["eventDataId"]), reverse=True)

    def query(self, flt: ActivityFilter, now: datetime) -> list[Json]:
        oldest = now - RETENTION
        return [e for e in self.events if flt.matches(e) and oldest <= parse_timestamp(e["eventTimestamp"]) <= now]

    # -- derivation ------------------------------------------------------------------------------
    def _derive(self) -> None:
        t = self.tenant
        for m in t.models:
            for v in m.versions:
                rid = f"{t.workspace_id(m.workspace)}/models/{m.name}/versions/{v.version}"
                self._write(v.created_at, f"{ML}/workspaces/models/versions/write", rid, v.created_by, "PUT", 201)
                if v.modified_at and v.modified_by:
                    self._write(v.modified_at, f"{ML}/workspaces/models/versions/write", rid, v.modified_by, "PUT", 200)
        for e in t.endpoints:
            eid = f"{t.workspace_id(e.workspace)}/onlineEndpoints/{e.name}"
            self._write(e.created_at, f"{ML}/workspaces/onlineEndpoints/write", eid, e.created_by, "PUT", 201)
            for u in e.traffic_updates:
                self._write(u.at, f"{ML}/workspaces/onlineEndpoints/write", eid, u.by, "PUT", 200)
            for d in e.deployments:
                did = f"{eid}/deployments/{d.name}"
                op = f"{ML}/workspaces/onlineEndpoints/deployments/write"
                self._write(d.created_at, op, did, d.created_by, "PUT", 201)
                if d.modified_at and d.modified_by:
                    self._write(d.modified_at, op, did, d.modified_by, "PUT", 200)
        for r in t.role_assignments:
            if not r.activity_logged:
                continue
            body = role_assignment_body(t, r)
            principal = t.principal(r.principal)
            request = {
                "Id": r.id,
                "Properties": {
                    "PrincipalId": principal.id,
                    "PrincipalType": principal.type,
                    "RoleDefinitionId": t.role_definition_id(r.role),
                    "Scope": t.scope_id(r.scope),
                    "Condition": r.condition,
                    "ConditionVersion": "2.0" if r.condition else None,
                },
            }
            self._write(
                r.created_on,
                "Microsoft.Authorization/roleAssignments/write",
                body["id"],
                r.created_by,
                "PUT",
                201,
                request_body=request,
                response_body=body,
            )
        for a in t.activity:
            rid = t.scope_id(a.resource)
            method = "DELETE" if a.operation.endswith("/delete") else "PUT"
            self._write(
                a.at,
                a.operation,
                rid,
                a.caller,
                method,
                200,
                status=a.status,
                request_body=a.request_body,
                resource_group=a.resource_group,
            )
        for rec in t.recurring:
            at, n = rec.start, 1
            while at < rec.end:
                rid = t.scope_id(rec.resource.replace("{n}", f"{n:04d}"))
                self._write(at, rec.operation, rid, rec.caller, "PUT", 201)
                at, n = at + rec.every, n + 1

    def _write(
        self,
        at: datetime,
        operation: str,
        resource_id: str,
        caller_name: str,
        method: str,
        code: int,
        *,
        status: str = "Succeeded",
        request_body: Any = None,
        response_body: Any = None,
        resource_group: str | None = None,
    ) -> None:
        t = self.tenant
        caller = t.principal(caller_name)
        correlation = derived_id("correlation", operation, resource_id, isoformat(at))
        provider = operation.split("/", 1)[0]
        parts = resource_id.split("/")
        rg = resource_group
        if rg is None:
            rg = parts[4] if len(parts) > 4 and parts[3].lower() == "resourcegroups" else ""
        resource_type = "/".join([provider, *operation.split("/")[1:-1]])
        ip = f"203.0.113.{(sum(caller.id.encode()) % 200) + 10}" if caller.type == "User" else "20.61.129.4"
        hierarchy = f"{t.tenant_id}/{t.management_group}/{t.subscription_id}"
        common: Json = {
            "authorization": {"action": operation, "scope": resource_id, **self._evidence(caller_name, resource_id)},
            "caller": caller.name if caller.type == "User" else caller.id,
            "channels": "Operation",
            "claims": self._claims(caller_name, ip),
            "correlationId": correlation,
            "description": "",
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "level": "Informational",
            "operationName": {"value": operation, "localizedValue": _LOCALIZED.get(operation, operation)},
            "resourceGroupName": rg,
            "resourceProviderName": {
                "value": provider,
                "localizedValue": _PROVIDER_NAMES.get(provider.lower(), provider),
            },
            "resourceType": {"value": resource_type, "localizedValue": resource_type},
            "resourceId": resource_id,
            "subscriptionId": t.subscription_id,
            "tenantId": t.tenant_id,
        }
        phases: list[tuple[str, datetime, int | None]] = [
            ("Started", at, None),
            (status, at + timedelta(seconds=2, milliseconds=417), code),
        ]
        for phase, when, status_code in phases:
            event_id = derived_id("event", correlation, phase)
            props: dict[str, str] = {
                "eventCategory": "Administrative",
                "entity": resource_id,
                "message": operation,
                "hierarchy": hierarchy,
            }
            if phase == "Started" and request_body is not None:
                # Resource Manager logs the request body as a JSON *string* (azure-limits.md 3.3).
                props["requestbody"] = json.dumps(request_body, separators=(",", ":"))
            if phase != "Started":
                props["statusCode"] = "Created" if status_code == 201 else ("OK" if status != "Failed" else "Conflict")
                props["serviceRequestId"] = derived_id("service-request", correlation)
                if response_body is not None:
                    props["responseBody"] = json.dumps(response_body, separators=(",", ":"))
            http_code = status_code if status != "Failed" else 409
            sub_status = (
                {"value": "", "localizedValue": ""}
                if phase == "Started"
                else {
                    "value": props["statusCode"],
                    "localizedValue": f"{props['statusCode']} (HTTP Status Code: {http_code})",
                }
            )
            self.events.append(
                {
                    **common,
                    "eventDataId": event_id,
                    "eventName": (
                        {"value": "BeginRequest", "localizedValue": "Begin request"}
                        if phase == "Started"
                        else {"value": "EndRequest", "localizedValue": "End request"}
                    ),
                    "httpRequest": {
                        "clientRequestId": derived_id("client-request", correlation),
                        "clientIpAddress": ip,
                        "method": method,
                    },
                    "id": f"{resource_id}/events/{event_id}/ticks/{_ticks(when)}",
                    "operationId": derived_id("operation", correlation),
                    "properties": props,
                    "status": {"value": phase, "localizedValue": phase},
                    "subStatus": sub_status,
                    "eventTimestamp": _timestamp(when),
                    "submissionTimestamp": _timestamp(when + timedelta(seconds=17)),
                }
            )

    def _claims(self, name: str, ip: str) -> dict[str, str]:
        t = self.tenant
        p = t.principal(name)
        claims = {
            "aud": "https://management.core.windows.net/",
            "iss": f"https://sts.windows.net/{t.tenant_id}/",
            "http://schemas.microsoft.com/identity/claims/tenantid": t.tenant_id,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": p.id,
            "ver": "1.0",
        }
        if p.type == "User":
            claims.update(
                {
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": p.name,
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": p.name,
                    "name": p.display_name or p.name,
                    "appid": AZURE_CLI_APP_ID,
                    "appidacr": "0",
                    "ipaddr": ip,
                    "http://schemas.microsoft.com/claims/authnmethodsreferences": "pwd,mfa",
                    "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation",
                }
            )
        else:
            claims.update({"appid": p.app_id or p.id, "appidacr": "2", "idtyp": "app"})
        return claims

    def _evidence(self, caller_name: str, resource_id: str) -> dict[str, Any]:
        """``authorization.evidence``: the assignment that let the caller act, when there is one."""
        t = self.tenant
        caller = t.principal(caller_name)
        lowered = resource_id.lower()
        best = None
        for r in t.role_assignments:
            if r.principal != caller_name:
                continue
            scope = t.scope_id(r.scope)
            s = scope.lower()
            covers = lowered == s or lowered.startswith(s + "/") or s.startswith("/providers/microsoft.management/")
            if covers and (best is None or len(t.scope_id(best.scope)) < len(scope)):
                best = r
        if best is None:
            return {}
        scope = t.scope_id(best.scope)
        return {
            "evidence": {
                "role": best.role,
                "roleAssignmentScope": scope,
                "roleAssignmentId": best.id.replace("-", ""),
                "roleDefinitionId": BUILTIN_ROLES[best.role].replace("-", ""),
                "principalId": caller.id.replace("-", ""),
                "principalType": caller.type,
            }
        }
