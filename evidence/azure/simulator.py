"""A simulated Azure Resource Manager: an in-process azure-core transport serving a tenant.

``SimulatedAzure(load_tenant(path))`` plugs into every SDK client through the same
``transport=`` seam as replay and recording, and answers the ARM requests the real SDKs make
(paths and api-versions measured by running the SDK calls against it; see
azure-sdk-feasibility.md section 2):

* azure-ai-ml ``MLClient``: model containers and versions (``listViewType`` honoured, so
  ``ListViewType.ALL`` sees archived versions), online endpoints and deployments;
* azure-mgmt-authorization: role assignments (``atScope()`` includes inherited assignments from
  the resource group, subscription and management group), role definitions, deny assignments,
  PIM eligibility schedule instances;
* azure-mgmt-monitor: the Activity Log (the documented ``$filter`` grammar, newest first,
  ~200 events per page) and metrics (deterministic series honouring timespan and interval).

Anything else gets a 404 with an ARM error body and is kept in ``unmatched`` for debugging (or
raises ``SimulatorMiss`` with ``strict=True``). Lists page through ``nextLink`` with per-kind page
sizes. For benchmarks there is per-request latency and the ARM read token bucket per subscription
(250, refilled at 25/s; ``x-ms-ratelimit-remaining-subscription-reads`` on every response, 429 with
``Retry-After`` when empty), driven by an injected clock and sleep so tests stay instant
(``VirtualTime``). Tests of failure handling inject ``Fault`` overrides per URL pattern.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from azure.core.pipeline.transport import HttpTransport

# Private module, but the base class azure-core's own transports build responses on; it serves
# both azure.core.rest callers and legacy ``.body()`` callers inside azure-ai-ml (as replay does).
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

from evidence.azure.sim import arm
from evidence.azure.sim.activity import ActivityLog, FilterError, parse_filter
from evidence.azure.sim.metrics import MetricsError, Target
from evidence.azure.sim.metrics import query as metrics_query
from evidence.azure.sim.tenant import (
    DEFAULT_PAGE_SIZES,
    Endpoint,
    Model,
    Tenant,
    TenantError,
    derived_id,
    load_tenant,
)
from evidence.errors import ReplayError

__all__ = [
    "Fault",
    "SimulatedAzure",
    "SimulatorMiss",
    "Tenant",
    "TenantError",
    "Throttle",
    "VirtualTime",
    "load_tenant",
]

Json = dict[str, Any]
_JSON = "application/json; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class SimulatorMiss(ReplayError):
    """``strict=True`` and no route answers this request: the simulator lacks an endpoint.

    A ``ReplayError`` so that azure-core does not retry it and collectors do not turn it into a gap.
    """


# -- time and throttling --------------------------------------------------------------------------
class VirtualTime:
    """A clock that moves only when something sleeps: throttle and latency cost no wall time."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)


@dataclass(frozen=True)
class Throttle:
    """ARM's read token bucket, per subscription (azure-limits.md 1.1)."""

    capacity: int = 250
    refill_per_second: float = 25.0


class _Bucket:
    def __init__(self, settings: Throttle, now: float) -> None:
        self.settings = settings
        self.tokens = float(settings.capacity)
        self.updated = now

    def take(self, now: float) -> tuple[bool, int, int]:
        """Consume one token: (allowed, remaining after, Retry-After seconds when refused)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.settings.capacity), self.tokens + elapsed * self.settings.refill_per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, int(self.tokens), 0
        wait = math.ceil((1.0 - self.tokens) / self.settings.refill_per_second)
        return False, 0, max(1, wait)


# -- faults ---------------------------------------------------------------------------------------
@dataclass
class Fault:
    """Answer requests whose decoded URL matches ``pattern`` (regex, case-insensitive) with this.

    ``body``: dict/list sent as JSON, str/bytes sent verbatim with ``content_type`` (so HTML pages
    and truncated JSON can be simulated), None for an empty body. ``times``: serve this many
    times, then stop matching (None: forever).
    """

    pattern: str
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = _JSON
    times: int | None = None
    method: str | None = None
    used: int = 0

    def matches(self, method: str, url: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.pattern, unquote(url), flags=re.IGNORECASE) is not None

    @classmethod
    def forbidden(cls, pattern: str, *, action: str = "the requested action", times: int | None = None) -> Fault:
        return cls(
            pattern,
            403,
            arm.error_body(
                "AuthorizationFailed",
                "The client 'evidence-collector' with object id '00000000-0000-0000-0000-00000000c011' does not "
                f"have authorization to perform action '{action}' over scope '(matched {pattern})' or the scope "
                "is invalid. If access was recently granted, please refresh your credentials.",
            ),
            times=times,
        )

    @classmethod
    def not_found(cls, pattern: str, *, times: int | None = None) -> Fault:
        return cls(pattern, 404, arm.error_body("ResourceNotFound", "The resource was not found."), times=times)

    @classmethod
    def throttled(cls, pattern: str, *, retry_after: int = 7, times: int | None = None) -> Fault:
        return cls(
            pattern,
            429,
            arm.error_body(
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - 'List'.",
            ),
            headers={"Retry-After": str(retry_after)},
            times=times,
        )

    @classmethod
    def server_error(cls, pattern: str, *, status: int = 500, times: int | None = None) -> Fault:
        return cls(pattern, status, arm.error_body("InternalServerError", "An internal error occurred."), times=times)

    @classmethod
    def html(cls, pattern: str, *, status: int = 200, times: int | None = None) -> Fault:
        page = "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>Gateway</body></html>"
        return cls(pattern, status, page, content_type="text/html", times=times)

    @classmethod
    def truncated_json(cls, pattern: str, *, times: int | None = None) -> Fault:
        return cls(pattern, 200, '{"value": [ {"id": "/subscriptions/trunc', times=times)


# -- responses ------------------------------------------------------------------------------------
class _SimResponse(HttpResponseImpl):
    """A fully-read in-memory azure-core response."""

    def __init__(self, request: Any, status: int, headers: Mapping[str, str], body: bytes) -> None:
        hdrs = case_insensitive_dict(dict(headers))
        super().__init__(
            request=request,
            internal_response=None,
            status_code=status,
            reason=_REASONS.get(status, "Status"),
            content_type=hdrs.get("Content-Type"),
            headers=hdrs,
            stream_download_generator=None,
        )
        self._content: bytes = body

    def close(self) -> None:
        self._is_closed = True

    def read(self) -> bytes:
        self._is_stream_consumed = True
        return self._content

    def iter_bytes(self, **kwargs: Any) -> Any:
        yield self._content

    def iter_raw(self, **kwargs: Any) -> Any:
        yield self._content


@dataclass(frozen=True)
class SimRequest:
    """One request the simulator answered (``route`` is None when nothing matched)."""

    method: str
    url: str
    status: int
    route: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any
    route: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = _JSON


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- routes ---------------------------------------------------------------------------------------
_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)"
_WS = _RG + r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
_EP = _WS + r"/onlineEndpoints/(?P<ep>[^/]+)"
_AUTH = r"(?P<scope>.*)/providers/Microsoft\.Authorization/"

_ROUTES: list[tuple[str, str]] = [
    ("workspaces", _RG + r"/providers/Microsoft\.MachineLearningServices/workspaces"),
    ("workspace", _WS),
    ("model_containers", _WS + r"/models"),
    ("model_container", _WS + r"/models/(?P<model>[^/]+)"),
    ("model_versions", _WS + r"/models/(?P<model>[^/]+)/versions"),
    ("model_version", _WS + r"/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)"),
    ("endpoints", _WS + r"/onlineEndpoints"),
    ("endpoint", _EP),
    ("deployments", _EP + r"/deployments"),
    ("deployment", _EP + r"/deployments/(?P<dep>[^/]+)"),
    ("metrics", r"(?P<resource>.*)/providers/Microsoft\.Insights/metrics"),
    ("activity_log", _SUB + r"/providers/Microsoft\.Insights/eventtypes/management/values"),
    ("role_assignments", _AUTH + r"roleAssignments"),
    ("role_definitions", _AUTH + r"roleDefinitions"),
    ("role_definition", _AUTH + r"roleDefinitions/(?P<guid>[^/]+)"),
    ("deny_assignments", _AUTH + r"denyAssignments"),
    ("eligible_assignments", _AUTH + r"roleEligibilityScheduleInstances"),
]
_COMPILED = [(name, re.compile(pattern + r"/?", re.IGNORECASE)) for name, pattern in _ROUTES]

#: What each route needs (for realistic 403 messages when a tenant forbids it).
_ACTIONS = {
    "eligible_assignments": "Microsoft.Authorization/roleEligibilityScheduleInstances/read",
    "role_assignments": "Microsoft.Authorization/roleAssignments/read",
    "deny_assignments": "Microsoft.Authorization/denyAssignments/read",
    "activity_log": "Microsoft.Insights/eventtypes/values/read",
    "metrics": "Microsoft.Insights/metrics/read",
}

_TOKEN_PARAM = {"activity_log": "$skiptoken"}
_PRINCIPAL_FILTER = re.compile(
    r"(?:principalId\s+eq\s+'?([0-9a-fA-F-]+)'?|assignedTo\('([0-9a-fA-F-]+)'\))", re.IGNORECASE
)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset={offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        key, _, value = text.partition("=")
        if key != "offset":
            raise ValueError(text)
        return int(value)
    except ValueError as exc:
        raise _HttpError(400, "InvalidSkipToken", f"The skip token '{token}' is not valid.") from exc


class SimulatedAzure(HttpTransport[Any, Any]):
    """An azure-core transport answering ARM requests from a ``Tenant``."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        latency: float = 0.0,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        page_sizes: Mapping[str, int] | None = None,
        faults: Iterable[Fault] = (),
        now: datetime | None = None,
        strict: bool = False,
    ) -> None:
        self.tenant = tenant
        self.latency = latency
        self.throttle = throttle
        self._clock = clock
        self._sleep = sleep
        self.page_sizes = {**DEFAULT_PAGE_SIZES, **tenant.page_sizes, **(page_sizes or {})}
        self.now = now or tenant.now
        self.strict = strict
        self._lock = threading.Lock()
        self._faults: list[Fault] = [Fault.forbidden(p, action=_action_for(p)) for p in tenant.forbidden]
        self._faults.extend(faults)
        self._buckets: dict[str, _Bucket] = {}
        self._seen: dict[str, int] = {}
        self._log: list[SimRequest] = []
        self._activity: ActivityLog | None = None

    # -- inspection ------------------------------------------------------------------------------
    @property
    def requests(self) -> list[SimRequest]:
        with self._lock:
            return list(self._log)

    @property
    def unmatched(self) -> list[str]:
        return [f"{r.method} {r.url}" for r in self.requests if r.route is None]

    def inject(self, fault: Fault) -> Fault:
        """Add a fault override (checked before any route); returns it so tests can read ``used``."""
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def activity_log(self) -> ActivityLog:
        if self._activity is None:
            self._activity = ActivityLog(self.tenant)
        return self._activity

    # -- HttpTransport ---------------------------------------------------------------------------
    def __enter__(self) -> SimulatedAzure:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def sleep(self, duration: float) -> None:
        # azure-core's retry back-off and Retry-After waits come here: the injected sleep decides
        # whether they cost wall time (real) or only move a VirtualTime.
        self._sleep(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        method = str(request.method).upper()
        url = str(request.url)
        if self.latency > 0:
            self._sleep(self.latency)
        subscription = _subscription_of(url)
        remaining: int | None = None
        answer: _Answer | None = None
        with self._lock:
            if self.throttle is not None:
                bucket = self._buckets.get(subscription)
                if bucket is None:
                    bucket = self._buckets[subscription] = _Bucket(self.throttle, self._clock())
                allowed, remaining, retry_after = bucket.take(self._clock())
                if not allowed:
                    answer = _Answer(
                        429,
                        arm.error_body(
                            "TooManyRequests",
                            "The request is being throttled as the limit has been reached for operation type - "
                            f"'Read'. Please retry after {retry_after} seconds.",
                        ),
                        "throttled",
                        headers={"Retry-After": str(retry_after), "x-ms-failure-cause": "gateway"},
                    )
            if answer is None:
                for fault in self._faults:
                    if fault.matches(method, url):
                        fault.used += 1
                        answer = _Answer(fault.status, fault.body, "fault", fault.headers, fault.content_type)
                        break
            key = f"{method} {url}"
            occurrence = self._seen.get(key, 0)
            self._seen[key] = occurrence + 1
        if answer is None:
            answer = self._answer(method, url)
        if answer.route is None and self.strict:
            with self._lock:
                self._log.append(SimRequest(method, url, answer.status, None))
            raise SimulatorMiss(f"the simulator has no route for {method} {url}", hint="add a route or a Fault")
        request_id = derived_id("request", key, str(occurrence))
        headers = {
            "Content-Type": answer.content_type,
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request_id,
            **answer.headers,
        }
        if remaining is not None:
            headers["x-ms-ratelimit-remaining-subscription-reads"] = str(remaining)
        body = answer.body
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        with self._lock:
            self._log.append(SimRequest(method, url, answer.status, answer.route))
        return _SimResponse(request, answer.status, headers, raw)

    # -- routing ---------------------------------------------------------------------------------
    def _answer(self, method: str, url: str) -> _Answer:
        parts = urlsplit(url)
        path = re.sub(r"/{2,}", "/", unquote(parts.path))
        query = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        for name, pattern in _COMPILED:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if method != "GET":
                return _Answer(
                    405, arm.error_body("MethodNotAllowed", f"The simulator only reads: {method} {path}"), name
                )
            if "api-version" not in query:
                return _Answer(
                    400,
                    arm.error_body(
                        "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all requests.",
                    ),
                    name,
                )
            try:
                body = getattr(self, f"_r_{name}")(m.groupdict(), query, url)
            except _HttpError as err:
                return _Answer(err.status, arm.error_body(err.code, err.message), name)
            return _Answer(200, body, name)
        return _Answer(
            404,
            arm.error_body("NotFound", f"The simulated Resource Manager has no route for {method} {path}."),
            None,
        )

    # -- paging ----------------------------------------------------------------------------------
    def _page(self, kind: str, items: Sequence[Json], query: Mapping[str, str], url: str) -> Json:
        param = _TOKEN_PARAM.get(kind, "$skipToken")
        token = query.get(param.lower())
        offset = _decode_token(token) if token else 0
        size = max(1, int(self.page_sizes.get(kind, 100)))
        page: Json = {"value": list(items[offset : offset + size])}
        if offset + size < len(items):
            parts = urlsplit(url)
            pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != param.lower()]
            pairs.append((param, _encode_token(offset + size)))
            next_query = urlencode(pairs, quote_via=quote, safe="$'():,")
            page["nextLink"] = urlunsplit((parts.scheme, parts.netloc, parts.path, next_query, ""))
        return page

    # -- scope checks ----------------------------------------------------------------------------
    def _check_sub(self, sub: str) -> None:
        if sub.lower() != self.tenant.subscription_id.lower():
            raise _HttpError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def _check_rg(self, g: Mapping[str, str]) -> None:
        self._check_sub(g["sub"])
        if g["rg"].lower() != self.tenant.resource_group.lower():
            raise _HttpError(404, "ResourceGroupNotFound", f"Resource group '{g['rg']}' could not be found.")

    def _check_ws(self, g: Mapping[str, str]) -> str:
        self._check_rg(g)
        ws = self.tenant.workspace(g["ws"])
        if ws is None:
            raise _HttpError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{g['ws']}' under resource group "
                f"'{g['rg']}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return ws.name

    def _models(self, ws: str) -> list[Model]:
        return sorted((m for m in self.tenant.models if m.workspace == ws), key=lambda m: m.name)

    def _model(self, ws: str, name: str) -> Model:
        for m in self._models(ws):
            if m.name.lower() == name.lower():
                return m
        raise _HttpError(404, "UserError", f"Could not find asset with ID: azureml:{name}")

    def _endpoints(self, ws: str) -> list[Endpoint]:
        return sorted((e for e in self.tenant.endpoints if e.workspace == ws), key=lambda e: e.name)

    def _endpoint(self, ws: str, name: str) -> Endpoint:
        for e in self._endpoints(ws):
            if e.name.lower() == name.lower():
                return e
        raise _HttpError(404, "UserError", f"No online endpoint found with name {name}")

    # -- Azure ML --------------------------------------------------------------------------------
    def _r_workspaces(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        self._check_rg(g)
        items = [arm.workspace_body(self.tenant, w.name) for w in sorted(self.tenant.workspaces, key=lambda w: w.name)]
        return self._page("workspaces", items, q, url)

    def _r_workspace(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        return arm.workspace_body(self.tenant, self._check_ws(g))

    @staticmethod
    def _view(q: Mapping[str, str]) -> Callable[[bool], bool]:
        view = q.get("listviewtype", "ActiveOnly").lower()
        if view not in ("activeonly", "archivedonly", "all"):
            raise _HttpError(400, "UserError", f"Invalid listViewType '{q.get('listviewtype')}'.")
        return {"activeonly": lambda a: not a, "archivedonly": lambda a: a, "all": lambda a: True}[view]

    def _r_model_containers(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        ws = self._check_ws(g)
        keep = self._view(q)
        items = [arm.model_container_body(self.tenant, m) for m in self._models(ws) if keep(m.archived)]
        return self._page("models", items, q, url)

    def _r_model_container(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        return arm.model_container_body(self.tenant, self._model(self._check_ws(g), g["model"]))

    def _r_model_versions(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        ws = self._check_ws(g)
        model = self._model(ws, g["model"])
        keep = self._view(q)
        versions = [v for v in model.versions if keep(v.archived or model.archived)]
        if "stage" in q:
            versions = [v for v in versions if v.stage.lower() == q["stage"].lower()]
        if "version" in q:
            versions = [v for v in versions if v.version == q["version"]]
        order = q.get("$orderby", "").lower().replace("%20", " ")
        if order.startswith("createdtime"):
            versions.sort(key=lambda v: v.created_at, reverse=order.endswith("desc"))
        else:
            # The service lists newest first; versions are compared numerically when they are numbers.
            versions.sort(key=_version_key, reverse=True)
        if "$top" in q:
            versions = versions[: int(q["$top"])]
        items = [arm.model_version_body(self.tenant, model, v) for v in versions]
        return self._page("model_versions", items, q, url)

    def _r_model_version(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        model = self._model(self._check_ws(g), g["model"])
        for v in model.versions:
            if v.version == g["version"]:
                return arm.model_version_body(self.tenant, model, v)
        raise _HttpError(404, "UserError", f"Could not find asset with ID: azureml:{model.name}:{g['version']}")

    def _r_endpoints(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        ws = self._check_ws(g)
        items = [arm.endpoint_body(self.tenant, e) for e in self._endpoints(ws)]
        return self._page("endpoints", items, q, url)

    def _r_endpoint(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        return arm.endpoint_body(self.tenant, self._endpoint(self._check_ws(g), g["ep"]))

    def _r_deployments(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        e = self._endpoint(self._check_ws(g), g["ep"])
        items = [arm.deployment_body(self.tenant, e, d) for d in sorted(e.deployments, key=lambda d: d.name)]
        return self._page("deployments", items, q, url)

    def _r_deployment(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        e = self._endpoint(self._check_ws(g), g["ep"])
        for d in e.deployments:
            if d.name.lower() == g["dep"].lower():
                return arm.deployment_body(self.tenant, e, d)
        raise _HttpError(404, "UserError", f"No online deployment found with name {g['dep']}")

    # -- Monitor ---------------------------------------------------------------------------------
    def _r_activity_log(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        self._check_sub(g["sub"])
        try:
            flt = parse_filter(q.get("$filter"))
        except FilterError as exc:
            raise _HttpError(400, "BadRequest", str(exc)) from exc
        events = self.activity_log.query(flt, self.now)
        select = [s.strip() for s in q.get("$select", "").split(",") if s.strip()]
        if select:
            events = [{k: v for k, v in e.items() if k in select} for e in events]
        return self._page("activity_log", events, q, url)

    def _r_metrics(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        resource = "/" + g["resource"].strip("/")
        m = re.fullmatch(_EP + r"(?:/deployments/(?P<dep>[^/]+))?", resource, flags=re.IGNORECASE)
        if m is None:
            raise _HttpError(404, "ResourceNotFound", f"The simulator has no metrics for '{resource}'.")
        e = self._endpoint(self._check_ws(m.groupdict()), m["ep"])
        deployment = None
        if m["dep"]:
            found = [d for d in e.deployments if d.name.lower() == m["dep"].lower()]
            if not found:
                raise _HttpError(404, "ResourceNotFound", f"The resource '{resource}' was not found.")
            deployment = found[0]
        rid = f"{self.tenant.workspace_id(e.workspace)}/onlineEndpoints/{e.name}"
        if deployment is not None:
            rid += f"/deployments/{deployment.name}"
        try:
            return metrics_query(
                self.tenant,
                Target(rid, e, deployment),
                timespan=q.get("timespan"),
                interval=q.get("interval"),
                metricnames=q.get("metricnames"),
                aggregation=q.get("aggregation"),
                flt=q.get("$filter"),
                metricnamespace=q.get("metricnamespace"),
            )
        except MetricsError as exc:
            raise _HttpError(400, "BadRequest", str(exc)) from exc

    # -- Authorization ---------------------------------------------------------------------------
    def _scope(self, g: Mapping[str, str]) -> str:
        scope = "/" + g["scope"].strip("/") if g["scope"].strip("/") else ""
        m = re.match(_SUB, scope, flags=re.IGNORECASE)
        if m:
            self._check_sub(m["sub"])
            rg = re.match(_RG, scope, flags=re.IGNORECASE)
            if rg:
                self._check_rg(rg.groupdict())
                ws = re.match(_WS, scope, flags=re.IGNORECASE)
                if ws:
                    self._check_ws(ws.groupdict())
        return scope

    def _relation(self, scope: str, candidate: str) -> str:
        """'at', 'above', 'below' or '' for ``candidate`` relative to the request ``scope``."""
        s, c = scope.lower().rstrip("/"), candidate.lower().rstrip("/")
        mg = self.tenant.management_group_id.lower()
        if s == c:
            return "at"
        if c in ("", "/") or (c == mg and s.startswith("/subscriptions/")) or s.startswith(c + "/"):
            return "above"
        if c.startswith(s + "/") or (s == mg and c.startswith("/subscriptions/")) or s == "":
            return "below"
        return ""

    def _visible(self, scope: str, candidate: str, principal_id: str, flt: str | None) -> bool:
        rel = self._relation(scope, candidate)
        if not rel:
            return False
        if not flt:
            return True
        text = flt.strip()
        if text.lower() == "atscope()":
            return rel in ("at", "above")
        m = _PRINCIPAL_FILTER.fullmatch(text)
        if m:
            return principal_id.lower() == (m.group(1) or m.group(2)).lower()
        if text.lower() == "asTarget()".lower():
            return True
        raise _HttpError(400, "UnsupportedQuery", f"The filter '{flt}' is not supported.")

    def _r_role_assignments(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        scope = self._scope(g)
        t = self.tenant
        items = [
            arm.role_assignment_body(t, r)
            for r in sorted(t.role_assignments, key=lambda r: (len(t.scope_id(r.scope)), r.id))
            if self._visible(scope, t.scope_id(r.scope), t.principal(r.principal).id, q.get("$filter"))
        ]
        return self._page("role_assignments", items, q, url)

    def _r_role_definitions(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        self._scope(g)
        items = [b for guid in sorted(arm.ROLE_BY_GUID) if (b := arm.role_definition_body(self.tenant, guid))]
        flt = q.get("$filter")
        if flt:
            m = re.fullmatch(r"roleName\s+eq\s+'([^']*)'", flt.strip(), re.IGNORECASE)
            if m is None:
                raise _HttpError(400, "UnsupportedQuery", f"The filter '{flt}' is not supported.")
            items = [b for b in items if b["properties"]["roleName"] == m.group(1)]
        return self._page("role_definitions", items, q, url)

    def _r_role_definition(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        self._scope(g)
        body = arm.role_definition_body(self.tenant, g["guid"])
        if body is None:
            raise _HttpError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{g['guid']}' does not exist.",
            )
        return body

    def _r_deny_assignments(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        scope = self._scope(g)
        t = self.tenant
        items = [
            arm.deny_assignment_body(t, d)
            for d in sorted(t.deny_assignments, key=lambda d: d.id)
            if self._visible(scope, t.scope_id(d.scope), "", q.get("$filter"))
        ]
        return self._page("deny_assignments", items, q, url)

    def _r_eligible_assignments(self, g: Mapping[str, str], q: Mapping[str, str], url: str) -> Json:
        scope = self._scope(g)
        t = self.tenant
        items = [
            arm.eligible_assignment_body(t, e)
            for e in sorted(t.eligible_assignments, key=lambda e: e.id)
            if self._visible(scope, t.scope_id(e.scope), t.principal(e.principal).id, q.get("$filter"))
        ]
        return self._page("eligible_assignments", items, q, url)


def _version_key(v: Any) -> tuple[bool, int, str]:
    return (v.version.isdigit(), int(v.version) if v.version.isdigit() else 0, v.version)


def _subscription_of(url: str) -> str:
    m = re.search(r"/subscriptions/([^/?]+)", unquote(urlsplit(url).path), flags=re.IGNORECASE)
    return m.group(1).lower() if m else "tenant"


def _action_for(pattern: str) -> str:
    for name, action in _ACTIONS.items():
        if name.replace("_", "").lower() in pattern.replace("_", "").lower():
            return action
    lowered = pattern.lower()
    if "roleeligibility" in lowered:
        return _ACTIONS["eligible_assignments"]
    return "the requested action"
