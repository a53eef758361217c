"""Migration 0005 gives samples and events their unique key in a database that already holds
duplicates (an older release stored whatever was re-sent), on SQLite and PostgreSQL.

The database is created at revision 0004 with Alembic and filled with SQL as that release wrote it;
opening it as a :class:`HistoryStore` upgrades it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig

from cotenancy.model import Event, EventKind, MetricSample
from cotenancy.store import HistoryStore
from cotenancy.store.history import MIGRATIONS_DIR, normalise_url

T0 = 1_700_000_000.0
HOUR = 3600.0
BASE = HOUR * 400_000

CONFLICT = Event(
    T0 + 10,
    EventKind.DEGRADATION,
    vm_ids=("a", "b"),
    host_id="h1",
    severity=0.15,
    resource="cpu",
    details={"neighbours": "a,b,c"},
)
MIGRATION = Event(T0 + 20, EventKind.MIGRATION, vm_ids=("c",), host_id="h2", source="simulated")


def _raw(vm_id: str, timestamp: float, value: float) -> dict[str, object]:
    return {"vm_id": vm_id, "metric": "cpu", "timestamp": timestamp, "value": value, "resolution": 0.0}


def _mean(value: float, weight: int) -> dict[str, object]:
    return {
        "vm_id": "a",
        "metric": "cpu",
        "timestamp": BASE,
        "value": value,
        "resolution": HOUR,
        "weight": weight,
    }


def _insert_event(connection: sa.Connection, tables: sa.MetaData, event: Event) -> None:
    """As revision 0004's ``add_events`` wrote it: a random id and one link per VM."""
    row = {"id": uuid.uuid4().hex} | {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    connection.execute(tables.tables["events"].insert(), row)
    links = [{"event_id": row["id"], "vm_id": vm} for vm in event.vm_ids]
    connection.execute(tables.tables["event_vms"].insert(), links)


@pytest.fixture
def url_at_0004(history_store_url: str) -> Iterator[str]:
    """A database migrated to revision 0004 and filled with duplicates."""
    engine = sa.create_engine(normalise_url(history_store_url))
    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "0004")
        with engine.begin() as connection:
            # the tables as revision 0004 left them
            tables = sa.MetaData()
            tables.reflect(connection, only=["samples", "events", "event_vms"])
            connection.execute(
                tables.tables["samples"].insert(),
                [
                    _raw("a", T0, 10.0),
                    _raw("a", T0, 10.0),  # re-sent
                    _raw("a", T0, 10.0),  # and again
                    _raw("a", T0 + 60, 20.0),
                    _raw("b", T0, 30.0),
                    _raw("b", T0, 99.0),  # re-sent with another value: the first one stays
                ],
            )
            # an hour's mean, and a second mean a late sample made before revision 0004
            connection.execute(tables.tables["samples"].insert(), [_mean(0.0, 60), _mean(61.0, 1)])
            for event in (CONFLICT, CONFLICT, MIGRATION, CONFLICT):
                _insert_event(connection, tables, event)
        yield history_store_url
    finally:
        engine.dispose()


def test_upgrading_keeps_one_row_per_sample_and_one_event_per_event(url_at_0004: str) -> None:
    with HistoryStore(url_at_0004) as store:
        assert store.samples(T0, T0 + HOUR) == [
            MetricSample("a", T0, "cpu", 10.0),
            MetricSample("b", T0, "cpu", 30.0),
            MetricSample("a", T0 + 60, "cpu", 20.0),
        ]
        assert store.events(T0, T0 + 100) == [CONFLICT, MIGRATION]
        assert store.events(T0, T0 + 100, vm_id="b") == [CONFLICT]
        with store.engine.connect() as connection:
            links = connection.execute(sa.text("select count(*) from event_vms")).scalar_one()
        assert links == 3, "one link per VM of each event left, none dangling"


def test_upgrading_merges_two_means_of_one_bucket_by_their_weights(url_at_0004: str) -> None:
    with HistoryStore(url_at_0004) as store:
        assert store.samples(BASE, BASE + HOUR) == [MetricSample("a", BASE, "cpu", 1.0)]
        with store.engine.connect() as connection:
            weight = connection.execute(
                sa.text("select weight from samples where resolution > 0")
            ).scalar_one()
        assert weight == 61


def test_after_upgrading_what_was_stored_before_is_a_duplicate_when_sent_again(url_at_0004: str) -> None:
    with HistoryStore(url_at_0004) as store:
        report = store.add_samples([MetricSample("a", T0, "cpu", 10.0), MetricSample("b", T0, "cpu", 30.0)])

        assert (report.accepted, report.duplicates) == (0, 2)
        assert store.add_events([CONFLICT, MIGRATION]) == 0
        assert store.events(T0, T0 + 100) == [CONFLICT, MIGRATION]
