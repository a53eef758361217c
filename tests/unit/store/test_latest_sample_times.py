"""``HistoryStore.latest_sample_times``: how far each VM's metric is already stored, which a writer
that reads a period again (a restarted control loop) asks before storing, so samples are stored once."""

from __future__ import annotations

import pytest

from cotenancy.model import MetricSample
from cotenancy.store import HistoryStore


@pytest.fixture
def history_store(tmp_path) -> HistoryStore:
    with HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}") as store:
        yield store


def test_it_gives_the_newest_stored_time_of_each_vm_and_metric_in_the_period(history_store):
    history_store.add_samples(
        [
            MetricSample("web", 600.0, "cpu", 10.0),
            MetricSample("web", 900.0, "cpu", 11.0),
            MetricSample("web", 600.0, "memory", 512.0),
            MetricSample("db", 300.0, "cpu", 20.0),
            MetricSample("db", 1200.0, "cpu", 21.0),
        ]
    )

    assert history_store.latest_sample_times(600.0, 1200.0) == {
        ("web", "cpu"): 900.0,
        ("web", "memory"): 600.0,
    }


def test_an_empty_period_has_nothing_stored(history_store):
    history_store.add_samples([MetricSample("web", 600.0, "cpu", 10.0)])

    assert history_store.latest_sample_times(900.0, 1800.0) == {}
