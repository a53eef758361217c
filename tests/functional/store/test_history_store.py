"""The history store on SQLite and PostgreSQL: what goes in comes back out, bad input is kept apart."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from cotenancy.exceptions import MalformedInputError, NotFound
from cotenancy.model import (
    VM,
    ActionKind,
    ActionPlan,
    Allocation,
    Event,
    EventKind,
    Host,
    Inventory,
    MetricSample,
    Resources,
    StepStatus,
    VMState,
    WorkloadClass,
)
from cotenancy.store import HistoryStore, IngestReport, TelemetryBuffer
from cotenancy.store.history import MIGRATIONS_DIR
from cotenancy.store.schema import metadata

T0 = 1_700_000_000.0


def test_opening_an_empty_database_applies_every_migration(history_store_url: str) -> None:
    store = HistoryStore(history_store_url)
    try:
        inspector = sa.inspect(store.engine)
        tables = set(inspector.get_table_names())
        assert set(metadata.tables) <= tables
        assert "alembic_version" in tables
        for name, table in metadata.tables.items():
            assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}
        with store.engine.connect() as connection:
            drift = compare_metadata(MigrationContext.configure(connection), metadata)
        assert drift == [], "migrations and cotenancy/store/schema.py disagree"
        with store.engine.connect() as connection:
            version = connection.execute(sa.text("select version_num from alembic_version")).scalar_one()
        assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    finally:
        store.close()


def test_reopening_keeps_data_and_does_not_migrate_twice(history_store_url: str) -> None:
    with HistoryStore(history_store_url) as store:
        store.add_samples([MetricSample("vm-1", T0, "cpu", 500.0)])
    with HistoryStore(history_store_url) as store:
        assert store.samples(T0, T0 + 1) == [MetricSample("vm-1", T0, "cpu", 500.0)]


def _inventory() -> Inventory:
    hosts = {
        "h1": Host(
            "h1", "host-1", Resources(cpu=8000, memory=16384), cluster="c1", attributes={"rack": "r1"}
        ),
        "h2": Host("h2", "host-2", Resources(cpu=4000, memory=8192), maintenance=True),
    }
    vms = {
        "a": VM(
            "a",
            "web-a",
            "h1",
            Resources(cpu=2000, memory=2048, disk_io=100.0),
            allocation=Allocation(Resources(cpu=500), Resources(cpu=1800), shares=2000),
            vcpus=2,
            tenant="acme",
            workload=WorkloadClass("web", 8, "confidential"),
            critical=True,
            flavor="m1.small",
            attributes={"zone": "eu"},
        ),
        "b": VM("b", "batch-b", None, Resources(cpu=1000, memory=1024), state=VMState.STOPPED),
    }
    return Inventory(hosts=hosts, vms=vms)


def test_inventory_round_trip_and_last_known_records(history_store: HistoryStore) -> None:
    inventory = _inventory()
    history_store.upsert_inventory(inventory, at=T0)
    assert history_store.vms() == inventory.vms
    assert history_store.hosts() == inventory.hosts

    moved = VM("a", "web-a", "h2", Resources(cpu=4000, memory=2048), tenant="acme")
    history_store.upsert_inventory(Inventory(hosts={}, vms={"a": moved}), at=T0 + 60)
    vms = history_store.vms()
    assert vms["a"] == moved
    assert vms["b"] == inventory.vms["b"], "a VM absent from a later snapshot keeps its last record"


def test_the_target_of_a_migration_in_flight_round_trips_and_clears_when_it_landed(
    history_store: HistoryStore,
) -> None:
    inventory = _inventory()
    moving = inventory.vms["a"]
    moving.state, moving.migration_target = VMState.MIGRATING, "h2"
    history_store.upsert_inventory(inventory, at=T0)
    assert history_store.vms()["a"].migration_target == "h2"

    landed = VM("a", "web-a", "h2", Resources(cpu=4000, memory=2048), tenant="acme")
    history_store.upsert_inventory(Inventory(hosts=inventory.hosts, vms={"a": landed}), at=T0 + 60)
    assert history_store.vms()["a"] == landed


def test_what_the_last_inventory_does_not_list_is_gone_until_it_is_listed_again(
    history_store: HistoryStore,
) -> None:
    inventory = _inventory()
    history_store.upsert_inventory(inventory, at=T0)
    assert history_store.vms(present_only=True) == inventory.vms
    assert history_store.hosts(present_only=True) == inventory.hosts

    without_b = Inventory(hosts=inventory.hosts, vms={"a": inventory.vms["a"]})
    history_store.upsert_inventory(without_b, at=T0 + 60)
    assert set(history_store.vms(present_only=True)) == {"a"}
    assert set(history_store.vms()) == {"a", "b"}, "training still finds the VM its history names"

    history_store.upsert_inventory(inventory, at=T0 + 120)
    assert history_store.vms(present_only=True) == inventory.vms


def test_samples_round_trip_in_time_order_with_filters(history_store: HistoryStore) -> None:
    samples = [
        MetricSample(f"vm-{i % 3}", T0 + 10 * i, metric, float(i))
        for i in range(30)
        for metric in ("cpu", "memory")
    ]
    report = history_store.add_samples(reversed(samples))
    assert report == IngestReport(accepted=60, rejected=0, reasons={})

    assert history_store.samples(T0, T0 + 1000) == sorted(
        samples, key=lambda s: (s.timestamp, s.vm_id, s.metric)
    )
    window = history_store.samples(T0 + 50, T0 + 100, vm_ids=["vm-2"], metrics=["cpu"])
    assert window == [MetricSample("vm-2", T0 + 50, "cpu", 5.0), MetricSample("vm-2", T0 + 80, "cpu", 8.0)]


def test_invalid_samples_are_kept_apart_with_their_reason(history_store: HistoryStore) -> None:
    good = MetricSample("vm-1", T0, "cpu", 100.0)
    bad = [
        MetricSample("vm-1", T0, "cpu", math.nan),
        MetricSample("vm-1", T0, "cpu", math.inf),
        MetricSample("vm-1", T0, "memory", -1.0),
        MetricSample("vm-1", T0, "temperature", 40.0),
        MetricSample("vm-1", T0, "cpu_ready", 1.5),
    ]
    report = history_store.add_samples([good, *bad])

    assert report.accepted == 1
    assert report.rejected == 5
    assert report.reasons == {
        "nan": 1,
        "infinite": 1,
        "negative": 1,
        "unknown_metric": 1,
        "ready_above_one": 1,
    }
    assert history_store.samples(T0 - 1, T0 + 1) == [good]
    kept = history_store.rejected_samples()
    assert [(r["metric"], r["value"], r["reason"]) for r in kept] == [
        ("cpu", "nan", "nan"),
        ("cpu", "inf", "infinite"),
        ("memory", "-1.0", "negative"),
        ("temperature", "40.0", "unknown_metric"),
        ("cpu_ready", "1.5", "ready_above_one"),
    ]


def test_series_grids_means_per_bucket_with_nan_where_missing(history_store: HistoryStore) -> None:
    history_store.add_samples(
        [
            MetricSample("a", T0 + 0, "cpu", 10.0),
            MetricSample("a", T0 + 100, "cpu", 30.0),  # same 300 s bucket as the first: mean 20
            MetricSample("a", T0 + 600, "cpu", 50.0),  # third bucket; second stays empty
            MetricSample("b", T0 + 310, "cpu", 7.0),
            MetricSample("b", T0 + 310, "memory", 512.0),
            MetricSample("b", T0 + 900, "cpu", 99.0),  # outside [start, end)
        ]
    )
    window = history_store.series(T0, T0 + 900, 300.0, vm_ids=["a", "b", "ghost"], metrics=["cpu", "gpu"])

    assert window.vm_ids == ["a", "b", "ghost"]
    assert window.step_seconds == 300.0
    np.testing.assert_array_equal(window.timestamps, [T0, T0 + 300, T0 + 600])
    np.testing.assert_array_equal(
        window.values["cpu"], [[20.0, np.nan, 50.0], [np.nan, 7.0, np.nan], [np.nan, np.nan, np.nan]]
    )
    assert np.isnan(window.values["gpu"]).all()
    assert set(window.values) == {"cpu", "gpu"}

    everything = history_store.series(T0, T0 + 900, 300.0)
    assert everything.vm_ids == ["a", "b"]
    assert set(everything.values) == {"cpu", "memory"}
    np.testing.assert_array_equal(everything.values["memory"][1], [np.nan, 512.0, np.nan])


def test_downsample_replaces_old_raw_samples_by_bucket_means(history_store: HistoryStore) -> None:
    base = 3600.0 * 400_000  # hour-aligned
    raw = [MetricSample("a", base + 60 * i, "cpu", float(i)) for i in range(180)]  # 3 hours, 1 per minute
    history_store.add_samples(raw)

    removed = history_store.downsample(older_than=base + 2 * 3600 + 1800, step=3600.0)

    assert removed == 120, "only the two whole hours before the cut-off are replaced"
    kept = history_store.samples(base, base + 4 * 3600)
    assert kept[:2] == [
        MetricSample("a", base, "cpu", float(np.mean(range(60)))),
        MetricSample("a", base + 3600, "cpu", float(np.mean(range(60, 120)))),
    ]
    assert kept[2:] == raw[120:]
    assert history_store.downsample(older_than=base + 2 * 3600 + 1800, step=3600.0) == 0

    hourly = history_store.series(base, base + 3 * 3600, 3600.0)
    np.testing.assert_allclose(hourly.values["cpu"][0], [29.5, 89.5, 149.5])


def test_a_late_raw_sample_merges_into_its_downsampled_bucket_with_the_weight_of_one(
    history_store: HistoryStore,
) -> None:
    base = 3600.0 * 400_000
    history_store.add_samples(MetricSample("a", base + 60 * i, "cpu", 0.0) for i in range(60))
    history_store.downsample(older_than=base + 3600, step=3600.0)
    history_store.add_samples([MetricSample("a", base + 30, "cpu", 61.0)])  # arrives late

    assert history_store.downsample(older_than=base + 3600, step=3600.0) == 1
    assert history_store.samples(base, base + 3600) == [MetricSample("a", base, "cpu", 1.0)]


def test_a_grid_weighs_a_downsampled_mean_as_the_samples_it_stands_for(history_store: HistoryStore) -> None:
    base = 3600.0 * 400_000
    history_store.add_samples(MetricSample("a", base + 60 * i, "cpu", 10.0) for i in range(60))
    history_store.downsample(older_than=base + 3600, step=3600.0)
    history_store.add_samples([MetricSample("a", base + 3600 + 60 * i, "cpu", 70.0) for i in range(3)])

    two_hours = history_store.series(base, base + 7200, 7200.0)
    np.testing.assert_allclose(two_hours.values["cpu"][0], [(60 * 10.0 + 3 * 70.0) / 63])


def test_events_round_trip_and_filters(history_store: HistoryStore) -> None:
    conflict = Event(
        T0 + 10,
        EventKind.DEGRADATION,
        vm_ids=("a", "b"),
        host_id="h1",
        duration=300.0,
        severity=0.15,
        resource="interference",
        message="cache thrash",
        source="simulated",
        details={"victim": "a"},
    )
    migration = Event(T0 + 20, EventKind.MIGRATION, vm_ids=("c",), host_id="h2", source="engine")
    later = Event(T0 + 5000, EventKind.DEGRADATION, vm_ids=("a",), host_id="h2")
    assert history_store.add_events([later, migration, conflict]) == 3

    assert history_store.events(T0, T0 + 100) == [conflict, migration]
    assert history_store.events(T0, T0 + 10_000, kinds=[EventKind.DEGRADATION]) == [conflict, later]
    assert history_store.events(T0, T0 + 10_000, vm_id="a") == [conflict, later]
    assert history_store.events(T0, T0 + 10_000, host_id="h2") == [migration, later]
    assert history_store.events(T0, T0 + 10_000, kinds=["degradation"], vm_id="b", host_id="h1") == [conflict]
    assert history_store.add_events([]) == 0


def test_an_event_with_a_number_that_is_not_finite_is_logged_not_stored_and_the_rest_are(
    history_store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = Event(T0 + 10, EventKind.DEGRADATION, vm_ids=("a",), host_id="h1", severity=0.2)
    unknown_severity = Event(T0 + 20, EventKind.DEGRADATION, vm_ids=("b",), host_id="h1", severity=math.nan)
    endless = Event(T0 + 30, EventKind.DEGRADATION, vm_ids=("c",), host_id="h1", duration=math.inf)
    with caplog.at_level("WARNING", logger="cotenancy.store.history"):
        assert history_store.add_events([good, unknown_severity, endless]) == 1
    assert history_store.events(T0, T0 + 100) == [good]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "severity is nan" in warnings[0] and "'b'" in warnings[0]
    assert "duration is inf" in warnings[1] and "'c'" in warnings[1]


def test_a_plan_with_an_expected_benefit_that_is_not_finite_is_refused_before_anything_is_written(
    history_store: HistoryStore,
) -> None:
    plan = _plan()
    plan.actions[2].expected_benefit = math.nan
    with pytest.raises(MalformedInputError, match=r"step 2 has expected_benefit nan"):
        history_store.save_plan(plan)
    assert history_store.list_plans() == []


def _plan(strategy: str = "predictive", created_at: float = T0) -> ActionPlan:
    plan = ActionPlan(strategy=strategy, created_at=created_at, stats={"status": "OPTIMAL", "gap": 0.01})
    plan.add(
        ActionKind.LIVE_MIGRATE,
        vm_id="a",
        source_host_id="h1",
        target_host_id="h2",
        reason="pair (a, b) risk 0.83",
        expected_benefit=0.6,
    )
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id="b",
        allocation=Allocation(Resources(cpu=1000), None, shares=500),
        depends_on=(0,),
    )
    plan.add(ActionKind.RESIZE, vm_id="c", size=Resources(cpu=3000, memory=4096), depends_on=(0, 1))
    plan.add(ActionKind.SET_MAINTENANCE, host_id="h1", maintenance=True, depends_on=(0,))
    return plan


def test_plans_and_steps_round_trip_with_status_updates(history_store: HistoryStore) -> None:
    plan = _plan()
    history_store.save_plan(plan)
    assert history_store.get_plan(plan.id) == plan

    history_store.update_step(plan.id, 0, StepStatus.SUCCEEDED)
    history_store.update_step(plan.id, 1, StepStatus.FAILED, "host refused the reservation")
    stored = history_store.get_plan(plan.id)
    assert [a.status for a in stored.actions] == [
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.PENDING,
        StepStatus.PENDING,
    ]
    assert stored.actions[1].message == "host refused the reservation"

    plan.actions.pop()
    history_store.save_plan(plan)
    assert history_store.get_plan(plan.id) == plan, "saving a plan again replaces it and its steps"


def test_list_plans_newest_first_filtered_by_strategy(history_store: HistoryStore) -> None:
    plans = [_plan("predictive", T0 + 1), _plan("lr-mmt", T0 + 2), _plan("predictive", T0 + 3)]
    for plan in plans:
        history_store.save_plan(plan)
    assert [p.id for p in history_store.list_plans()] == [plans[2].id, plans[1].id, plans[0].id]
    assert [p.id for p in history_store.list_plans(limit=1)] == [plans[2].id]
    assert [p.id for p in history_store.list_plans(strategy="predictive")] == [plans[2].id, plans[0].id]
    assert history_store.list_plans(strategy="noop") == []


def test_failed_steps_since_finds_recent_failures_by_their_message_literally(
    history_store: HistoryStore,
) -> None:
    plan = _plan()
    history_store.save_plan(plan)
    history_store.update_step(plan.id, 0, StepStatus.FAILED, "task-7 still running; its outcome is unknown")
    history_store.update_step(plan.id, 1, StepStatus.FAILED, "100% unknown_outcome; in the end, it moved")
    history_store.update_step(plan.id, 2, StepStatus.RUNNING, "its outcome is unknown")
    history_store.update_step(plan.id, 3, StepStatus.FAILED, "refused")

    found = history_store.failed_steps_since(0.0, "outcome is unknown", "; in the end, ")

    assert found == [(plan.id, 0, "task-7 still running; its outcome is unknown")]
    assert history_store.failed_steps_since(0.0, "100% unknown_", "nothing") == [
        (plan.id, 1, "100% unknown_outcome; in the end, it moved")
    ]
    assert history_store.failed_steps_since(0.0, "100_ ", "nothing") == [], "% and _ are literal"
    assert history_store.failed_steps_since(time.time() + 60, "outcome is unknown", "x") == []


def test_unknown_plan_or_step_is_not_found(history_store: HistoryStore) -> None:
    with pytest.raises(NotFound, match="no plan"):
        history_store.get_plan("missing")
    with pytest.raises(NotFound, match="no plan"):
        history_store.update_step("missing", 0, StepStatus.RUNNING)
    plan = _plan()
    history_store.save_plan(plan)
    with pytest.raises(NotFound, match="no step 9"):
        history_store.update_step(plan.id, 9, StepStatus.RUNNING)


def test_buffer_and_store_give_the_same_window(history_store: HistoryStore) -> None:
    rng = np.random.default_rng(4)
    step = 300.0
    start = step * 5_000_000
    samples = [
        MetricSample(f"vm-{v}", start + float(t), metric, float(rng.uniform(0, 100)))
        for v in range(5)
        for t in rng.uniform(0, 6 * step, size=20)
        for metric in ("cpu", "network")
    ]
    history_store.add_samples(samples)
    buffer = TelemetryBuffer(step, 8)
    buffer.add(samples)
    vm_ids = [f"vm-{v}" for v in range(5)]
    from_store = history_store.series(
        start, start + 6 * step, step, vm_ids=vm_ids, metrics=["cpu", "network"]
    )
    from_buffer = buffer.window(start + 6 * step, 6, vm_ids=vm_ids)
    np.testing.assert_array_equal(from_store.timestamps, from_buffer.timestamps)
    for metric in ("cpu", "network"):
        np.testing.assert_allclose(from_store.values[metric], from_buffer.values[metric])


def test_an_open_store_tells_when_its_database_no_longer_has_the_schema_it_migrated(history_store_url):
    """What a process that keeps a store open (the Watcher strategy) checks before each use."""
    with HistoryStore(history_store_url) as store:
        assert store.schema_is_current()
        other = sa.create_engine(history_store_url)
        try:
            with other.begin() as connection:
                connection.execute(sa.text("UPDATE alembic_version SET version_num = '0004'"))
            assert not store.schema_is_current()
            with other.begin() as connection:
                connection.execute(sa.text("DROP TABLE alembic_version"))
            assert not store.schema_is_current()
        finally:
            other.dispose()
