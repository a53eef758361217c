"""The history store: what the cloud showed over time, and what the product decided.

Predictors learn from it (metric samples, degradation events); operators audit it (plans, their
steps and status). SQLAlchemy Core keeps the bulk paths fast; Alembic owns the schema and runs
``upgrade head`` every time a store opens, so a new release migrates an old database in place.
Samples and events have a unique key, so what a driver sends again is counted, not stored again.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import StaticPool

from cotenancy.exceptions import ConfigurationError, MalformedInputError, NotFound
from cotenancy.model import (
    VM,
    Action,
    ActionKind,
    ActionPlan,
    Allocation,
    Event,
    EventKind,
    Host,
    Inventory,
    Metric,
    MetricSample,
    Resources,
    StepStatus,
    TelemetryWindow,
    VMState,
    WorkloadClass,
)
from cotenancy.store import schema

LOG = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
KNOWN_METRICS = frozenset(m.value for m in Metric)
#: rows per INSERT batch: bounds memory on huge ingests, large enough to amortise round trips
BATCH_ROWS = 20_000
#: the backends whose ``ON CONFLICT DO NOTHING`` the unique keys rely on
BACKENDS = ("sqlite", "postgresql")


@dataclass(slots=True)
class IngestReport:
    """What happened to a batch of samples: ``accepted`` were stored; ``rejected`` are malformed
    (counted per reason in ``reasons``); ``duplicates`` were valid but already stored (the same
    VM, metric and time), or repeated in the batch, and were not stored again."""

    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


def rejection_reason(sample: MetricSample, not_after: float | None = None) -> str | None:
    """Why ``sample`` must not be mixed into the learning data, or ``None`` when it is usable.
    ``not_after``: samples stamped at or after it are ``future`` (one in milliseconds, say, would
    move every later window of the history past the real samples)."""
    if not isinstance(sample.vm_id, str) or not sample.vm_id:
        return "missing_vm_id"
    if sample.metric not in KNOWN_METRICS:
        return "unknown_metric"
    try:
        timestamp = float(sample.timestamp)
        value = float(sample.value)
    except (TypeError, ValueError):
        return "not_a_number"
    if not math.isfinite(timestamp):
        return "bad_timestamp"
    if not_after is not None and timestamp >= not_after:
        return "future"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "infinite"
    if value < 0:
        return "negative"
    if sample.metric == Metric.CPU_READY and value > 1.0:
        return "ready_above_one"
    return None


def event_problem(event: Event) -> str | None:
    """Why ``event`` cannot be stored (its numbers must be finite: the columns refuse NaN), or
    ``None``."""
    for name in ("timestamp", "duration", "severity"):
        try:
            value = float(getattr(event, name))
        except (TypeError, ValueError):
            return f"{name} {getattr(event, name)!r} is not a number"
        if not math.isfinite(value):
            return f"{name} is {value!r}"
    return None


def normalise_url(url: str) -> sa.URL:
    """Parse ``url``; plain ``postgresql://`` means psycopg 3 (the driver we ship), ``~`` is expanded
    in SQLite paths and their directory created. Another backend than SQLite or PostgreSQL is a
    :class:`ConfigurationError`: the store's keys rely on their ``ON CONFLICT``."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"history store: not a database URL: {exc}") from None
    except ValueError:
        # SQLAlchemy's int() of the port; neither its message nor the URL (password) is shown
        raise ConfigurationError("history store: not a database URL: the port is not a number") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in BACKENDS:
        raise ConfigurationError(
            f"history store: {parsed.get_backend_name()!r} databases are not supported; "
            "use SQLite (sqlite:///PATH) or PostgreSQL (postgresql://...)"
        )
    if parsed.get_backend_name() == "postgresql":
        parsed = _verified_tls_when_remote(parsed)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    return parsed


def _verified_tls_when_remote(url: sa.URL) -> sa.URL:
    """``url`` with ``sslmode=verify-full`` (and the system's CAs unless ``sslrootcert`` names
    others) when the server is on another machine and neither the URL nor ``PGSSLMODE`` chose a
    mode: the store holds the drains and rules that steer the cloud and is logged in to with a
    password, and libpq's own default (``prefer``) takes any certificate, or none. A Unix socket
    or a loopback address keeps libpq's defaults."""
    if "sslmode" in url.query or "PGSSLMODE" in os.environ:
        return url
    hosts = [url.host] if url.host else []
    given = url.query.get("host")
    hosts += [given] if isinstance(given, str) else list(given or ())
    if all(_on_this_machine(h) for h in hosts):
        return url
    added = {"sslmode": "verify-full"}
    if "sslrootcert" not in url.query and "PGSSLROOTCERT" not in os.environ:
        added["sslrootcert"] = "system"
    return url.update_query_dict(added)


def _on_this_machine(host: str) -> bool:
    """A Unix socket folder, ``localhost`` or a loopback address; ``host`` may carry a port
    (``h1:5432``, as a ``?host=`` of a multi-host URL does) or a comma-separated list of hosts."""
    for item in host.split(","):
        name = item.strip()
        if not name or name.startswith("/"):
            continue
        if name.count(":") == 1:
            name = name.partition(":")[0]
        name = name.strip("[]")
        if name == "localhost":
            continue
        try:
            if ipaddress.ip_address(name).is_loopback:
                continue
        except ValueError:
            pass
        return False
    return True


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _json_safe(stats: Mapping[str, Any]) -> dict[str, Any]:
    """JSON columns reject NaN/inf on PostgreSQL; keep them as their text."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in stats.items()}


def _allocation_to_json(allocation: Allocation | None) -> dict[str, Any] | None:
    if allocation is None:
        return None
    return {
        "reservation": allocation.reservation.as_dict(),
        "limit": allocation.limit.as_dict() if allocation.limit is not None else None,
        "shares": allocation.shares,
    }


def _allocation_from_json(data: Mapping[str, Any] | None) -> Allocation | None:
    if data is None:
        return None
    limit = data.get("limit")
    return Allocation(
        reservation=Resources.from_dict(data["reservation"]),
        limit=Resources.from_dict(limit) if limit is not None else None,
        shares=int(data["shares"]),
    )


#: the columns of ``hosts`` and ``vms`` that say when, not what: not compared
_TIMES = frozenset({"seen_at", "gone_at"})
#: ids per IN list when recording an inventory (SQLite allows 32,766 parameters a statement)
INVENTORY_CHUNK = 5_000


def _host_row(host: Host) -> dict[str, Any]:
    """The recorded fields of ``host`` (a ``hosts`` row without its times)."""
    return {
        "id": host.id,
        "name": host.name,
        "capacity": host.capacity.as_dict(),
        "cluster": host.cluster,
        "maintenance": bool(host.maintenance),
        "power_model": host.power_model,
        "attributes": dict(host.attributes),
    }


def _vm_row(vm: VM) -> dict[str, Any]:
    """The recorded fields of ``vm`` (a ``vms`` row without its times)."""
    return {
        "id": vm.id,
        "name": vm.name,
        "host_id": vm.host_id,
        "size": vm.size.as_dict(),
        "allocation": _allocation_to_json(vm.allocation),
        "vcpus": int(vm.vcpus),
        "tenant": vm.tenant,
        "app_type": vm.workload.app_type,
        "priority": int(vm.workload.priority),
        "security_level": vm.workload.security_level,
        "critical": bool(vm.critical),
        "state": VMState(vm.state).value,
        "flavor": vm.flavor,
        "attributes": dict(vm.attributes),
        "migration_target": vm.migration_target,
    }


def _json_columns(table: sa.Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, sa.JSON))


def _as_stored(row: Mapping[str, Any], fields: Sequence[str], json_fields: Set[str]) -> tuple[Any, ...]:
    """``row``'s ``fields`` as the database holds them once written, JSON as its text (SQLAlchemy
    writes ``json.dumps``; the engine sets no other serializer), so ``1`` is not ``1.0`` and key
    order counts: a record left as it is holds exactly what writing it again would store."""
    return tuple(json.dumps(row[name]) if name in json_fields else row[name] for name in fields)


class HistoryStore:
    """Metric history, events, inventory and plans in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.get_backend_name() == "sqlite" and self.url.database in (None, "", ":memory:"):
            # one shared connection, or every new connection would see a fresh empty database
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        self.engine = sa.create_engine(self.url, **kwargs)
        # per table: each listed record's repr and its row as stored, from the last inventory
        self._recorded: dict[str, dict[str, tuple[str, tuple[Any, ...]]]] = {}
        # per table: the recorded fields, in the order the rows give them
        self._fields: dict[str, list[str]] = {}
        if self.url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._upgrade()
        except Exception:
            self.engine.dispose()
            raise

    @classmethod
    def from_conf(cls, conf: Any) -> HistoryStore:
        """``[store] connection`` if set, else SQLite at ``<state_path>/history.sqlite``."""
        url = conf.store.connection
        if not url:
            state = Path(conf.state_path).expanduser()
            url = f"sqlite:///{state / 'history.sqlite'}"
        return cls(url)

    def _upgrade(self) -> None:
        config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "head")
            self._revision = MigrationContext.configure(connection).get_current_heads()

    def schema_is_current(self) -> bool:
        """Whether the database still has the schema revision this store migrated it to.

        One query, where opening a store reads every migration script: a process that keeps a
        store open between requests (the Watcher strategy, one audit after another) checks this
        before each, and opens the store again when another program replaced, emptied or
        migrated the database meanwhile.
        """
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_heads() == self._revision

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HistoryStore({self.url.render_as_string(hide_password=True)!r})"

    # inventory -------------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> sqlite_dialect.Insert | pg_dialect.Insert:
        """An INSERT of the store's backend, which has ``ON CONFLICT``."""
        dialect = sqlite_dialect if self.url.get_backend_name() == "sqlite" else pg_dialect
        return dialect.insert(table)

    def _upsert(self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        keys = [c.name for c in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c: stmt.excluded[c] for c in rows[0] if c not in keys},
        )
        connection.execute(stmt, rows)

    def upsert_inventory(self, inventory: Inventory, at: float) -> None:
        """Record the whole cloud as seen at ``at``. Hosts and VMs absent from ``inventory`` keep
        their last known record (the history still refers to them) and are marked gone since
        ``at``; one that is listed again is present again.

        Only what changed is written whole: the listed records get their new ``seen_at`` (and
        ``gone_at`` cleared) from one set-based UPDATE, and only those whose recorded fields
        differ from the stored ones are upserted. The comparison is made against the database,
        in the transaction that writes, so a change another writer made, or one made while this
        process was not running, is never missed; the rows stored are those that writing every
        record whole stored (see :meth:`_record_listed`).
        """
        with self.engine.begin() as connection:
            listed = (
                (schema.hosts, inventory.hosts.values(), _host_row),
                (schema.vms, inventory.vms.values(), _vm_row),
            )
            for table, records, to_row in listed:
                self._record_listed(connection, table, records, to_row, float(at))
                connection.execute(
                    table.update()
                    .where(table.c.gone_at.is_(None), table.c.seen_at < float(at))
                    .values(gone_at=float(at))
                )

    def _record_listed(
        self,
        connection: sa.Connection,
        table: sa.Table,
        records: Collection[Any],
        to_row: Callable[[Any], dict[str, Any]],
        at: float,
    ) -> None:
        """Store ``records`` (hosts or VMs; ``to_row`` gives the fields ``table`` records of one,
        without ``seen_at``/``gone_at``) as listed at ``at``.

        First every stored row among them is marked seen at ``at`` and present, by one UPDATE that
        returns their recorded fields: it holds the write lock (SQLite) or the rows' locks
        (PostgreSQL) from before the fields are read until the commit, so no other writer can
        change them in between. Then the records that are new or differ in any recorded field
        are upserted whole.

        A record is turned into a row only when its ``repr`` (every field, with its type, so ``1``
        is not ``1.0``) differs from the one it had in this process's last inventory: building
        rows and their JSON cost more than the statements. What its row holds is a function of
        its fields, so this memo cannot go stale; the database still decides what is written.
        Generic over the fields: one added to the rows is compared and recorded like the others.
        """
        known = self._recorded.get(table.name, {})
        json_fields = _json_columns(table)
        listed: dict[str, tuple[str, tuple[Any, ...]]] = {}
        rows: dict[str, dict[str, Any]] = {}
        for record in records:
            fingerprint = repr(record)
            seen = known.get(record.id)
            if seen is None or seen[0] != fingerprint:
                rows[record.id] = row = to_row(record)
                fields = self._fields.setdefault(table.name, [n for n in row if n not in _TIMES])
                seen = (fingerprint, _as_stored(row, fields, json_fields))
            listed[record.id] = seen
        self._recorded[table.name] = listed
        if not listed:
            return
        fields = self._fields[table.name]
        # JSON as its stored text: decoding it cost more than writing the rows
        columns = [sa.cast(table.c[n], sa.Text) if n in json_fields else table.c[n] for n in fields]
        ids = list(listed)
        # the fields include the id, so a listed row found here is its own row, unchanged
        stored: set[tuple[Any, ...]] = set()
        for begin in range(0, len(ids), INVENTORY_CHUNK):
            chunk = ids[begin : begin + INVENTORY_CHUNK]
            mark_seen = table.update().where(table.c.id.in_(chunk)).values(seen_at=at, gone_at=None)
            stored.update(tuple(row) for row in connection.execute(mark_seen.returning(*columns)))
        by_id = {record.id: record for record in records} if len(rows) < len(listed) else {}
        changed = [
            (rows.get(record_id) or to_row(by_id[record_id])) | {"seen_at": at, "gone_at": None}
            for record_id, (_, as_stored) in listed.items()
            if as_stored not in stored
        ]
        for begin in range(0, len(changed), BATCH_ROWS):
            self._upsert(connection, table, changed[begin : begin + BATCH_ROWS])

    def hosts(self, present_only: bool = False) -> dict[str, Host]:
        """Last known host records; ``present_only``: those the last inventory listed."""
        query = sa.select(schema.hosts).order_by(schema.hosts.c.id)
        if present_only:
            query = query.where(schema.hosts.c.gone_at.is_(None))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings()
            return {
                r["id"]: Host(
                    id=r["id"],
                    name=r["name"],
                    capacity=Resources.from_dict(r["capacity"]),
                    cluster=r["cluster"],
                    maintenance=bool(r["maintenance"]),
                    power_model=r["power_model"],
                    attributes=dict(r["attributes"]),
                )
                for r in rows
            }

    def vms(self, present_only: bool = False) -> dict[str, VM]:
        """Last known VM records (tenant, workload class, size, host); ``present_only``: those the
        last inventory listed (not a VM deleted since)."""
        query = sa.select(schema.vms).order_by(schema.vms.c.id)
        if present_only:
            query = query.where(schema.vms.c.gone_at.is_(None))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings()
            return {
                r["id"]: VM(
                    id=r["id"],
                    name=r["name"],
                    host_id=r["host_id"],
                    size=Resources.from_dict(r["size"]),
                    allocation=_allocation_from_json(r["allocation"]) or Allocation(),
                    vcpus=r["vcpus"],
                    tenant=r["tenant"],
                    workload=WorkloadClass(r["app_type"], r["priority"], r["security_level"]),
                    critical=bool(r["critical"]),
                    state=VMState(r["state"]),
                    flavor=r["flavor"],
                    attributes=dict(r["attributes"]),
                    migration_target=r["migration_target"],
                )
                for r in rows
            }

    # metric samples --------------------------------------------------------------------------

    def add_samples(self, samples: Iterable[MetricSample], not_after: float | None = None) -> IngestReport:
        """Store valid samples; keep invalid ones apart in ``rejected_samples`` with the reason,
        so bad input never pollutes what predictors learn from and is never silently lost.
        Samples stamped at or after ``not_after`` (the time a caller read them up to) are ``future``.

        A valid sample whose VM, metric and timestamp a raw sample already has (sent again, or
        twice in ``samples``) is a duplicate: not stored again, the first value stays, and it is
        counted in ``duplicates``. A bucket's downsampled mean does not say which raw samples it
        holds, so a raw sample sent again after retention downsampled its bucket is stored, and
        merged into that mean again by the next :meth:`downsample`.
        """
        accepted: list[tuple[str, str, float, float]] = []
        rejected: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        received_at = time.time()
        n_valid = n_stored = 0
        with self.engine.begin() as connection:
            for sample in samples:
                reason = rejection_reason(sample, not_after)
                if reason is None:
                    accepted.append(
                        (sample.vm_id, str(sample.metric), float(sample.timestamp), float(sample.value))
                    )
                    if len(accepted) >= BATCH_ROWS:
                        n_stored += self._insert_samples(connection, accepted)
                        n_valid += len(accepted)
                        accepted = []
                else:
                    reasons[reason] += 1
                    rejected.append(
                        {
                            "vm_id": str(sample.vm_id)[:255],
                            "metric": str(sample.metric)[:255],
                            "timestamp": repr(sample.timestamp)[:64],
                            "value": repr(sample.value)[:64],
                            "reason": reason,
                            "received_at": received_at,
                        }
                    )
            if accepted:
                n_stored += self._insert_samples(connection, accepted)
                n_valid += len(accepted)
            if rejected:
                connection.execute(schema.rejected_samples.insert(), rejected)
        return IngestReport(n_stored, len(rejected), dict(reasons), duplicates=n_valid - n_stored)

    def _insert_samples(self, connection: sa.Connection, rows: list[tuple[str, str, float, float]]) -> int:
        """Bulk insert of raw samples that leaves out those the store holds (its unique key);
        returns how many were stored. :meth:`_copy_samples` with psycopg on PostgreSQL, the
        driver's own executemany on SQLite, SQLAlchemy's executemany with other drivers."""
        if self.url.get_backend_name() == "postgresql" and self.url.get_driver_name() == "psycopg":
            return self._copy_samples(connection, rows)
        if self.url.get_backend_name() == "sqlite":
            result = connection.exec_driver_sql(
                "INSERT INTO samples (vm_id, metric, timestamp, value, resolution) VALUES (?, ?, ?, ?, 0) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
            return int(result.rowcount)
        result = connection.execute(
            self._insert(schema.samples).on_conflict_do_nothing().returning(schema.samples.c.id),
            [{"vm_id": r[0], "metric": r[1], "timestamp": r[2], "value": r[3]} for r in rows],
        )
        return len(result.all())

    @staticmethod
    def _copy_samples(connection: sa.Connection, rows: list[tuple[str, str, float, float]]) -> int:
        """PostgreSQL: ``COPY`` (about twice as fast as batched INSERTs) straight into ``samples``,
        since a batch seldom holds a sample already stored. When one does, the key refuses the
        COPY, which is undone to a savepoint and done again into a temporary table, from which
        ``INSERT ... ON CONFLICT DO NOTHING`` takes the new rows (about half as fast)."""
        import psycopg

        cursor = connection.connection.cursor()
        try:
            try:
                with (
                    connection.begin_nested(),
                    cursor.copy("COPY samples (vm_id, metric, timestamp, value) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass
            cursor.execute(
                "CREATE TEMPORARY TABLE incoming_samples "
                "(vm_id text, metric text, timestamp float8, value float8) ON COMMIT DROP"
            )
            with cursor.copy("COPY incoming_samples (vm_id, metric, timestamp, value) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                "INSERT INTO samples (vm_id, metric, timestamp, value) "
                "SELECT vm_id, metric, timestamp, value FROM incoming_samples ON CONFLICT DO NOTHING"
            )
            stored = cursor.rowcount
            cursor.execute("DROP TABLE incoming_samples")
            return stored
        finally:
            cursor.close()

    def rejected_samples(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected input as received (value and timestamp as text), oldest first."""
        query = sa.select(schema.rejected_samples).order_by(schema.rejected_samples.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def _sample_query(
        self,
        columns: Sequence[sa.ColumnElement[Any]],
        start: float,
        end: float,
        vm_ids: Iterable[str] | None,
        metrics: Iterable[str] | None,
    ) -> sa.Select[Any]:
        t = schema.samples
        query = sa.select(*columns).where(t.c.timestamp >= float(start), t.c.timestamp < float(end))
        if vm_ids is not None:
            query = query.where(t.c.vm_id.in_(list(vm_ids)))
        if metrics is not None:
            query = query.where(t.c.metric.in_([str(m) for m in metrics]))
        return query

    def samples(
        self,
        start: float,
        end: float,
        vm_ids: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> list[MetricSample]:
        """Stored samples with ``start <= timestamp < end`` (downsampled ones carry their bucket
        start as timestamp), ordered by time, VM and metric."""
        t = schema.samples
        query = self._sample_query(
            [t.c.vm_id, t.c.timestamp, t.c.metric, t.c.value], start, end, vm_ids, metrics
        ).order_by(t.c.timestamp, t.c.vm_id, t.c.metric, t.c.id)
        with self.engine.connect() as connection:
            return [MetricSample(*row) for row in connection.execute(query)]

    def downsampled_until(self, start: float, end: float, step: float) -> dict[tuple[str, str], float]:
        """Per ``(vm_id, metric)``, the end of its last ``step`` bucket in ``[start, end)`` that
        :meth:`downsample` replaced by a mean.

        The key cannot recognise a raw sample sent again into such a bucket (:meth:`add_samples`),
        so a writer that reads a period again (a new control loop) leaves out what falls before it.
        """
        if not step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        t = schema.samples
        first_bucket = math.floor(float(start) / step) * step
        query = (
            self._sample_query(
                [t.c.vm_id, t.c.metric, sa.func.max(t.c.timestamp)], first_bucket, end, None, None
            )
            .where(t.c.resolution == float(step))
            .group_by(t.c.vm_id, t.c.metric)
        )
        with self.engine.connect() as connection:
            return {(vm_id, metric): float(last) + step for vm_id, metric, last in connection.execute(query)}

    def _fetch_plain(self, connection: sa.Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
        """Rows as the driver's plain tuples: building SQLAlchemy Row objects costs as much as the
        database read itself on large windows."""
        dialect = self.engine.dialect
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params: Any = compiled.params
        if compiled.positiontup is not None:
            params = tuple(params[name] for name in compiled.positiontup)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(str(compiled), params)
            return cursor.fetchall()
        finally:
            cursor.close()

    def series(
        self,
        start: float,
        end: float,
        step: float,
        vm_ids: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> TelemetryWindow:
        """Samples on a regular grid: column ``k`` is the mean over ``[start + k*step,
        start + (k+1)*step)``, labelled by its start; NaN where nothing was recorded.

        Rows follow ``vm_ids`` when given (unknown VMs give NaN rows), else the VMs seen, sorted.
        Metrics likewise: every requested metric is present, even with no data.
        """
        if not step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        n_steps = max(0, math.ceil((float(end) - float(start)) / step - 1e-9))
        timestamps = float(start) + step * np.arange(n_steps, dtype=float)
        t = schema.samples
        query = self._sample_query(
            [t.c.vm_id, t.c.metric, t.c.timestamp, t.c.value, t.c.weight], start, end, vm_ids, metrics
        )
        with self.engine.connect() as connection:
            rows = self._fetch_plain(connection, query)
        found_vms = sorted({r[0] for r in rows})
        row_ids = list(vm_ids) if vm_ids is not None else found_vms
        metric_names = [str(m) for m in metrics] if metrics is not None else sorted({r[1] for r in rows})
        row_of = {vm: i for i, vm in enumerate(row_ids)}
        values = {m: np.full((len(row_ids), n_steps), np.nan) for m in metric_names}
        if rows and n_steps:
            vm_col = np.array([row_of[r[0]] for r in rows], dtype=np.int64)
            metric_col = np.array([r[1] for r in rows], dtype=object)
            ts_col = np.array([r[2] for r in rows], dtype=float)
            value_col = np.array([r[3] for r in rows], dtype=float)
            # a downsampled mean weighs as many raw samples as it stands for
            weight_col = np.array([r[4] for r in rows], dtype=float)
            bucket = np.minimum(((ts_col - float(start)) // step).astype(np.int64), n_steps - 1)
            cell = vm_col * n_steps + bucket
            size = len(row_ids) * n_steps
            for metric in metric_names:
                mask = metric_col == metric
                if not mask.any():
                    continue
                sums = np.bincount(cell[mask], weights=value_col[mask] * weight_col[mask], minlength=size)
                counts = np.bincount(cell[mask], weights=weight_col[mask], minlength=size)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
                values[metric] = mean.reshape(len(row_ids), n_steps)
        return TelemetryWindow(row_ids, timestamps, values, float(step))

    def downsample(self, older_than: float, step: float) -> int:
        """Retention: replace raw samples in whole ``step`` buckets (aligned to the epoch) that end
        at or before ``older_than`` by one mean per VM, metric and bucket, weighted by how many
        raw samples it stands for.

        Returns the number of raw rows removed. Running it again is harmless; a raw sample that
        arrived late, in a bucket already downsampled at this ``step``, is merged into that
        bucket's mean with the weight of one sample. So is one sent again after its bucket was
        downsampled: the mean does not say which samples it holds (see :meth:`downsampled_until`).
        """
        if not step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        cutoff = math.floor(float(older_than) / step) * step
        t = schema.samples
        raw_old = sa.and_(t.c.resolution == 0, t.c.timestamp < cutoff)
        with self.engine.begin() as connection:
            rows = connection.execute(
                sa.select(t.c.vm_id, t.c.metric, t.c.timestamp, t.c.value, t.c.weight).where(raw_old)
            ).all()
            if not rows:
                return 0
            sums: dict[tuple[str, str, float], float] = {}
            weights: Counter[tuple[str, str, float]] = Counter()
            for vm_id, metric, timestamp, value, weight in rows:
                key = (vm_id, metric, math.floor(timestamp / step) * step)
                sums[key] = sums.get(key, 0.0) + value * weight
                weights[key] += weight
            earlier = connection.execute(
                sa.select(t.c.id, t.c.vm_id, t.c.metric, t.c.timestamp, t.c.value, t.c.weight).where(
                    t.c.resolution == float(step),
                    t.c.timestamp >= min(k[2] for k in sums),
                    t.c.timestamp <= max(k[2] for k in sums),
                )
            ).all()
            merged = []
            for row_id, vm_id, metric, timestamp, value, weight in earlier:
                key = (vm_id, metric, timestamp)
                if key in sums:
                    sums[key] += value * weight
                    weights[key] += weight
                    merged.append(row_id)
            means = [
                {
                    "vm_id": k[0],
                    "metric": k[1],
                    "timestamp": k[2],
                    "value": total / weights[k],
                    "resolution": float(step),
                    "weight": int(weights[k]),
                }
                for k, total in sums.items()
            ]
            removed = connection.execute(t.delete().where(raw_old)).rowcount
            for begin in range(0, len(merged), BATCH_ROWS):
                connection.execute(t.delete().where(t.c.id.in_(merged[begin : begin + BATCH_ROWS])))
            for begin in range(0, len(means), BATCH_ROWS):
                connection.execute(t.insert(), means[begin : begin + BATCH_ROWS])
        return int(removed)

    # events ----------------------------------------------------------------------------------

    def add_events(self, events: Iterable[Event]) -> int:
        """Store events; returns how many were new. An event that says exactly what a stored one
        says (its VMs taken as a set, see :func:`schema.event_id`) is that event sent again: it
        is not stored again. An event whose times or severity are not finite numbers is not
        stored: it is logged whole, as a warning, and the others are stored."""
        event_rows: dict[str, dict[str, Any]] = {}
        for event in events:
            if problem := event_problem(event):
                LOG.warning("event not stored (%s): %r", problem, event)
                continue
            row = {
                "timestamp": float(event.timestamp),
                "kind": EventKind(event.kind).value,
                "host_id": event.host_id,
                "duration": float(event.duration),
                "severity": float(event.severity),
                "resource": event.resource,
                "message": event.message,
                "source": event.source,
                "details": dict(event.details),
                "vm_ids": list(event.vm_ids),
            }
            event_rows.setdefault(schema.event_id(**row), row)
        if not event_rows:
            return 0
        with self.engine.begin() as connection:
            stored = (
                connection.execute(
                    self._insert(schema.events).on_conflict_do_nothing().returning(schema.events.c.id),
                    [{"id": event_id} | row for event_id, row in event_rows.items()],
                )
                .scalars()
                .all()
            )
            link_rows = [
                {"event_id": event_id, "vm_id": vm}
                for event_id in stored
                for vm in dict.fromkeys(event_rows[event_id]["vm_ids"])
            ]
            if link_rows:
                connection.execute(schema.event_vms.insert(), link_rows)
        return len(stored)

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[EventKind | str] | None = None,
        vm_id: str | None = None,
        host_id: str | None = None,
    ) -> list[Event]:
        """Events with ``start <= timestamp < end``, oldest first, optionally filtered."""
        t = schema.events
        query = sa.select(t).where(t.c.timestamp >= float(start), t.c.timestamp < float(end))
        if kinds is not None:
            query = query.where(t.c.kind.in_([EventKind(k).value for k in kinds]))
        if host_id is not None:
            query = query.where(t.c.host_id == host_id)
        if vm_id is not None:
            links = schema.event_vms
            query = query.where(t.c.id.in_(sa.select(links.c.event_id).where(links.c.vm_id == vm_id)))
        query = query.order_by(t.c.timestamp, t.c.id)
        with self.engine.connect() as connection:
            return [
                Event(
                    timestamp=r["timestamp"],
                    kind=EventKind(r["kind"]),
                    vm_ids=tuple(r["vm_ids"]),
                    host_id=r["host_id"],
                    duration=r["duration"],
                    severity=r["severity"],
                    resource=r["resource"],
                    message=r["message"],
                    source=r["source"],
                    details=dict(r["details"]),
                )
                for r in connection.execute(query).mappings()
            ]

    # plans -----------------------------------------------------------------------------------

    def save_plan(self, plan: ActionPlan) -> None:
        """Store ``plan`` and all its steps; saving the same plan id again replaces it. A step
        whose expected benefit is not a finite number is a :class:`MalformedInputError` before
        anything is written."""
        for action in plan.actions:
            if not math.isfinite(float(action.expected_benefit)):
                raise MalformedInputError(
                    f"plan {plan.id}",
                    None,
                    f"step {action.index} has expected_benefit {float(action.expected_benefit)!r}, "
                    "expected a finite number",
                )
        now = time.time()
        step_rows = [
            {
                "plan_id": plan.id,
                "index": int(a.index),
                "kind": ActionKind(a.kind).value,
                "vm_id": a.vm_id,
                "source_host_id": a.source_host_id,
                "target_host_id": a.target_host_id,
                "size": a.size.as_dict() if a.size is not None else None,
                "allocation": _allocation_to_json(a.allocation),
                "host_id": a.host_id,
                "maintenance": a.maintenance,
                "depends_on": [int(d) for d in a.depends_on],
                "reason": a.reason,
                "expected_benefit": float(a.expected_benefit),
                "status": StepStatus(a.status).value,
                "message": a.message,
                "updated_at": now,
            }
            for a in plan.actions
        ]
        with self.engine.begin() as connection:
            connection.execute(schema.plan_steps.delete().where(schema.plan_steps.c.plan_id == plan.id))
            connection.execute(schema.plans.delete().where(schema.plans.c.id == plan.id))
            connection.execute(
                schema.plans.insert(),
                {
                    "id": plan.id,
                    "strategy": plan.strategy,
                    "created_at": float(plan.created_at),
                    "stats": _json_safe(plan.stats),
                },
            )
            if step_rows:
                connection.execute(schema.plan_steps.insert(), step_rows)

    def update_step(self, plan_id: str, index: int, status: StepStatus, message: str = "") -> None:
        """Record the outcome of one step; an unknown plan or step raises :class:`NotFound`."""
        steps = schema.plan_steps
        with self.engine.begin() as connection:
            result = connection.execute(
                steps.update()
                .where(steps.c.plan_id == plan_id, steps.c["index"] == int(index))
                .values(status=StepStatus(status).value, message=message, updated_at=time.time())
            )
            if result.rowcount == 0:
                exists = connection.execute(
                    sa.select(schema.plans.c.id).where(schema.plans.c.id == plan_id)
                ).first()
                if exists is None:
                    raise NotFound(f"no plan {plan_id!r} in the history store")
                raise NotFound(f"plan {plan_id!r} has no step {index}")

    def get_plan(self, plan_id: str) -> ActionPlan:
        plans = self._load_plans(sa.select(schema.plans).where(schema.plans.c.id == plan_id))
        if not plans:
            raise NotFound(f"no plan {plan_id!r} in the history store")
        return plans[0]

    def list_plans(self, limit: int = 20, strategy: str | None = None) -> list[ActionPlan]:
        """Most recent plans first."""
        query = sa.select(schema.plans)
        if strategy is not None:
            query = query.where(schema.plans.c.strategy == strategy)
        query = query.order_by(schema.plans.c.created_at.desc(), schema.plans.c.id).limit(int(limit))
        return self._load_plans(query)

    def plans_with_steps(
        self, statuses: Iterable[StepStatus], plan_ids: Iterable[str] | None = None
    ) -> list[ActionPlan]:
        """Plans (among ``plan_ids`` when given) with at least one step in one of ``statuses``,
        oldest first: an executor whose steps finish after the round that started them (vCenter
        scheduled tasks) finds the plans it still has to follow up, also after a restart."""
        steps = schema.plan_steps
        wanted = sa.select(steps.c.plan_id).where(steps.c.status.in_([StepStatus(s).value for s in statuses]))
        if plan_ids is not None:
            ids = sorted(set(plan_ids))
            if not ids:
                return []
            wanted = wanted.where(steps.c.plan_id.in_(ids))
        query = (
            sa.select(schema.plans)
            .where(schema.plans.c.id.in_(wanted.distinct()))
            .order_by(schema.plans.c.created_at, schema.plans.c.id)
        )
        return self._load_plans(query)

    def failed_steps_since(self, since: float, containing: str, lacking: str) -> list[tuple[str, int, str]]:
        """(plan id, step index, message) of the failed steps recorded at or after ``since`` whose
        message contains ``containing`` and not ``lacking``, oldest first: an executor finds the
        steps whose outcome was unknown, to add what the cloud tells later."""
        steps = schema.plan_steps
        query = (
            sa.select(steps.c.plan_id, steps.c["index"], steps.c.message)
            .where(
                steps.c.status == StepStatus.FAILED.value,
                steps.c.updated_at >= float(since),
                steps.c.message.contains(containing, autoescape=True),
                ~steps.c.message.contains(lacking, autoescape=True),
            )
            .order_by(steps.c.updated_at, steps.c.plan_id, steps.c["index"])
        )
        with self.engine.connect() as connection:
            return [(r.plan_id, int(r.index), r.message) for r in connection.execute(query)]

    def _load_plans(self, query: sa.Select[Any]) -> list[ActionPlan]:
        with self.engine.connect() as connection:
            plan_rows = connection.execute(query).mappings().all()
            if not plan_rows:
                return []
            steps = schema.plan_steps
            step_rows = connection.execute(
                sa.select(steps)
                .where(steps.c.plan_id.in_([p["id"] for p in plan_rows]))
                .order_by(steps.c.plan_id, steps.c["index"])
            ).mappings()
            actions: dict[str, list[Action]] = {p["id"]: [] for p in plan_rows}
            for r in step_rows:
                actions[r["plan_id"]].append(
                    Action(
                        index=r["index"],
                        kind=ActionKind(r["kind"]),
                        vm_id=r["vm_id"],
                        source_host_id=r["source_host_id"],
                        target_host_id=r["target_host_id"],
                        size=Resources.from_dict(r["size"]) if r["size"] is not None else None,
                        allocation=_allocation_from_json(r["allocation"]),
                        host_id=r["host_id"],
                        maintenance=r["maintenance"],
                        depends_on=tuple(r["depends_on"]),
                        reason=r["reason"],
                        expected_benefit=r["expected_benefit"],
                        status=StepStatus(r["status"]),
                        message=r["message"],
                    )
                )
        return [
            ActionPlan(
                strategy=p["strategy"],
                actions=actions[p["id"]],
                id=p["id"],
                created_at=p["created_at"],
                stats=dict(p["stats"]),
            )
            for p in plan_rows
        ]
