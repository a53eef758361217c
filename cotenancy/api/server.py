"""The open API: an HTTP JSON service other programs use to read predictions and steer allocation.

Standard library only (``http.server`` with a thread per connection): the API is small, serves a
handful of operators' tools, and must not add a web framework to every cloud controller.
Everything is under ``/v1``; the OpenAPI 3 document at ``/v1/openapi.yaml`` describes each route
and ``tests/functional/api`` checks the two agree.

Safety: loopback by default, and any other address only with ``[api] auth_token`` set; bearer
tokens are compared in constant time; bodies are size-limited and validated field by field; an
error never carries a stack trace to the client (the server log has it).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from oslo_config import cfg

from cotenancy.api import idempotency
from cotenancy.api.predictions import QUANTILE_DECIMALS, Predictions, quantile_levels
from cotenancy.conf import api as api_conf
from cotenancy.exceptions import ConfigurationError, NotFound, SchemaMismatch
from cotenancy.model import VM, ActionPlan, Event, EventKind, Host, StepStatus
from cotenancy.plan.report import plan_to_dict
from cotenancy.store import HistoryStore
from cotenancy.store.idempotency import IdempotencyKey, KeyReused
from cotenancy.store.requests import (
    CONTROL_MESSAGE,
    Conflict,
    InvalidRequest,
    Request,
    RequestKind,
    RequestStore,
    check_encodable,
    parse_time,
    unknown_references,
)
from cotenancy.text import CONTROL_CHARACTERS, escape_controls

LOG = logging.getLogger(__name__)

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.yaml"
JSON_TYPE = "application/json"
#: default window of GET /v1/events when ``since`` is not given
DEFAULT_EVENTS_SECONDS = 86400.0
#: ``until`` when not given: later than any clock, simulated or real
FAR_FUTURE = 1e15
MAX_QUANTILES = 9
#: each pair shown gets its own explanation (SHAP values), so the page of pair risks is capped
MAX_PAIRS = 200

COLLECTIONS = {
    "hints": RequestKind.HINT,
    "rules": RequestKind.RULE,
    "drains": RequestKind.DRAIN,
    "critical": RequestKind.CRITICAL,
}


class ApiError(Exception):
    """An answer other than success, with the field of the request that caused it."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": int(self.status),
            "title": self.status.phrase,
            "message": self.message,
        }
        if self.field is not None:
            error["field"] = self.field
        return {"error": error | self.details}


@dataclass(slots=True)
class Reply:
    status: HTTPStatus
    payload: Any
    content_type: str = JSON_TYPE
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Call:
    """What a handler sees of a request: path parameters, query and parsed JSON body."""

    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any = None
    #: the Idempotency-Key header of a POST, when given
    idempotency_key: str | None = None

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ApiError(HTTPStatus.BAD_REQUEST, "give this query parameter once", name)
        return values[0]

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.one(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "expected an integer", name) from None
        if not low <= value <= high:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"must be between {low} and {high}", name)
        return value

    def time(self, name: str) -> float | None:
        raw = self.one(name)
        if raw is None:
            return None
        try:
            number = float(raw)
        except ValueError:
            number = None
        try:
            return parse_time(number if number is not None and math.isfinite(number) else raw, name)
        except InvalidRequest as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.message, name) from None

    def flag(self, name: str) -> bool:
        raw = self.one(name)
        if raw is None:
            return False
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ApiError(HTTPStatus.BAD_REQUEST, "expected true or false", name)


@dataclass(slots=True)
class Route:
    method: str
    template: str
    handler: Callable[[Call], Reply]
    query: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.pattern = re.compile(f"^{regex}$")


# serialisation ------------------------------------------------------------------------------


def host_to_dict(host: Host, drained: bool) -> dict[str, Any]:
    return {
        "id": host.id,
        "name": host.name,
        "capacity": host.capacity.as_dict(),
        "cluster": host.cluster,
        "maintenance": host.maintenance,
        "drain_requested": drained,
        "power_model": host.power_model,
        "attributes": dict(host.attributes),
    }


def vm_to_dict(vm: VM, critical_requested: bool) -> dict[str, Any]:
    allocation = vm.allocation
    return {
        "id": vm.id,
        "name": vm.name,
        "host_id": vm.host_id,
        "state": vm.state.value,
        "size": vm.size.as_dict(),
        "vcpus": vm.vcpus,
        "allocation": {
            "reservation": allocation.reservation.as_dict(),
            "limit": allocation.limit.as_dict() if allocation.limit is not None else None,
            "shares": allocation.shares,
        },
        "tenant": vm.tenant,
        "workload": {
            "app_type": vm.workload.app_type,
            "priority": vm.workload.priority,
            "security_level": vm.workload.security_level,
        },
        "critical": vm.critical,
        "critical_requested": critical_requested,
        "flavor": vm.flavor,
        "attributes": dict(vm.attributes),
        "migration_target": vm.migration_target,
    }


def plan_status(plan: ActionPlan) -> str:
    """One word for a plan, from its steps' statuses."""
    statuses = {a.status for a in plan.actions}
    finished = {StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.CANCELLED}
    if not statuses:
        return "empty"
    if StepStatus.RUNNING in statuses:
        return "running"
    if StepStatus.FAILED in statuses:
        return "failed"
    if statuses <= finished:
        return "done"
    if statuses == {StepStatus.PENDING}:
        return "pending"
    if statuses <= finished | {StepStatus.SCHEDULED}:
        return "scheduled"
    return "running"


def plan_summary(plan: ActionPlan) -> dict[str, Any]:
    full = plan_to_dict(plan)
    return {
        "id": plan.id,
        "strategy": plan.strategy,
        "created_at": plan.created_at,
        "status": plan_status(plan),
        "steps": len(plan.actions),
        "expected_benefit": sum(float(a.expected_benefit) for a in plan.actions),
        "stats": full["stats"],
    }


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "timestamp": event.timestamp,
        "kind": event.kind.value,
        "vm_ids": list(event.vm_ids),
        "host_id": event.host_id,
        "duration": event.duration,
        "severity": event.severity,
        "resource": event.resource,
        "message": event.message,
        "source": event.source,
        "details": dict(event.details),
    }


# the application ----------------------------------------------------------------------------


class Api:
    """Routes and handlers, independent of the HTTP server that carries them."""

    def __init__(self, conf: cfg.ConfigOpts, store: HistoryStore, clock: Callable[[], float] = time.time):
        conf.register_opts(api_conf.OPTS, group=api_conf.GROUP)
        self.conf = conf
        self.options = conf.api
        self.store = store
        self.requests = RequestStore(store)
        self.clock = clock
        self.predictions = Predictions(conf, store, clock)
        self.max_list = int(self.options.max_list)
        self.key_lifetime = float(self.options.idempotency_key_lifetime)
        self.routes = self._routes()

    def _routes(self) -> list[Route]:
        routes = [
            Route("GET", "/v1", self.version),
            Route("GET", "/v1/openapi.yaml", self.openapi),
            Route("GET", "/v1/hosts", self.list_hosts),
            Route("GET", "/v1/hosts/{host_id}", self.get_host),
            Route("GET", "/v1/vms", self.list_vms, frozenset({"host_id"})),
            Route("GET", "/v1/vms/{vm_id}", self.get_vm),
            Route("GET", "/v1/plans", self.list_plans, frozenset({"limit", "strategy"})),
            Route("GET", "/v1/plans/{plan_id}", self.get_plan),
            Route(
                "GET",
                "/v1/events",
                self.list_events,
                frozenset({"since", "until", "kind", "vm_id", "host_id", "limit"}),
            ),
            Route("GET", "/v1/predictions/pairs", self.pair_risks, frozenset({"vm_id", "limit", "at"})),
            Route(
                "GET",
                "/v1/predictions/forecast/{vm_id}",
                self.forecast,
                frozenset({"horizon", "quantiles", "at"}),
            ),
        ]
        for collection, kind in COLLECTIONS.items():
            routes += [
                Route("GET", f"/v1/{collection}", self._lister(kind), frozenset({"all"})),
                Route("POST", f"/v1/{collection}", self._creator(kind, collection)),
                Route("GET", f"/v1/{collection}/{{request_id}}", self._getter(kind)),
                Route("DELETE", f"/v1/{collection}/{{request_id}}", self._deleter(kind)),
            ]
        return routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route in self.routes:
            found = route.pattern.match(path) if route.pattern else None
            if found is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource: {path[:200]}")

    # read ---------------------------------------------------------------------------------

    def version(self, call: Call) -> Reply:
        return Reply(
            HTTPStatus.OK,
            {
                "version": "v1",
                "openapi": "/v1/openapi.yaml",
                "links": sorted({r.template for r in self.routes}),
            },
        )

    def openapi(self, call: Call) -> Reply:
        return Reply(HTTPStatus.OK, OPENAPI_FILE.read_bytes(), "application/yaml")

    def _active_targets(self, kind: RequestKind, key: str) -> set[str]:
        return {r.spec[key] for r in self.requests.list(kind, self.clock())}

    def list_hosts(self, call: Call) -> Reply:
        drained = self._active_targets(RequestKind.DRAIN, "host_id")
        hosts = [host_to_dict(h, h.id in drained) for h in self.store.hosts(present_only=True).values()]
        return Reply(HTTPStatus.OK, {"hosts": hosts})

    def get_host(self, call: Call) -> Reply:
        host = self.store.hosts(present_only=True).get(call.params["host_id"])
        if host is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no host {call.params['host_id']!r}", "host_id")
        drained = host.id in self._active_targets(RequestKind.DRAIN, "host_id")
        return Reply(HTTPStatus.OK, host_to_dict(host, drained))

    def list_vms(self, call: Call) -> Reply:
        host_id = call.one("host_id")
        critical = self._active_targets(RequestKind.CRITICAL, "vm_id")
        vms = [
            vm_to_dict(v, v.id in critical)
            for v in self.store.vms(present_only=True).values()
            if host_id is None or v.host_id == host_id
        ]
        return Reply(HTTPStatus.OK, {"vms": vms})

    def get_vm(self, call: Call) -> Reply:
        vm = self.store.vms(present_only=True).get(call.params["vm_id"])
        if vm is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no VM {call.params['vm_id']!r}", "vm_id")
        critical = vm.id in self._active_targets(RequestKind.CRITICAL, "vm_id")
        return Reply(HTTPStatus.OK, vm_to_dict(vm, critical))

    def list_plans(self, call: Call) -> Reply:
        limit = call.integer("limit", 20, 1, self.max_list)
        plans = self.store.list_plans(limit=limit, strategy=call.one("strategy"))
        return Reply(HTTPStatus.OK, {"plans": [plan_summary(p) for p in plans]})

    def get_plan(self, call: Call) -> Reply:
        try:
            plan = self.store.get_plan(call.params["plan_id"])
        except NotFound as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "plan_id") from None
        body = plan_to_dict(plan)
        body["status"] = plan_status(plan)
        body["expected_benefit"] = sum(float(a.expected_benefit) for a in plan.actions)
        return Reply(HTTPStatus.OK, body)

    def list_events(self, call: Call) -> Reply:
        until = call.time("until")
        since = call.time("since")
        if since is None:
            # now is the wall clock or, when earlier, just after the newest sample, as for
            # predictions: a simulated cloud stamps its events with its own, earlier, clock
            now = min(self.clock(), self.predictions.origin(None))
            since = (until if until is not None else now) - DEFAULT_EVENTS_SECONDS
        until = FAR_FUTURE if until is None else until
        if since > until:
            # an empty answer would read as "nothing happened"; the client swapped the bounds
            raise ApiError(HTTPStatus.BAD_REQUEST, "since is later than until", "since")
        kinds = None
        raw_kinds = [k for value in call.query.get("kind", []) for k in value.split(",") if k]
        if "kind" in call.query and not raw_kinds:
            # an empty list of kinds joined by a client selects no kind, not every kind
            raise ApiError(HTTPStatus.BAD_REQUEST, "give at least one event kind, or leave kind out", "kind")
        if raw_kinds:
            known = {k.value for k in EventKind}
            for kind in raw_kinds:
                if kind not in known:
                    raise ApiError(HTTPStatus.BAD_REQUEST, f"unknown event kind; use {sorted(known)}", "kind")
            kinds = raw_kinds
        limit = call.integer("limit", 100, 1, self.max_list)
        events = self.store.events(
            since, until, kinds=kinds, vm_id=call.one("vm_id"), host_id=call.one("host_id")
        )
        return Reply(
            HTTPStatus.OK,
            {"events": [event_to_dict(e) for e in events[:limit]], "truncated": len(events) > limit},
        )

    def pair_risks(self, call: Call) -> Reply:
        limit = call.integer("limit", 20, 1, min(self.max_list, MAX_PAIRS))
        vm_id = call.one("vm_id")
        try:
            return Reply(HTTPStatus.OK, self.predictions.pairs(vm_id, limit, call.time("at")))
        except NotFound as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "vm_id") from None
        except SchemaMismatch as exc:
            raise _model_unavailable(exc) from None

    def forecast(self, call: Call) -> Reply:
        horizon = call.integer("horizon", 12, 1, int(self.options.max_forecast_horizon))
        quantiles = [0.5, 0.95]
        raw = call.one("quantiles")
        if raw is not None:
            try:
                quantiles = quantile_levels(float(q) for q in raw.split(","))
            except ValueError:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "expected numbers separated by commas", "quantiles"
                ) from None
            # checked after rounding: 0.99999 would be forecast as level 1
            if not quantiles or len(quantiles) > MAX_QUANTILES or not all(0 < q < 1 for q in quantiles):
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    f"1 to {MAX_QUANTILES} different levels strictly between 0 and 1 "
                    f"(rounded to {QUANTILE_DECIMALS} decimals)",
                    "quantiles",
                )
        try:
            result = self.predictions.forecast(call.params["vm_id"], horizon, quantiles, call.time("at"))
        except NotFound as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "vm_id") from None
        except SchemaMismatch as exc:
            raise _model_unavailable(exc) from None
        return Reply(HTTPStatus.OK, result)

    # influence ----------------------------------------------------------------------------

    def _describe(self, request: Request) -> dict[str, Any]:
        body = request.as_dict(self.clock())
        if request.kind is RequestKind.DRAIN:
            body["unknown"] = unknown_references(request, self.store.hosts(present_only=True), {})
        else:
            body["unknown"] = unknown_references(request, (), self.store.vms(present_only=True))
        return body

    def _lister(self, kind: RequestKind) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            found = self.requests.list(kind, self.clock(), include_inactive=call.flag("all"))
            now = self.clock()
            return Reply(HTTPStatus.OK, {"items": [r.as_dict(now) for r in found]})

        return handler

    def _creator(self, kind: RequestKind, collection: str) -> Callable[[Call], Reply]:
        path = f"/v1/{collection}"

        def handler(call: Call) -> Reply:
            now = self.clock()
            try:
                if call.idempotency_key is None:
                    request = self.requests.add(kind, call.body, now)
                    answer, replayed = self._describe(request), False
                else:
                    key = IdempotencyKey(path, call.idempotency_key)
                    remembered = self.requests.add_once(
                        kind, call.body, now, key, self.key_lifetime, self._describe
                    )
                    answer, replayed = remembered.answer, remembered.replayed
            except InvalidRequest as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, exc.message, exc.field) from None
            except Conflict as exc:
                raise ApiError(
                    HTTPStatus.CONFLICT, str(exc), details={"existing_id": exc.existing_id}
                ) from None
            except KeyReused as exc:
                raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), idempotency.HEADER) from None
            headers = {"Location": f"{path}/{answer['id']}"}
            if replayed:
                # the header Stripe's API sends, so a client can tell a retry was recognised
                headers["Idempotent-Replayed"] = "true"
                LOG.info("%s %s: a repeated request answered as the first", kind.value, answer["id"])
            else:
                LOG.info("%s %s created by %s", kind.value, answer["id"], answer["created_by"])
            return Reply(HTTPStatus.CREATED, answer, headers=headers)

        return handler

    def _getter(self, kind: RequestKind) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            try:
                request = self.requests.get(kind, call.params["request_id"])
            except NotFound as exc:
                raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "request_id") from None
            return Reply(HTTPStatus.OK, self._describe(request))

        return handler

    def _deleter(self, kind: RequestKind) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            try:
                self.requests.delete(kind, call.params["request_id"])
            except NotFound as exc:
                raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "request_id") from None
            LOG.info("%s %s deleted", kind.value, call.params["request_id"])
            return Reply(HTTPStatus.NO_CONTENT, None)

        return handler


# HTTP ---------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One connection; ``self.server.api`` does the work."""

    server: ApiServer
    server_version = "cotenancy-api"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:  # noqa: N802 - the names http.server dispatches to
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802 - no route serves it: 405 with Allow, not 501
        self._dispatch()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch()

    def _authorised(self) -> bool:
        token = self.server.auth_token
        if not token:
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def _read_body(self) -> Any:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a JSON body with a Content-Length is required")
        try:
            length = int(raw_length)
        except ValueError:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "Content-Length is not a number", "Content-Length"
            ) from None
        if length < 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is negative", "Content-Length")
        limit = self.server.max_body_bytes
        if length > limit:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is larger than {limit} bytes")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != JSON_TYPE:
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json", "Content-Type"
            )
        data = self.rfile.read(length)
        self._body_consumed = True
        try:
            body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"not valid JSON: {exc}", "body") from None
        except RecursionError:
            # a few KB of "[[[[" exhaust the parser's stack well under max_body_bytes
            raise ApiError(HTTPStatus.BAD_REQUEST, "not valid JSON: nested too deeply", "body") from None
        # checked before any handler sees the body: text that cannot be encoded would be stored,
        # then break every reply that shows it
        try:
            check_encodable(body)
        except InvalidRequest as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.message, exc.field) from None
        return body

    def _dispatch(self) -> None:
        """Answer one request; whatever fails, including encoding the answer, the client gets a
        JSON reply (a 500 for the server's own faults, logged with its traceback)."""
        self._body_consumed = False
        try:
            try:
                reply = self._answer()
            except ApiError as exc:
                reply = Reply(exc.status, exc.body(), headers=exc.headers)
            data = _encode(reply)
        except Exception:
            LOG.exception("%s %s failed", self.command, printable(self.path[:200]))
            error = ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the server log has the details"
            )
            reply = Reply(error.status, error.body())
            data = _encode(reply)
        self._send(reply, data)

    def _answer(self) -> Reply:
        """The handler's reply, or :class:`ApiError` for a request refused before or by it."""
        api = self.server.api
        if not self._authorised():
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="cotenancy"'},
            )
        url = urlsplit(self.path)
        route, params = api.match(self.command, url.path.rstrip("/") or "/")
        try:
            query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "too many query parameters", "query") from None
        for name in query:
            if name not in route.query:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    f"unknown query parameter; this route takes {sorted(route.query) or 'none'}",
                    name[:64],
                )
        # refused before any lookup: PostgreSQL cannot even compare text holding NUL
        given = [*params.items(), *((name, v) for name, values in query.items() for v in values)]
        for name, value in given:
            if CONTROL_CHARACTERS.search(value):
                raise ApiError(HTTPStatus.BAD_REQUEST, CONTROL_MESSAGE, name)
        if self.command != "POST":
            return route.handler(Call(params, query))
        try:
            key = idempotency.parse_key(self.headers.get_all(idempotency.HEADER) or [])
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc), idempotency.HEADER) from None
        return route.handler(Call(params, query, self._read_body(), key))

    def _send(self, reply: Reply, data: bytes) -> None:
        has_body = self.headers.get("Content-Length") not in (None, "0") or self.headers.get(
            "Transfer-Encoding"
        )
        if has_body and not self._body_consumed:
            # an unread body would be taken for the next request on this connection
            self.close_connection = True
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", f"{reply.content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server raises itself (malformed request line, unknown method) as JSON too."""
        status = HTTPStatus(code)
        data = json.dumps(ApiError(status, message or status.description).body()).encode() + b"\n"
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", f"{JSON_TYPE}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        LOG.info("%s %s", self.address_string(), printable(format % args))


def printable(text: str) -> str:
    """``text`` for one log line: control characters and line separators shown as escapes, and
    backslashes doubled so an escape sent as text stays distinguishable, as ``http.server``'s own
    ``log_message`` does; a request line may hold them, and would forge log lines otherwise."""
    return escape_controls(text.replace("\\", "\\\\"))


def _model_unavailable(exc: SchemaMismatch) -> ApiError:
    """A model file that cannot be served and no good model before it (damaged, another schema,
    other telemetry): the operator's to fix, so the client is told why rather than a bare 500."""
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"the model cannot be served: {exc}", "model")


def _encode(reply: Reply) -> bytes:
    """The bytes of a reply's body; raises (before anything is sent) when it cannot be encoded."""
    if reply.payload is None:
        return b""
    if isinstance(reply.payload, bytes):
        return reply.payload
    text = json.dumps(reply.payload, ensure_ascii=False, allow_nan=False, default=str)
    # JSON escapes only U+0000-U+001F; names from the cloud may hold DEL, C1 controls (U+009B
    # starts a terminal escape) and U+2028, which would reach a terminal or a JavaScript client raw.
    # Outside strings json.dumps writes none of them, so each is inside one: the same text, escaped.
    text = CONTROL_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8") + b"\n"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class ApiServer(ThreadingHTTPServer):
    """A thread per connection; threads are daemons so stopping never waits on a slow client."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        api: Api,
        address: tuple[str, int],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        options = api.options
        self.auth_token: str | None = options.auth_token or None
        self.max_body_bytes = int(options.max_body_bytes)
        self.request_timeout = float(options.request_timeout)
        super().__init__(address, Handler)
        if ssl_context is not None:
            # the handshake runs in the connection's thread (Handler.setup), not in accept()
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if ssl_context is not None else "http"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"{self.scheme}://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that breaks its connection or the TLS handshake is not the server's error;
        anything else escaping a handler is, and the operator must see it."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            LOG.debug("connection from %s failed", client_address, exc_info=True)
        else:
            LOG.error("connection from %s failed", client_address, exc_info=True)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if match is None:
        raise ConfigurationError(f"[api] listen: expected HOST:PORT or [IPv6]:PORT, got {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"[api] listen: port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise ConfigurationError("[api] HTTPS needs both cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"[api] cannot load cert_file/key_file: {exc}") from None
    return context


def make_server(
    conf: cfg.ConfigOpts,
    store: HistoryStore,
    listen: str | None = None,
    clock: Callable[[], float] = time.time,
) -> ApiServer:
    """A bound, not yet serving, API server (``serve_forever()`` to run it)."""
    api = Api(conf, store, clock)
    host, port = parse_listen(listen or api.options.listen)
    if not is_loopback(host) and not api.options.auth_token:
        raise ConfigurationError(
            f"[api] listen on {host} (not loopback) needs [api] auth_token, "
            "or anyone who can reach it could steer the cloud"
        )
    context = tls_context(api.options.cert_file, api.options.key_file)
    if context is None and not is_loopback(host):
        LOG.warning("the API on %s is plain HTTP; the bearer token crosses the network in clear", host)
    try:
        return ApiServer(api, (host, port), context)
    except OSError as exc:
        raise ConfigurationError(f"[api] cannot listen on {host}:{port}: {exc.strerror or exc}") from None
