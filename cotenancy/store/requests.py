"""Requests from outside programs that steer allocation: demand hints, affinity rules, host
drains and critical VMs.

They arrive through the open API (:mod:`cotenancy.api`), are validated here, kept in the history
store's ``api_requests`` table (so they survive restarts and every process sharing the store sees
them) and are read back each control-loop round:

* :func:`apply_requests` overlays the active ones on the inventory the strategy decides on
  (rules added, drained hosts in maintenance, critical VMs flagged);
* :func:`active_hints` gives the forecaster's calendar of scheduled events, in the same
  :class:`cotenancy.predict.hints.Hint` form as the ``[predict] hint`` options.

A request is active from its creation until ``expires_at`` (when given) and, for a hint, until its
``end``. Deleting a request withdraws it at once.
"""

from __future__ import annotations

import datetime as dt
import enum
import glob
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from cotenancy.exceptions import CotenancyError, NotFound
from cotenancy.model import VM, AffinityRule, Inventory, Resource, RuleKind
from cotenancy.predict.hints import Hint, hints_from_conf
from cotenancy.store import idempotency, schema
from cotenancy.store.history import HistoryStore
from cotenancy.store.idempotency import IdempotencyKey, Remembered
from cotenancy.text import CONTROL_CHARACTERS, escape_controls

MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 1000
MAX_VMS_PER_REQUEST = 1000
#: a demand multiplier above this is almost surely a percentage typed by mistake
MAX_DEMAND_FACTOR = 100.0
RESOURCES = tuple(r.value for r in Resource)
#: 3000-01-01T00:00:00Z in POSIX seconds; a number beyond it is milliseconds for seconds (JavaScript's
#: ``Date.now()``, say), which would make a drain that never expires or a hint a thousand years away
MAX_POSIX_SECONDS = 32_503_680_000.0
#: serialises the duplicate check and the insert among this process's threads (the API server runs
#: one per connection); the database lock of :func:`_lock_requests_table` does it among processes
_ADD_LOCK = threading.Lock()
CONTROL_MESSAGE = (
    "must not contain control characters or line separators (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029)"
)


def _escaped(value: Any) -> Any:
    """A stored spec with :func:`escape_controls` applied to every text in it."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


class RequestKind(enum.StrEnum):
    HINT = "hint"
    RULE = "rule"
    DRAIN = "drain"
    CRITICAL = "critical"


#: kinds of which one target may have only one active request, with the field naming the target
ONE_PER_TARGET = {RequestKind.DRAIN: "host_id", RequestKind.CRITICAL: "vm_id"}


class InvalidRequest(CotenancyError):
    """A request body is wrong; ``field`` names the part that is (dotted path, e.g. ``demand.cpu``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class Conflict(CotenancyError):
    """The same thing is already requested (a second drain of one host, a VM marked critical twice)."""

    def __init__(self, message: str, existing_id: str) -> None:
        self.existing_id = existing_id
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Request:
    """One stored request. ``spec`` is the validated, normalised body of its kind."""

    id: str
    kind: RequestKind
    spec: dict[str, Any]
    created_at: float
    expires_at: float | None
    created_by: str

    def active(self, now: float) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        return not (self.kind is RequestKind.HINT and now >= self.spec["end"])

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            **self.spec,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "created_by": self.created_by,
            "active": self.active(now),
        }


# validation ---------------------------------------------------------------------------------


def parse_time(value: object, field: str) -> float:
    """POSIX seconds (a number) or ISO 8601 text; a time without zone is UTC. A number after the
    year 3000 is refused: it is milliseconds sent for seconds, not a time anyone means."""
    if isinstance(value, bool):
        raise InvalidRequest(field, "expected a time (ISO 8601 text or POSIX seconds)")
    if isinstance(value, int | float):
        seconds = _finite(value)
        if seconds is None:
            raise InvalidRequest(field, "time must be finite")
        if seconds > MAX_POSIX_SECONDS:
            raise InvalidRequest(
                field,
                f"time {seconds:.15g} is after the year 3000: it looks like milliseconds for seconds; "
                "send POSIX seconds or ISO 8601 text",
            )
        return seconds
    if not isinstance(value, str):
        raise InvalidRequest(field, "expected a time (ISO 8601 text or POSIX seconds)")
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(field, f"cannot read time {value[:64]!r} (use ISO 8601)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _finite(value: int | float) -> float | None:
    """The value as a float, or None when it is not finite (JSON integers have no bound, floats do)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def unencodable_field(value: object) -> str | None:
    """Where ``value`` (parsed JSON) holds text that is not valid Unicode, else None.

    JSON may escape a lone surrogate (``"\\ud800"``), which Python accepts as a string but which no
    reply, log line or database column can encode as UTF-8: stored, it would break every later
    read. The answer is a field path in the style of :class:`InvalidRequest` (``vm_ids[1]``,
    ``demand.cpu``); a bad object key is reported as the object holding it (``body`` at the top).
    Iterative, since the body may be nested as deeply as the JSON parser allows.
    """
    pending: list[tuple[object, str]] = [(value, "body")]
    while pending:
        item, path = pending.pop()
        children: list[tuple[object, str]] = []
        if isinstance(item, str):
            if not _encodable(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _encodable(str(key)):
                    return path
                name = str(key)[:64]
                children.append((child, name if path == "body" else f"{path}.{name}"))
        elif isinstance(item, list):
            children = [(child, f"{path}[{i}]") for i, child in enumerate(item)]
        pending.extend(reversed(children))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_encodable(body: object) -> None:
    """:class:`InvalidRequest` naming the first text in ``body`` that is not valid Unicode."""
    field = unencodable_field(body)
    if field is not None:
        raise InvalidRequest(
            field, "text is not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text"
        )


def _text(body: Mapping[str, Any], key: str, required: bool, limit: int = MAX_ID_LENGTH) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidRequest(key, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(key, "expected non-empty text")
    if len(value) > limit:
        raise InvalidRequest(key, f"longer than {limit} characters")
    if CONTROL_CHARACTERS.search(value):
        raise InvalidRequest(key, CONTROL_MESSAGE)
    return value


def _vm_ids(body: Mapping[str, Any], key: str, minimum: int) -> list[str]:
    value = body.get(key)
    if value is None:
        raise InvalidRequest(key, "is required")
    if not isinstance(value, list):
        raise InvalidRequest(key, "expected a list of VM ids")
    if len(value) > MAX_VMS_PER_REQUEST:
        raise InvalidRequest(key, f"at most {MAX_VMS_PER_REQUEST} VMs per request")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > MAX_ID_LENGTH:
            raise InvalidRequest(f"{key}[{i}]", f"expected a VM id (1 to {MAX_ID_LENGTH} characters)")
        if CONTROL_CHARACTERS.search(item):
            raise InvalidRequest(f"{key}[{i}]", CONTROL_MESSAGE)
    unique = list(dict.fromkeys(value))
    if len(unique) < minimum:
        raise InvalidRequest(key, f"needs at least {minimum} different VM ids")
    return unique


def _check_keys(body: Mapping[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidRequest(str(key)[:64], f"unknown field; expected some of {sorted(allowed)}")


def _hint_spec(body: Mapping[str, Any], now: float) -> dict[str, Any]:
    _check_keys(body, {"vm_ids", "app_type", "start", "end", "demand", "name"})
    has_vms, has_app = "vm_ids" in body, "app_type" in body
    if has_vms == has_app:
        raise InvalidRequest("vm_ids", "give exactly one of vm_ids or app_type")
    spec: dict[str, Any] = {"name": _text(body, "name", False) or ""}
    if has_vms:
        spec["vm_ids"] = _vm_ids(body, "vm_ids", 1)
    else:
        spec["app_type"] = _text(body, "app_type", True)
    for key in ("start", "end"):
        if key not in body:
            raise InvalidRequest(key, "is required")
    spec["start"] = parse_time(body["start"], "start")
    spec["end"] = parse_time(body["end"], "end")
    if spec["end"] <= spec["start"]:
        raise InvalidRequest("end", "must be after start")
    if spec["end"] <= now:
        raise InvalidRequest("end", "is in the past; the event is over")
    demand = body.get("demand")
    if not isinstance(demand, dict) or not demand:
        raise InvalidRequest("demand", f"expected an object of multipliers per resource {list(RESOURCES)}")
    factors: dict[str, float] = {}
    for resource, factor in demand.items():
        where = f"demand.{str(resource)[:32]}"
        if resource not in RESOURCES:
            raise InvalidRequest(where, f"unknown resource; expected one of {list(RESOURCES)}")
        number = None if isinstance(factor, bool) or not isinstance(factor, int | float) else _finite(factor)
        if number is None:
            raise InvalidRequest(where, "expected a number")
        if not 0 <= number <= MAX_DEMAND_FACTOR:
            raise InvalidRequest(where, f"multiplier must be between 0 and {MAX_DEMAND_FACTOR:g}")
        factors[resource] = number
    spec["demand"] = factors
    return spec


def _rule_spec(body: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(body, {"type", "vm_ids", "hard", "name"})
    rule_type = body.get("type")
    if rule_type not in {k.value for k in RuleKind}:
        raise InvalidRequest("type", f"expected one of {[k.value for k in RuleKind]}")
    hard = body.get("hard", True)
    if not isinstance(hard, bool):
        raise InvalidRequest("hard", "expected true or false")
    return {
        "type": rule_type,
        "vm_ids": _vm_ids(body, "vm_ids", 2),
        "hard": hard,
        "name": _text(body, "name", False) or "",
    }


def _drain_spec(body: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(body, {"host_id", "reason"})
    return {
        "host_id": _text(body, "host_id", True),
        "reason": _text(body, "reason", False, MAX_TEXT_LENGTH) or "",
    }


def _critical_spec(body: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(body, {"vm_id", "reason"})
    return {
        "vm_id": _text(body, "vm_id", True),
        "reason": _text(body, "reason", False, MAX_TEXT_LENGTH) or "",
    }


COMMON_FIELDS = {"expires_at", "created_by"}


def validate(kind: RequestKind, body: object, now: float) -> tuple[dict[str, Any], float | None, str]:
    """``(spec, expires_at, created_by)`` from a request body, or :class:`InvalidRequest`."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", "expected a JSON object")
    check_encodable(body)
    specific = {k: v for k, v in body.items() if k not in COMMON_FIELDS}
    if kind is RequestKind.HINT:
        spec = _hint_spec(specific, now)
    elif kind is RequestKind.RULE:
        spec = _rule_spec(specific)
    elif kind is RequestKind.DRAIN:
        spec = _drain_spec(specific)
    else:
        spec = _critical_spec(specific)
    expires_at = None
    if body.get("expires_at") is not None:
        expires_at = parse_time(body["expires_at"], "expires_at")
        if expires_at <= now:
            raise InvalidRequest("expires_at", "is in the past")
    created_by = _text(body, "created_by", False) or "api"
    return spec, expires_at, created_by


def unknown_references(request: Request, host_ids: Iterable[str], vms: Mapping[str, VM]) -> list[str]:
    """Ids the request names that the last known inventory does not have, and for an
    ``app_type`` hint the workload class when no VM of it is known.

    Such requests are kept (a VM may be booting, the inventory may lag a round): they take effect
    when the id (or a VM of the class) appears, and the API reports them so a typo does not go
    unnoticed.
    """
    spec = request.spec
    if request.kind is RequestKind.DRAIN:
        return [] if spec["host_id"] in set(host_ids) else [spec["host_id"]]
    if "app_type" in spec:
        classes = {vm.workload.app_type for vm in vms.values()}
        return [] if spec["app_type"] in classes else [spec["app_type"]]
    named = [spec["vm_id"]] if request.kind is RequestKind.CRITICAL else spec.get("vm_ids", [])
    return [v for v in named if v not in vms]


# storage ------------------------------------------------------------------------------------


def _new(kind: RequestKind, body: object, now: float) -> Request:
    """A validated request with a new id, not yet stored; :class:`InvalidRequest` if invalid."""
    spec, expires_at, created_by = validate(kind, body, now)
    return Request(uuid.uuid4().hex, kind, spec, float(now), expires_at, created_by)


def _from_row(row: Mapping[str, Any]) -> Request:
    """A stored request. Text is read with its control characters escaped: requests stored before
    they were refused may hold them, and a name or ``created_by`` with a newline or terminal escape
    would forge lines in the plan ``cotenancy plan`` prints, the server log and API answers."""
    return Request(
        id=row["id"],
        kind=RequestKind(row["kind"]),
        spec=_escaped(dict(row["spec"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        created_by=escape_controls(row["created_by"]),
    )


def _insert(connection: sa.Connection, request: Request) -> None:
    connection.execute(
        schema.api_requests.insert(),
        {
            "id": request.id,
            "kind": request.kind.value,
            "spec": request.spec,
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "created_by": request.created_by,
        },
    )


def _lock_requests_table(connection: sa.Connection) -> None:
    """Take the database's write lock before the duplicate check, so that another process adding
    the same drain waits for this transaction to end instead of finding no drain too (and one
    storing a request under an idempotency key, for the expired keys it deletes).

    No schema change is needed (a unique index could not say "active" anyway, which depends on
    the time): SQLite's ``BEGIN IMMEDIATE`` takes the database's one write lock at once;
    PostgreSQL's ``SHARE ROW EXCLUSIVE`` conflicts with itself and with writes, not with reads.
    """
    backend = connection.dialect.name
    if backend == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        connection.exec_driver_sql(f"LOCK TABLE {schema.api_requests.name} IN SHARE ROW EXCLUSIVE MODE")


class RequestStore:
    """The ``api_requests`` table of a :class:`HistoryStore`."""

    def __init__(self, store: HistoryStore) -> None:
        self.engine = store.engine

    def add(self, kind: RequestKind, body: object, now: float) -> Request:
        """Validate and store; :class:`InvalidRequest` or :class:`Conflict` when it cannot be.

        A drain or critical mark is checked against the active ones and stored in one locked
        transaction, so two racing requests for one target give one request and one conflict.
        """
        request = _new(kind, body, now)
        self._store(request)
        return request

    def add_once(
        self,
        kind: RequestKind,
        body: object,
        now: float,
        key: IdempotencyKey,
        lifetime: float,
        describe: Callable[[Request], dict[str, Any]] | None = None,
    ) -> Remembered:
        """:meth:`add` for a request sent with an idempotency key: the first time, validate, store
        and remember ``describe(request)`` (default ``request.as_dict(now)``) under the key; again
        with the same body within ``lifetime`` seconds, that answer (``replayed``), storing nothing
        and before validation (a hint's end may have passed since). :class:`KeyReused` when the key
        came with another body. A refused request (invalid, in conflict) does not use up its key.
        """
        digest = idempotency.fingerprint(body)
        with self.engine.connect() as connection:
            found = idempotency.find(connection, key, digest, now, lifetime)
        if found is not None:
            return found
        request = _new(kind, body, now)
        answer = Remembered(
            request.id, describe(request) if describe else request.as_dict(now), request.created_at, False
        )
        try:
            self._store(request, lambda c: idempotency.remember(c, key, digest, answer, lifetime))
        except sa.exc.IntegrityError:
            # a request with this key was stored since the check above: answer as it was answered
            with self.engine.connect() as connection:
                found = idempotency.find(connection, key, digest, now, lifetime)
            if found is None:
                raise
            return found
        return answer

    def _store(self, request: Request, remember: Callable[[sa.Connection], None] | None = None) -> None:
        """Insert ``request``, with ``remember`` (its idempotency key) in the same transaction; a
        keyed request or one of :data:`ONE_PER_TARGET` under the lock, the key first, so a racing
        retry fails on the key (and is answered) before it could conflict with its own request."""
        target = ONE_PER_TARGET.get(request.kind)
        if target is None and remember is None:
            with self.engine.begin() as connection:
                _insert(connection, request)
            return
        with _ADD_LOCK, self.engine.begin() as connection:
            _lock_requests_table(connection)
            if remember is not None:
                remember(connection)
            if target is not None:
                value = request.spec[target]
                for other in self._select(connection, request.kind):
                    if other.active(request.created_at) and other.spec[target] == value:
                        raise Conflict(
                            f"{target} {value!r} already has {request.kind.value} {other.id}", other.id
                        )
            _insert(connection, request)

    def _select(self, connection: sa.Connection, kind: RequestKind | None) -> list[Request]:
        t = schema.api_requests
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if kind is not None:
            query = query.where(t.c.kind == kind.value)
        return [_from_row(r) for r in connection.execute(query).mappings()]

    def list(self, kind: RequestKind | None, now: float, include_inactive: bool = False) -> list[Request]:
        """Oldest first; only the active ones unless ``include_inactive``."""
        with self.engine.connect() as connection:
            found = self._select(connection, kind)
        return found if include_inactive else [r for r in found if r.active(now)]

    def get(self, kind: RequestKind, request_id: str) -> Request:
        t = schema.api_requests
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(t).where(t.c.id == request_id, t.c.kind == kind.value))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no {kind.value} {request_id!r}")
        return _from_row(row)

    def delete(self, kind: RequestKind, request_id: str) -> None:
        t = schema.api_requests
        with self.engine.begin() as connection:
            result = connection.execute(t.delete().where(t.c.id == request_id, t.c.kind == kind.value))
        if result.rowcount == 0:
            raise NotFound(f"no {kind.value} {request_id!r}")


# what the control loop reads ----------------------------------------------------------------


def active_rules(requests: Iterable[Request]) -> list[AffinityRule]:
    return [
        AffinityRule(
            name=r.spec["name"] or f"api-{r.id}",
            kind=RuleKind(r.spec["type"]),
            vm_ids=frozenset(r.spec["vm_ids"]),
            hard=bool(r.spec["hard"]),
        )
        for r in requests
        if r.kind is RequestKind.RULE
    ]


def apply_requests(store: HistoryStore, inventory: Inventory, now: float) -> Inventory:
    """``inventory`` with the active requests applied: API rules added to its rules, drained
    hosts in maintenance (so the planner evacuates them), critical VMs flagged (so it keeps
    headroom for them). A new inventory; the one given is left as it was. Ids the inventory does
    not have are ignored until they appear."""
    active = RequestStore(store).list(None, now)
    hosts = dict(inventory.hosts)
    vms = dict(inventory.vms)
    for request in active:
        if request.kind is RequestKind.DRAIN:
            host = hosts.get(request.spec["host_id"])
            if host is not None and not host.maintenance:
                hosts[host.id] = replace(host, maintenance=True)
        elif request.kind is RequestKind.CRITICAL:
            vm = vms.get(request.spec["vm_id"])
            if vm is not None and not vm.critical:
                vms[vm.id] = replace(vm, critical=True)
    return Inventory(
        hosts=hosts,
        vms=vms,
        policies=list(inventory.policies),
        rules=list(inventory.rules) + active_rules(active),
    )


def hints_of(requests: Iterable[Request], vm_app_types: Mapping[str, str]) -> list[Hint]:
    """Forecaster hints for hint requests: one per VM and resource, each VM id as an exact glob
    (``vm_app_types`` maps VM id to workload class, to expand ``app_type`` hints)."""
    hints: list[Hint] = []
    for request in requests:
        if request.kind is not RequestKind.HINT:
            continue
        spec = request.spec
        if "vm_ids" in spec:
            targets = list(spec["vm_ids"])
        else:
            targets = sorted(v for v, app in vm_app_types.items() if app == spec["app_type"])
        name = spec["name"] or f"api-{request.id}"
        for vm_id in targets:
            for resource, factor in spec["demand"].items():
                hints.append(Hint(spec["start"], spec["end"], glob.escape(vm_id), resource, factor, name))
    return hints


def active_hints(store: HistoryStore, now: float) -> list[Hint]:
    """The calendar of scheduled events requested through the API that are not over at ``now``,
    in the form :func:`cotenancy.predict.hints.hints_from_conf` returns (add both together).
    ``app_type`` hints cover the VMs of that class in the last known inventory."""
    requests = RequestStore(store).list(RequestKind.HINT, now)
    if not requests:
        return []
    apps = (
        {vm.id: vm.workload.app_type for vm in store.vms().values()}
        if any("app_type" in r.spec for r in requests)
        else {}
    )
    return hints_of(requests, apps)


def apply_operator_requests(
    conf: Any, store: HistoryStore, inventory: Inventory, forecasters: Iterable[object], now: float
) -> Inventory:
    """What other programs asked through the API, as a planning round takes it: ``inventory``
    with the active rules, drains and critical marks (:func:`apply_requests`), and each distinct
    forecaster given the round's calendar of hints (:func:`forecaster_calendar`). ``now`` is the
    wall clock: request expiry times are wall-clock times, whatever clock the cloud keeps."""
    inventory = apply_requests(store, inventory, now)
    distinct = {id(f): f for f in forecasters if f is not None and hasattr(f, "hints")}
    if distinct:
        calendar = forecaster_calendar(conf, store, now)
        for forecaster in distinct.values():
            forecaster.hints = calendar
    return inventory


def forecaster_calendar(conf: Any, store: HistoryStore, now: float) -> list[Hint]:
    """Every hint the forecaster should apply at ``now``: the configured ones (``[predict] hint``,
    ``hints_file``) followed by those requested through the API. Assign it to the forecaster's
    ``hints`` each round."""
    return hints_from_conf(conf) + active_hints(store, now)
