"""Tables of the history store (SQLAlchemy Core).

Migrations under :mod:`cotenancy.store.migrations` create exactly these tables; keep both in step
(``tests/functional/store`` compares them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

#: integer primary keys: BIGINT on PostgreSQL, the rowid alias INTEGER on SQLite
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class _NulEscaped(sa.types.TypeDecorator):
    """Free text from a cloud or a driver, stored with each NUL written as its escape (``\\x00``):
    PostgreSQL's text columns cannot hold NUL at all, and a round must not fail, on one backend
    only, over what a tenant named a VM or a cloud wrote in a fault message. Only NUL changes;
    the rest is stored exactly (and shown escaped where it is shown: :mod:`cotenancy.text`)."""

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return value.replace("\x00", "\\x00") if value is not None and "\x00" in value else value


class CloudString(_NulEscaped):
    """A name or label from the cloud (VARCHAR)."""

    impl = sa.String
    cache_ok = True


class CloudText(_NulEscaped):
    """A message from the cloud or built from its names (TEXT)."""

    impl = sa.Text
    cache_ok = True


metadata = sa.MetaData()

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", CloudString(255), nullable=False),
    sa.Column("capacity", sa.JSON, nullable=False),
    sa.Column("cluster", CloudString(255)),
    sa.Column("maintenance", sa.Boolean, nullable=False),
    sa.Column("power_model", CloudString(255)),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("seen_at", sa.Double, nullable=False),
    # when the first inventory without it was recorded; NULL while it is listed
    sa.Column("gone_at", sa.Double),
)

vms = sa.Table(
    "vms",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", CloudString(255), nullable=False),
    sa.Column("host_id", sa.String(255)),
    sa.Column("size", sa.JSON, nullable=False),
    sa.Column("allocation", sa.JSON, nullable=False),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("tenant", CloudString(255), nullable=False),
    sa.Column("app_type", CloudString(255), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("security_level", CloudString(255), nullable=False),
    sa.Column("critical", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("flavor", CloudString(255)),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("seen_at", sa.Double, nullable=False),
    # when the first inventory without it was recorded; NULL while it is listed
    sa.Column("gone_at", sa.Double),
    # the host a live migration in flight is taking it to, where the driver knows it
    sa.Column("migration_target", sa.String(255)),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("vm_id", sa.String(255), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    # 0 for a raw sample, else the width in seconds of the bucket this mean stands for
    sa.Column("resolution", sa.Double, nullable=False, server_default="0"),
    # how many raw samples the row stands for: 1 for a raw sample, the bucket's count for a mean
    sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_samples_vm_timestamp", "vm_id", "timestamp"),
    # the key (migration 0005): a re-sent sample is not stored again. Time first, so inserts in
    # time order append to the index, and it serves the time-range reads as well.
    sa.Index(
        "uq_samples_timestamp_vm_metric_resolution", "timestamp", "vm_id", "metric", "resolution", unique=True
    ),
)

rejected_samples = sa.Table(
    "rejected_samples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("vm_id", CloudString(255), nullable=False),
    sa.Column("metric", CloudString(255), nullable=False),
    # text, so NaN and infinities survive on every backend exactly as received
    sa.Column("timestamp", sa.String(64), nullable=False),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
)


def event_id(
    *,
    timestamp: float,
    kind: str,
    vm_ids: Iterable[str],
    host_id: str | None,
    duration: float,
    severity: float,
    resource: str | None,
    message: str,
    source: str,
    details: Mapping[str, Any],
) -> str:
    """The key of an event (``events.id``, since migration 0005): a digest of everything it says,
    its VMs taken as a set, so an event sent again has the id it was stored under.

    Migration 0005 gave stored events these ids; a change here needs a migration that gives them
    the new ones, or events stored before would not be recognised when sent again.
    """
    # numbers as floats (-0.0 as 0.0), details as they come back from a JSON column, keys sorted
    said = [
        kind,
        float(timestamp) + 0.0,
        host_id,
        sorted(set(vm_ids)),
        float(duration) + 0.0,
        float(severity) + 0.0,
        resource,
        message,
        source,
        json.loads(json.dumps(dict(details))),
    ]
    text = json.dumps(said, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


events = sa.Table(
    "events",
    metadata,
    # event_id(...) of what the event says: the key that makes a re-sent event a duplicate
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("host_id", sa.String(255)),
    sa.Column("duration", sa.Double, nullable=False),
    sa.Column("severity", sa.Double, nullable=False),
    sa.Column("resource", sa.String(64)),
    sa.Column("message", CloudText, nullable=False),
    sa.Column("source", CloudString(255), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("vm_ids", sa.JSON, nullable=False),
    sa.Index("ix_events_timestamp", "timestamp"),
)

event_vms = sa.Table(
    "event_vms",
    metadata,
    sa.Column("event_id", sa.String(32), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("vm_id", sa.String(255), primary_key=True),
    sa.Index("ix_event_vms_vm_id", "vm_id"),
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("strategy", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("stats", sa.JSON, nullable=False),
    sa.Index("ix_plans_created_at", "created_at"),
)

plan_steps = sa.Table(
    "plan_steps",
    metadata,
    sa.Column("plan_id", sa.String(64), sa.ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("vm_id", sa.String(255)),
    sa.Column("source_host_id", sa.String(255)),
    sa.Column("target_host_id", sa.String(255)),
    sa.Column("size", sa.JSON),
    sa.Column("allocation", sa.JSON),
    sa.Column("host_id", sa.String(255)),
    sa.Column("maintenance", sa.Boolean),
    sa.Column("depends_on", sa.JSON, nullable=False),
    sa.Column("reason", CloudText, nullable=False),
    sa.Column("expected_benefit", sa.Double, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("message", CloudText, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # the executors' follow-up reads a day of failed steps every round (migration 0008)
    sa.Index("ix_plan_steps_status_updated_at", "status", "updated_at"),
)

#: what API clients asked for (hints, affinity rules, drains, critical VMs), see cotenancy.store.requests
api_requests = sa.Table(
    "api_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Index("ix_api_requests_kind_created_at", "kind", "created_at"),
)

#: the first answer to each POST sent with an Idempotency-Key, see cotenancy.store.idempotency
api_idempotency_keys = sa.Table(
    "api_idempotency_keys",
    metadata,
    # the path the key was sent to, and the key: racing requests with one key cannot both store
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    # sha256 of the request body, to tell a retry from a reused key
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(32), nullable=False),
    sa.Column("answer", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_api_idempotency_keys_created_at", "created_at"),
)
