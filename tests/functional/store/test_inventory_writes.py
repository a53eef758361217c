"""Recording an inventory writes what changed, and stores exactly what writing it all stored.

The control loop records the whole cloud every round (``upsert_inventory``); an operator with
thousands of VMs expects a round of a cloud that did not change to cost little. The database is
the truth: another writer, or a restarted process, must never leave a record the listing
contradicts.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from cotenancy.model import VM, Allocation, Host, Inventory, Resources, VMState, WorkloadClass
from cotenancy.store import HistoryStore, schema
from cotenancy.store import history as history_module

T0 = 1_700_000_000.0


def _host(i: int, **changes: Any) -> Host:
    return replace(Host(f"h{i}", f"host-{i}", Resources(cpu=8000, memory=16384), cluster="c1"), **changes)


def _vm(i: int, **changes: Any) -> VM:
    vm = VM(
        f"vm-{i}",
        f"web-{i}",
        f"h{i % 2}",
        Resources(cpu=1000, memory=1024),
        allocation=Allocation(Resources(cpu=100), Resources(cpu=900), shares=1000),
        vcpus=2,
        tenant="acme",
        workload=WorkloadClass("web", 5, "internal"),
        attributes={"zone": "eu", "rack": "r1"},
    )
    return replace(vm, **changes)


def _inventory(hosts: list[Host], vms: list[VM]) -> Inventory:
    return Inventory(hosts={h.id: h for h in hosts}, vms={v.id: v for v in vms})


def _rounds() -> list[tuple[float, Inventory]]:
    """A cloud that changes the ways clouds do, round after round."""
    hosts = [_host(0), _host(1)]
    vms = [_vm(i) for i in range(4)]
    return [
        (T0, _inventory(hosts, vms)),
        (T0 + 300, _inventory(hosts, vms)),  # nothing changed
        (
            T0 + 600,  # a VM moved, one resized, one deleted, one created, a host in maintenance
            _inventory(
                [hosts[0], _host(1, maintenance=True)],
                [
                    _vm(0, host_id="h1"),
                    _vm(1, size=Resources(cpu=2000, memory=1024)),
                    _vm(2),
                    _vm(4, state=VMState.MIGRATING),
                ],
            ),
        ),
        (
            T0 + 900,  # the deleted VM is back unchanged; attributes reordered, an int became a float
            _inventory(
                [hosts[0], _host(1, maintenance=True)],
                [
                    _vm(0, host_id="h1"),
                    _vm(1, size=Resources(cpu=2000, memory=1024)),
                    _vm(2, attributes={"rack": "r1", "zone": "eu"}),
                    _vm(3),
                    _vm(4, state=VMState.MIGRATING, attributes={"zone": "eu", "rack": "r1", "slot": 1}),
                ],
            ),
        ),
        (
            T0 + 1200,  # a host gone with its VMs, a VM back with a new tenant
            _inventory(
                [hosts[0]],
                [_vm(0, host_id="h0"), _vm(3), _vm(4, attributes={"zone": "eu", "rack": "r1", "slot": 1.0})],
            ),
        ),
        (
            T0 + 1200,
            _inventory([hosts[0]], [_vm(0, host_id="h0"), _vm(3, tenant="other")]),
        ),  # same time again
        (T0 + 1500, _inventory(hosts, vms)),  # everything back as it began
        (T0 + 1000, _inventory([hosts[1]], [_vm(1)])),  # an older listing recorded late
        (T0 + 1800, Inventory()),  # an empty cloud
    ]


def _full_write(engine: sa.Engine, inventory: Inventory, at: float) -> None:
    """What recording an inventory did before it wrote only what changed: every listed record
    written whole, seen at ``at``; the others not seen since before ``at`` marked gone."""
    listed = (
        (schema.hosts, [history_module._host_row(h) for h in inventory.hosts.values()]),
        (schema.vms, [history_module._vm_row(v) for v in inventory.vms.values()]),
    )
    with engine.begin() as connection:
        for table, rows in listed:
            for row in rows:
                connection.execute(table.delete().where(table.c.id == row["id"]))
                connection.execute(table.insert(), row | {"seen_at": at, "gone_at": None})
            connection.execute(
                table.update().where(table.c.gone_at.is_(None), table.c.seen_at < at).values(gone_at=at)
            )


def _stored(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``hosts`` and ``vms``, JSON columns as the text stored."""
    tables = {}
    with engine.connect() as connection:
        for table in (schema.hosts, schema.vms):
            columns = [sa.cast(c, sa.Text) if isinstance(c.type, sa.JSON) else c for c in table.columns]
            tables[table.name] = [
                tuple(r) for r in connection.execute(sa.select(*columns).order_by(table.c.id))
            ]
    return tables


@contextmanager
def _full_rows_written(store: HistoryStore) -> Iterator[list[str]]:
    """Collects the tables that each INSERT into ``hosts``/``vms`` wrote a row to, one per row."""
    written: list[str] = []

    def count(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        for table in ("hosts", "vms"):
            if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
                written.extend([table] * (len(parameters) if executemany else 1))

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield written
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def test_each_round_stores_exactly_the_rows_writing_the_whole_inventory_stored(
    history_store_url: str, another_history_store_url: str
) -> None:
    reference = sa.create_engine(another_history_store_url)
    with HistoryStore(history_store_url) as store, HistoryStore(another_history_store_url):
        try:
            for at, inventory in _rounds():
                store.upsert_inventory(inventory, at)
                _full_write(reference, inventory, at)
                assert _stored(store.engine) == _stored(reference), f"round at {at - T0:+g} s"
        finally:
            reference.dispose()


def test_a_round_writes_whole_only_the_records_that_appeared_changed_or_came_back(
    history_store: HistoryStore,
) -> None:
    hosts = [_host(0), _host(1)]
    vms = [_vm(i) for i in range(200)]
    history_store.upsert_inventory(_inventory(hosts, vms), T0)

    with _full_rows_written(history_store) as written:
        history_store.upsert_inventory(_inventory(hosts, vms), T0 + 300)
        assert written == [], "a cloud that did not change rewrites no record"
        assert set(history_store.vms(present_only=True)) == {v.id for v in vms}

        changed = [_vm(7, host_id="h0"), *vms[:7], *vms[8:150]]  # one VM moved, 50 deleted
        history_store.upsert_inventory(_inventory(hosts, changed), T0 + 600)
        assert written == ["vms"]
        written.clear()
        history_store.upsert_inventory(_inventory([_host(0, maintenance=True)], vms), T0 + 900)
        assert sorted(written) == ["hosts"] + ["vms"] * 1, "the host, and the VM that moved back"
    assert history_store.vms(present_only=True) == {v.id: v for v in vms}, "the deleted VMs came back"


def test_a_restarted_writer_records_what_changed_while_it_was_away(history_store_url: str) -> None:
    hosts = [_host(0), _host(1)]
    with HistoryStore(history_store_url) as store:
        store.upsert_inventory(_inventory(hosts, [_vm(0), _vm(1), _vm(2)]), T0)
    with HistoryStore(history_store_url) as store:
        store.upsert_inventory(_inventory(hosts, [_vm(0, host_id="h1"), _vm(1), _vm(3)]), T0 + 300)
        assert store.vms(present_only=True) == {
            "vm-0": _vm(0, host_id="h1"),
            "vm-1": _vm(1),
            "vm-3": _vm(3),
        }
        assert store.vms()["vm-2"] == _vm(2)


def test_a_listing_overrides_what_another_writer_stored_meanwhile(history_store_url: str) -> None:
    hosts = [_host(0), _host(1)]
    ours = _inventory(hosts, [_vm(0), _vm(1)])
    with HistoryStore(history_store_url) as store, HistoryStore(history_store_url) as other:
        store.upsert_inventory(ours, T0)
        other.upsert_inventory(_inventory(hosts, [_vm(0, host_id="h1", tenant="other")]), T0 + 300)
        store.upsert_inventory(ours, T0 + 600)
        assert store.vms(present_only=True) == ours.vms
        assert other.vms(present_only=True) == ours.vms


ROUNDS_PER_WRITER = 25
VMS_PER_WRITER = 40


def _listing_of(writer: int) -> Inventory:
    """What writer ``writer`` sees: the same VMs, each on its own host and tenant. No host
    records, so the VMs' are the first a writer locks."""
    return _inventory(
        [],
        [_vm(i, host_id=f"h{writer}", tenant=f"writer-{writer}") for i in range(VMS_PER_WRITER)],
    )


def _write_rounds(url: str, writer: int) -> None:
    with HistoryStore(url) as store:
        for i in range(ROUNDS_PER_WRITER):
            store.upsert_inventory(_listing_of(writer), T0 + 2 * i + writer)


def test_two_processes_recording_at_once_leave_every_record_as_its_last_writer_listed_it(
    history_store_url: str,
) -> None:
    HistoryStore(history_store_url).close()  # migrated before the writers race
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_rounds, args=(history_store_url, k)) for k in (0, 1)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
    assert [p.exitcode for p in writers] == [0, 0]
    with HistoryStore(history_store_url) as store, store.engine.connect() as connection:
        seen = dict(connection.execute(sa.select(schema.vms.c.id, schema.vms.c.seen_at)).all())
        vms = store.vms(present_only=True)
    assert set(vms) == {f"vm-{i}" for i in range(VMS_PER_WRITER)}
    for vm_id, vm in vms.items():
        last_writer = int(seen[vm_id] - T0) % 2
        assert vm == _listing_of(last_writer).vms[vm_id], f"{vm_id} mixes two writers' listings"


@pytest.mark.parametrize("chunk", [1, 3])
def test_inventories_larger_than_one_statement_s_ids_are_recorded_whole(
    history_store: HistoryStore, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(history_module, "INVENTORY_CHUNK", chunk)
    vms = [_vm(i) for i in range(7)]
    history_store.upsert_inventory(_inventory([_host(0), _host(1)], vms), T0)
    history_store.upsert_inventory(_inventory([_host(0)], [_vm(0, tenant="b"), *vms[1:5]]), T0 + 300)
    assert history_store.vms(present_only=True) == {v.id: v for v in [_vm(0, tenant="b"), *vms[1:5]]}
    assert set(history_store.hosts(present_only=True)) == {"h0"}


def test_a_writer_recording_while_another_compares_waits_until_that_one_committed(
    history_store_url: str,
) -> None:
    with HistoryStore(history_store_url) as first, HistoryStore(history_store_url) as second:
        first.upsert_inventory(_listing_of(0), T0)
        other = threading.Thread(target=second.upsert_inventory, args=(_listing_of(1), T0 + 1))

        def record_meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            """Once ``first`` has read the stored VMs to compare, ``second`` records its listing."""
            if other.ident is None and statement.split()[:2] in (["SELECT", "vms.id,"], ["UPDATE", "vms"]):
                other.start()
                other.join(timeout=1.0)

        sa.event.listen(first.engine, "after_cursor_execute", record_meanwhile)
        try:
            first.upsert_inventory(_listing_of(0), T0 + 2)
        finally:
            sa.event.remove(first.engine, "after_cursor_execute", record_meanwhile)
        other.join(timeout=30)
        assert other.ident is not None and not other.is_alive()
        with first.engine.connect() as connection:
            seen = dict(connection.execute(sa.select(schema.vms.c.id, schema.vms.c.seen_at)).all())
        for vm_id, vm in first.vms(present_only=True).items():
            writer = int(seen[vm_id] - T0) % 2
            assert vm == _listing_of(writer).vms[vm_id], f"{vm_id} has one writer's fields, another's time"


def test_a_record_changed_in_place_between_rounds_is_recorded(history_store: HistoryStore) -> None:
    inventory = _inventory([_host(0)], [_vm(0), _vm(1)])
    history_store.upsert_inventory(inventory, T0)
    inventory.vms["vm-0"].attributes["zone"] = "us"
    inventory.vms["vm-1"].host_id = "h1"
    inventory.hosts["h0"].maintenance = True
    history_store.upsert_inventory(inventory, T0 + 300)
    assert history_store.vms() == {
        "vm-0": _vm(0, attributes={"zone": "us", "rack": "r1"}),
        "vm-1": _vm(1, host_id="h1"),
    }
    assert history_store.hosts() == {"h0": _host(0, maintenance=True)}
