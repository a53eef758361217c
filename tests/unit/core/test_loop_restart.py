"""A control loop that starts again (a restarted ``cotenancy run``, every ``cotenancy plan``) reads
the history window from the driver and the rest of what its predictors look back over from the
history store, so it sees what a loop that never stopped sees; yet the store gets each sample and
each event once: predictors learn from these rows, and a doubled degradation event is a doubled
label."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from oslo_config import cfg

from cotenancy.engine.loop import ControlLoop
from cotenancy.model import ActionPlan, ClusterState, Event, MetricSample
from cotenancy.store import HistoryStore
from cotenancy.strategies.noop import NoopStrategy
from drivers.simulated.driver import SimulatedDriver


class RecordingNoop(NoopStrategy):
    """Plans nothing; keeps the states it was shown."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.seen: list[ClusterState] = []

    def plan(self, state: ClusterState) -> ActionPlan:
        self.seen.append(state)
        return super().plan(state)


@pytest.fixture
def cloud(conf: cfg.ConfigOpts) -> SimulatedDriver:
    """A small simulated cloud (busy enough to report degradation events), one history window in."""
    conf.set_override("synthetic_vms", 20, group="simulator")
    driver = SimulatedDriver(conf)
    driver.wait(conf.interval * conf.history_window)
    return driver


@pytest.fixture
def store(tmp_path) -> HistoryStore:
    with HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}") as history:
        yield history


def sample_keys(samples) -> Counter:
    return Counter((s.vm_id, str(s.metric), float(s.timestamp)) for s in samples)


def event_keys(events: list[Event]) -> Counter:
    return Counter((e.timestamp, e.kind.value, tuple(e.vm_ids), e.host_id, e.severity) for e in events)


def one_round_in_a_new_loop(conf: cfg.ConfigOpts, driver: SimulatedDriver, store: HistoryStore) -> None:
    ControlLoop(conf, driver=driver, strategy=NoopStrategy(conf), store=store).run_once()


def test_new_loops_store_each_sample_and_event_once(conf, cloud, store):
    first = cloud.now() - conf.interval * conf.history_window
    for restart in range(3):
        if restart:
            cloud.wait(conf.interval)
        one_round_in_a_new_loop(conf, cloud, store)

    reported_samples = sample_keys(cloud.get_metrics(first, cloud.now()))
    reported_events = event_keys(cloud.get_events(first, cloud.now()))
    assert reported_events, "the test cloud must report events for this test to mean anything"
    assert sample_keys(store.samples(first, cloud.now())) == {k: 1 for k in reported_samples}
    assert event_keys(store.events(first, cloud.now())) == reported_events


def test_a_loop_started_after_a_pause_stores_what_happened_meanwhile_once(conf, cloud, store):
    first = cloud.now() - conf.interval * conf.history_window
    one_round_in_a_new_loop(conf, cloud, store)
    cloud.wait(conf.interval * 3)
    one_round_in_a_new_loop(conf, cloud, store)

    now = cloud.now()
    assert sample_keys(store.samples(first, now)) == sample_keys(cloud.get_metrics(first, now))
    assert event_keys(store.events(first, now)) == event_keys(cloud.get_events(first, now))


def test_samples_of_a_vm_the_store_lacks_are_stored_even_when_others_are_newer(conf, cloud, store):
    first = cloud.now() - conf.interval * conf.history_window
    reported = cloud.get_metrics(first, cloud.now())
    missing = sorted({s.vm_id for s in reported})[:3]
    store.add_samples([s for s in reported if s.vm_id not in missing])

    one_round_in_a_new_loop(conf, cloud, store)

    assert sample_keys(store.samples(first, cloud.now())) == sample_keys(reported)


def test_the_strategy_is_handed_the_window_its_predictors_look_back_over(conf, cloud):
    """A forecaster trained on a day of features must not serve from the last hour alone."""
    seen = RecordingNoop(conf)

    ControlLoop(conf, driver=cloud, strategy=seen).run_once()

    cpu = seen.seen[0].telemetry.values["cpu"]
    assert conf.predict.window_steps > conf.history_window
    assert cpu.shape[1] == conf.predict.window_steps
    assert np.isfinite(cpu[:, -conf.history_window :]).any(axis=0).all()


def test_a_restarted_loop_sees_the_same_window_as_one_that_never_stopped(conf, cloud, store):
    """The part of the window older than ``history_window`` comes from the history store."""
    conf.set_override("window_steps", 3 * conf.history_window, group="predict")
    never_stopped = RecordingNoop(conf)
    loop = ControlLoop(conf, driver=cloud, strategy=never_stopped, store=store)
    for _ in range(3 * conf.history_window):
        loop.run_once()
        cloud.wait(conf.interval)
    loop.run_once()
    restarted, without_store = RecordingNoop(conf), RecordingNoop(conf)

    ControlLoop(conf, driver=cloud, strategy=restarted, store=store).run_once()
    ControlLoop(conf, driver=cloud, strategy=without_store).run_once()

    expected = never_stopped.seen[-1].telemetry.values["cpu"]
    assert expected.shape[1] == conf.predict.window_steps
    assert np.isfinite(expected).any(axis=0).all()
    np.testing.assert_array_equal(restarted.seen[0].telemetry.values["cpu"], expected)
    older = without_store.seen[0].telemetry.values["cpu"][:, : -conf.history_window]
    assert np.isnan(older).all(), "without a store only the driver's history window is known"


def test_a_sample_stamped_after_the_rounds_time_is_kept_apart_as_future(conf, cloud, store, monkeypatch):
    """One timestamp in milliseconds would put the store's newest sample in the far future, and
    every window read back from it (the API's) past the real samples."""
    reported = cloud.get_metrics

    def one_in_milliseconds(start: float, end: float, vm_ids=None) -> list[MetricSample]:
        samples = reported(start, end, vm_ids)
        first = samples[0]
        return [*samples, MetricSample(first.vm_id, first.timestamp * 1000, first.metric, first.value)]

    monkeypatch.setattr(cloud, "get_metrics", one_in_milliseconds)
    one_round_in_a_new_loop(conf, cloud, store)

    assert max(s.timestamp for s in store.samples(0.0, 1e15)) < cloud.now()
    assert [r["reason"] for r in store.rejected_samples()] == ["future"]


def test_retention_replaces_old_raw_samples_by_means_and_leaves_the_grid_unchanged(conf, cloud, store):
    """[store] raw_retention_hours bounds the raw rows; a grid at the downsample step reads the
    same values from the means as from the raw samples."""
    step = 2 * conf.interval
    conf.set_override("raw_retention_hours", 0.5, group="store")
    conf.set_override("downsample_step", step, group="store")
    first = cloud.now() - conf.interval * conf.history_window
    reported = cloud.get_metrics(first, cloud.now())
    with HistoryStore("sqlite://") as untouched:
        untouched.add_samples(reported)
        one_round_in_a_new_loop(conf, cloud, store)

        cutoff = (cloud.now() - 1800.0) // step * step
        old_rows = store.samples(first, cutoff)
        assert 0 < len(old_rows) < len([s for s in reported if s.timestamp < cutoff])
        assert store.samples(cutoff, cloud.now()) == untouched.samples(cutoff, cloud.now())
        start = first // step * step
        np.testing.assert_allclose(
            store.series(start, cloud.now(), step).values["cpu"],
            untouched.series(start, cloud.now(), step).values["cpu"],
        )


def test_retention_of_zero_hours_keeps_every_raw_sample(conf, cloud, store):
    conf.set_override("raw_retention_hours", 0.0, group="store")
    first = cloud.now() - conf.interval * conf.history_window
    one_round_in_a_new_loop(conf, cloud, store)
    assert sample_keys(store.samples(first, cloud.now())) == sample_keys(
        cloud.get_metrics(first, cloud.now())
    )


def test_a_new_loop_fills_a_gap_the_store_has_before_samples_it_holds(conf, cloud, store):
    """The store's key tells a sample it holds from one it lacks, whatever it holds later."""
    first = cloud.now() - conf.interval * conf.history_window
    reported = cloud.get_metrics(first, cloud.now())
    middle = sorted({s.timestamp for s in reported})[len({s.timestamp for s in reported}) // 2]
    store.add_samples([s for s in reported if s.timestamp != middle])

    one_round_in_a_new_loop(conf, cloud, store)

    assert sample_keys(store.samples(first, cloud.now())) == {k: 1 for k in sample_keys(reported)}


def downsampled_rows(store: HistoryStore) -> dict[tuple[str, str, float], tuple[float, int]]:
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "select vm_id, metric, timestamp, value, weight from samples where resolution > 0"
        )
        return {(vm, metric, ts): (value, weight) for vm, metric, ts, value, weight in rows}


def test_a_new_loop_does_not_merge_what_it_reads_again_into_downsampled_means(conf, cloud, store):
    """With retention shorter than the history window, part of what a new loop reads again is
    already a mean, which does not say which raw samples it holds: the loop leaves those out."""
    conf.set_override("raw_retention_hours", 0.5, group="store")
    conf.set_override("downsample_step", 2 * conf.interval, group="store")
    one_round_in_a_new_loop(conf, cloud, store)
    means = downsampled_rows(store)
    assert means, "the first round must downsample for this test to mean anything"
    cloud.wait(conf.interval)

    one_round_in_a_new_loop(conf, cloud, store)

    after = downsampled_rows(store)
    assert {key: after[key] for key in means} == means


def test_a_loop_started_between_two_intervals_reads_each_stored_interval_into_its_own_bucket(
    conf, cloud, store, monkeypatch
):
    """A wall clock is seldom on the interval grid; each stored sample must still land in the
    bucket of its own interval, not in its neighbour's."""
    step, window, recent = conf.interval, conf.predict.window_steps, conf.history_window
    on_the_grid = cloud.now()
    first = on_the_grid - step * window
    stored = window - recent
    store.add_samples(MetricSample("vm-x", first + k * step, "cpu", float(k)) for k in range(stored))
    monkeypatch.setattr(cloud, "now", lambda: on_the_grid + step / 3)
    loop = ControlLoop(conf, driver=cloud, strategy=NoopStrategy(conf), store=store)

    loop.run_once()

    cpu = loop.telemetry.window(cloud.now(), window, vm_ids=["vm-x"]).values["cpu"][0]
    # the window ends with the interval now under way, so the first stored sample is just before it
    np.testing.assert_array_equal(cpu[: stored - 1], np.arange(1, stored, dtype=float))
    assert np.isnan(cpu[stored - 1 :]).all()
