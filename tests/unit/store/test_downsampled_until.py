"""``HistoryStore.downsampled_until``: where each VM's metric is held only as downsampled means,
which a writer that reads a period again (a new control loop) asks before storing: the store's key
cannot recognise a raw sample sent again into a bucket that is a mean now."""

from __future__ import annotations

import pytest

from cotenancy.model import MetricSample
from cotenancy.store import HistoryStore

HOUR = 3600.0
BASE = HOUR * 400_000  # hour-aligned


def test_it_gives_the_end_of_the_last_downsampled_bucket_of_each_vm_and_metric(
    sqlite_store: HistoryStore,
) -> None:
    sqlite_store.add_samples(
        [
            *(MetricSample("web", BASE + 600 * i, "cpu", 10.0) for i in range(12)),
            MetricSample("web", BASE + 600, "memory", 512.0),
            MetricSample("db", BASE + HOUR + 600, "cpu", 20.0),
        ]
    )
    sqlite_store.downsample(older_than=BASE + 1.5 * HOUR, step=HOUR)

    assert sqlite_store.downsampled_until(BASE + 1800, BASE + 3 * HOUR, HOUR) == {
        ("web", "cpu"): BASE + HOUR,
        ("web", "memory"): BASE + HOUR,
    }


def test_raw_samples_and_means_at_another_step_do_not_count(sqlite_store: HistoryStore) -> None:
    sqlite_store.add_samples(MetricSample("web", BASE + 600 * i, "cpu", 10.0) for i in range(12))
    sqlite_store.downsample(older_than=BASE + HOUR, step=1800.0)

    assert sqlite_store.downsampled_until(BASE, BASE + 2 * HOUR, HOUR) == {}
    assert sqlite_store.downsampled_until(BASE + HOUR, BASE + 2 * HOUR, 1800.0) == {}


def test_the_step_must_be_positive(sqlite_store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        sqlite_store.downsampled_until(0.0, 1.0, 0.0)
