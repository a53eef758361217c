"""Samples and events have a unique key in the history store, on SQLite and PostgreSQL.

A driver re-sends what it already sent (a retry after a timeout, a restarted collector reading its
window again); predictors learn from these rows, so a re-sent sample or event must not count twice.
A raw sample is the same sample when its VM, metric, timestamp and resolution are the same; an
event is the same event when everything it says is the same (its VMs as a set).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cotenancy.model import Event, EventKind, MetricSample
from cotenancy.store import HistoryStore, IngestReport
from cotenancy.store import history as history_module

T0 = 1_700_000_000.0
HOUR = 3600.0
BASE = HOUR * 400_000  # hour-aligned


def _batch() -> list[MetricSample]:
    return [
        MetricSample(f"vm-{v}", T0 + 60 * i, metric, float(v + i))
        for v in range(3)
        for i in range(10)
        for metric in ("cpu", "memory")
    ]


def _stored_rows(store: HistoryStore) -> int:
    with store.engine.connect() as connection:
        return connection.execute(sa.text("select count(*) from samples")).scalar_one()


def test_a_re_sent_batch_stores_nothing_new_and_reports_its_duplicates(history_store: HistoryStore) -> None:
    batch = _batch()
    assert history_store.add_samples(batch) == IngestReport(accepted=60, rejected=0, reasons={}, duplicates=0)

    again = history_store.add_samples(batch)

    assert again == IngestReport(accepted=0, rejected=0, reasons={}, duplicates=60)
    assert _stored_rows(history_store) == 60
    assert history_store.samples(T0, T0 + HOUR) == sorted(
        batch, key=lambda s: (s.timestamp, s.vm_id, s.metric)
    )


def test_a_batch_of_new_re_sent_and_malformed_samples_counts_each_apart(
    history_store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small insert batches, so one transaction holds a batch with duplicates between clean ones."""
    monkeypatch.setattr(history_module, "BATCH_ROWS", 4)
    batch = _batch()
    history_store.add_samples(batch[10:20])
    fresh = batch[:10] + batch[20:]
    bad = MetricSample("vm-0", T0, "cpu", -1.0)

    report = history_store.add_samples([*batch, bad])

    assert report == IngestReport(accepted=50, rejected=1, reasons={"negative": 1}, duplicates=10)
    assert _stored_rows(history_store) == 60
    assert history_store.samples(T0, T0 + HOUR) == sorted(
        [*fresh, *batch[10:20]], key=lambda s: (s.timestamp, s.vm_id, s.metric)
    )


def test_a_sample_repeated_within_one_batch_is_stored_once(history_store: HistoryStore) -> None:
    sample = MetricSample("vm-1", T0, "cpu", 10.0)

    report = history_store.add_samples([sample, sample, MetricSample("vm-1", T0, "memory", 512.0)])

    assert (report.accepted, report.duplicates) == (2, 1)
    assert history_store.samples(T0, T0 + 1, metrics=["cpu"]) == [sample]


def test_a_re_sent_sample_with_another_value_keeps_the_first_value(history_store: HistoryStore) -> None:
    """The key is the VM, metric and time: one series has one value at one time, the first stored."""
    history_store.add_samples([MetricSample("vm-1", T0, "cpu", 10.0)])

    report = history_store.add_samples([MetricSample("vm-1", T0, "cpu", 99.0)])

    assert (report.accepted, report.duplicates) == (0, 1)
    assert history_store.samples(T0, T0 + 1) == [MetricSample("vm-1", T0, "cpu", 10.0)]


def test_a_raw_sample_at_the_start_of_a_downsampled_bucket_is_not_a_duplicate_of_its_mean(
    history_store: HistoryStore,
) -> None:
    """The resolution is part of the key: a bucket's mean is stamped at the bucket's start."""
    history_store.add_samples(MetricSample("a", BASE + 60 * i, "cpu", 0.0) for i in range(1, 60))
    history_store.downsample(older_than=BASE + HOUR, step=HOUR)

    report = history_store.add_samples([MetricSample("a", BASE, "cpu", 60.0)])

    assert (report.accepted, report.duplicates) == (1, 0)
    assert history_store.downsample(older_than=BASE + HOUR, step=HOUR) == 1
    assert history_store.samples(BASE, BASE + HOUR) == [MetricSample("a", BASE, "cpu", 1.0)]


def test_a_raw_sample_re_sent_after_its_bucket_was_downsampled_is_merged_again(
    history_store: HistoryStore,
) -> None:
    """The documented limit of the key: a bucket's mean does not remember which raw samples it
    holds, so the store cannot tell a re-sent sample from a late one and merges it, with the weight
    of one sample. (The control loop does not re-send into downsampled buckets.)"""
    history_store.add_samples(MetricSample("a", BASE + 60 * i, "cpu", 0.0) for i in range(59))
    history_store.add_samples([MetricSample("a", BASE + 3540, "cpu", 60.0)])
    history_store.downsample(older_than=BASE + HOUR, step=HOUR)

    report = history_store.add_samples([MetricSample("a", BASE + 3540, "cpu", 60.0)])
    history_store.downsample(older_than=BASE + HOUR, step=HOUR)

    assert (report.accepted, report.duplicates) == (1, 0)
    assert history_store.samples(BASE, BASE + HOUR) == [MetricSample("a", BASE, "cpu", 120.0 / 61)]


def _conflict(**changes: object) -> Event:
    fields: dict[str, object] = {
        "timestamp": T0 + 10,
        "kind": EventKind.DEGRADATION,
        "vm_ids": ("a", "b"),
        "host_id": "h1",
        "duration": 300.0,
        "severity": 0.15,
        "resource": "cpu",
        "message": "cpu short",
        "source": "simulated",
        "details": {"neighbours": "a,b,c"},
    }
    return Event(**(fields | changes))  # type: ignore[arg-type]


def test_a_re_sent_event_is_stored_once(history_store: HistoryStore) -> None:
    conflict = _conflict()
    assert history_store.add_events([conflict]) == 1

    assert history_store.add_events([conflict, _conflict(vm_ids=("b", "a"))]) == 0

    assert history_store.events(T0, T0 + 100) == [conflict]
    assert history_store.events(T0, T0 + 100, vm_id="b") == [conflict]


def test_an_event_repeated_within_one_batch_is_stored_once(history_store: HistoryStore) -> None:
    conflict = _conflict()

    assert history_store.add_events([conflict, conflict]) == 1

    assert history_store.events(T0, T0 + 100) == [conflict]


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": T0 + 11},
        {"kind": EventKind.ANOMALY},
        {"vm_ids": ("a",)},
        {"host_id": "h2"},
        {"host_id": None},
        {"duration": 600.0},
        {"severity": 0.5},
        {"resource": "memory"},
        {"message": "memory short"},
        {"source": "anomaly"},
        {"details": {"neighbours": "a,b"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_events_that_differ_in_anything_they_say_are_different_events(
    history_store: HistoryStore, change: dict[str, object]
) -> None:
    other = _conflict(**change)

    assert history_store.add_events([_conflict(), other]) == 2

    assert len(history_store.events(T0, T0 + 100)) == 2
