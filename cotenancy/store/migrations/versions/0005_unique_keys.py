"""Samples and events get a unique key, so a re-sent sample or event is not stored twice (drivers
retry, collectors read their window again); the duplicates stored until now are removed first.

A sample's key is (timestamp, vm_id, metric, resolution): of raw samples stored more than once the
first stays; means of one bucket stored more than once (a late sample before 0004 made a second
one) become one mean weighted by what each stood for. The index on time alone goes: the key starts
with the time and serves the same reads. An event's key is its id, from now on a digest of what it
says (``schema.event_id``): every stored event gets its digest as id, one of each set of identical
events stays, and the VM links are written again for what is left.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cotenancy.store.schema import event_id

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: rows per statement when events are rewritten
BATCH_ROWS = 5_000
SAMPLE_KEY = ("timestamp", "vm_id", "metric", "resolution")


def upgrade() -> None:
    connection = op.get_bind()
    # the tables as revision 0004 left them
    tables = sa.MetaData()
    samples = sa.Table("samples", tables, autoload_with=connection)
    events = sa.Table("events", tables, autoload_with=connection)
    event_vms = sa.Table("event_vms", tables, autoload_with=connection)
    _merge_repeated_means(connection, samples)
    _delete_repeated_samples(connection, samples)
    op.create_index("uq_samples_timestamp_vm_metric_resolution", "samples", list(SAMPLE_KEY), unique=True)
    op.drop_index("ix_samples_timestamp", table_name="samples")
    _key_events(connection, events, event_vms)


def _merge_repeated_means(connection: sa.Connection, samples: sa.Table) -> None:
    """Each bucket's means become its first row, holding their weighted mean and total weight."""
    key = [samples.c[name] for name in SAMPLE_KEY]
    total = sa.func.sum(samples.c.weight)
    repeated = connection.execute(
        sa.select(
            *key, sa.func.min(samples.c.id), sa.func.sum(samples.c.value * samples.c.weight) / total, total
        )
        .where(samples.c.resolution > 0)
        .group_by(*key)
        .having(sa.func.count() > 1)
    ).all()
    for *values, first, mean, weight in repeated:
        connection.execute(
            samples.update().where(samples.c.id == first).values(value=mean, weight=int(weight))
        )
        same_key = (column == value for column, value in zip(key, values, strict=True))
        connection.execute(samples.delete().where(*same_key, samples.c.id != first))


def _delete_repeated_samples(connection: sa.Connection, samples: sa.Table) -> None:
    """Of the rows with one key, the first (lowest id) stays."""
    earlier = samples.alias("earlier")
    connection.execute(
        samples.delete().where(
            sa.exists().where(
                *(earlier.c[name] == samples.c[name] for name in SAMPLE_KEY), earlier.c.id < samples.c.id
            )
        )
    )


def _key_events(connection: sa.Connection, events: sa.Table, event_vms: sa.Table) -> None:
    """Every event's id becomes its digest; of identical events the first (by time, then old id)
    stays. The links are dropped first (their foreign key would hold the old ids) and written
    again from each remaining event's ``vm_ids``, as ``add_events`` writes them."""
    renamed: dict[str, str] = {}
    kept: set[str] = set()
    dropped: list[str] = []
    links: list[dict[str, str]] = []
    rows = connection.execute(sa.select(events).order_by(events.c.timestamp, events.c.id)).mappings()
    for row in rows:
        new_id = event_id(**{name: value for name, value in row.items() if name != "id"})
        if new_id in kept:
            dropped.append(row["id"])
            continue
        kept.add(new_id)
        renamed[row["id"]] = new_id
        links.extend({"event_id": new_id, "vm_id": vm} for vm in dict.fromkeys(row["vm_ids"]))
    connection.execute(event_vms.delete())
    for begin in range(0, len(dropped), BATCH_ROWS):
        connection.execute(events.delete().where(events.c.id.in_(dropped[begin : begin + BATCH_ROWS])))
    old_ids = list(renamed)
    for begin in range(0, len(old_ids), BATCH_ROWS):
        connection.execute(
            events.update().where(events.c.id == sa.bindparam("old_id")).values(id=sa.bindparam("new_id")),
            [{"old_id": old, "new_id": renamed[old]} for old in old_ids[begin : begin + BATCH_ROWS]],
        )
    for begin in range(0, len(links), BATCH_ROWS):
        connection.execute(event_vms.insert(), links[begin : begin + BATCH_ROWS])


def downgrade() -> None:
    """The key goes; duplicates removed stay removed, and events keep their digests as ids."""
    op.create_index("ix_samples_timestamp", "samples", ["timestamp"])
    op.drop_index("uq_samples_timestamp_vm_metric_resolution", table_name="samples")
