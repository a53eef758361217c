"""Each control-loop round flags usage far above its forecast: the operator finds it in the log and
in the history store (``GET /v1/events?kind=anomaly``), and planning goes on whatever happens to
the detector."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cotenancy.drivers.base import Driver
from cotenancy.engine.loop import ControlLoop
from cotenancy.exceptions import SchemaMismatch
from cotenancy.model import VM, EventKind, Host, Inventory, MetricSample, Resources
from cotenancy.store import HistoryStore
from cotenancy.strategies.noop import NoopStrategy

STEP = 300.0
START = 1_699_999_800.0
QUIET_KIB_S = 400.0


class ExfiltratingCloud(Driver):
    """Two VMs on one host with steady, noisy network traffic; ``leaky`` starts sending 50 times
    its usual rate at ``burst_at``. Time advances only by wait()."""

    name = "exfiltrating"

    def __init__(self, conf, burst_at: float) -> None:
        super().__init__(conf)
        self.clock = START + 41 * STEP
        self.burst_at = burst_at

    def now(self) -> float:
        return self.clock

    def wait(self, seconds: float) -> None:
        self.clock += seconds

    def get_inventory(self) -> Inventory:
        size = Resources(cpu=2000, memory=1024, network=100_000)
        return Inventory(
            hosts={"h1": Host(id="h1", name="h1", capacity=Resources(cpu=8000, memory=8192))},
            vms={v: VM(id=v, name=v, host_id="h1", size=size) for v in ("leaky", "steady")},
        )

    def get_metrics(self, start, end, vm_ids=None):
        samples = []
        for stamp in np.arange(np.ceil((start - START) / STEP) * STEP + START, end, STEP):
            noise = np.random.default_rng(int(stamp)).normal(0.0, 30.0, 2)
            for i, vm_id in enumerate(("leaky", "steady")):
                rate = QUIET_KIB_S + noise[i]
                if vm_id == "leaky" and stamp >= self.burst_at:
                    rate *= 50
                samples.append(MetricSample(vm_id, float(stamp), "network", float(rate)))
                samples.append(MetricSample(vm_id, float(stamp), "cpu", 500.0 + noise[i]))
        return samples

    def get_events(self, start, end):
        return []

    def live_migrate(self, vm_id, target_host_id, timeout=None):
        raise AssertionError("not expected")

    def resize(self, vm_id, size, timeout=None):
        raise AssertionError("not expected")

    def set_host_maintenance(self, host_id, enabled, timeout=None):
        raise AssertionError("not expected")


@pytest.fixture
def store(tmp_path):
    with HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}") as history:
        yield history


def rounds_until_the_burst(conf, store, caplog, rounds_after: int = 2):
    """Run a loop from 12 quiet rounds to ``rounds_after`` rounds into the burst."""
    conf.set_override("interval", int(STEP))
    cloud = ExfiltratingCloud(conf, burst_at=START + 52 * STEP)
    loop = ControlLoop(conf, driver=cloud, strategy=NoopStrategy(conf), store=store)
    results = []
    with caplog.at_level(logging.WARNING, logger="cotenancy.engine.loop"):
        for _ in range(12 + rounds_after):
            results.append(loop.run_once())
            cloud.wait(STEP)
    return results


def test_a_sudden_exfiltration_is_logged_and_stored_at_its_second_interval(conf, store, caplog):
    results = rounds_until_the_burst(conf, store, caplog)

    assert all(r.anomalies == [] for r in results[:-1]), "a single interval is not enough by default"
    [anomaly] = results[-1].anomalies
    assert (anomaly.kind, anomaly.vm_ids, anomaly.resource) == (EventKind.ANOMALY, ("leaky",), "network")
    assert (anomaly.duration, anomaly.message.endswith("for 2 intervals")) == (2 * STEP, True)
    stored = store.events(START, START + 100 * STEP, kinds=[EventKind.ANOMALY])
    onset = START + 52 * STEP
    assert [(e.vm_ids, e.resource, e.timestamp) for e in stored] == [(("leaky",), "network", onset)]
    assert [r.getMessage() for r in caplog.records if "anomaly on VM" in r.getMessage()] == [
        f"anomaly on VM leaky (host h1): {anomaly.message}"
    ]


def test_with_one_interval_the_exfiltration_is_flagged_in_the_round_it_starts(conf, store, caplog):
    conf.set_override("anomaly_persistence", 1, group="predict")

    results = rounds_until_the_burst(conf, store, caplog, rounds_after=1)

    assert all(r.anomalies == [] for r in results[:-1])
    [anomaly] = results[-1].anomalies
    assert (anomaly.vm_ids, anomaly.resource, anomaly.timestamp) == (("leaky",), "network", START + 52 * STEP)
    assert anomaly.duration == STEP


def test_a_burst_the_operator_announced_is_not_an_anomaly(conf, store, caplog):
    begin = "2023-11-15T02:00:00"  # half an hour before the burst (START + 52 steps), UTC
    hint = f"start={begin},end=2023-11-15T06:00,vms=leaky,resource=network,factor=60"
    conf.set_override("hint", [hint], group="predict")

    results = rounds_until_the_burst(conf, store, caplog)

    assert results[-1].anomalies == []


def test_detection_can_be_switched_off(conf, store, caplog):
    conf.set_override("detect_anomalies", False, group="predict")

    results = rounds_until_the_burst(conf, store, caplog)

    assert results[-1].anomalies == []
    assert store.events(START, START + 100 * STEP, kinds=[EventKind.ANOMALY]) == []


def rounds_with_a_detector_raising(conf, store, caplog, monkeypatch, error: Exception, rounds: int):
    """``rounds`` rounds of a loop whose detector raises ``error``; the loop and its results."""
    conf.set_override("interval", int(STEP))
    cloud = ExfiltratingCloud(conf, burst_at=START)
    loop = ControlLoop(conf, driver=cloud, strategy=NoopStrategy(conf), store=store)

    def detect(state):
        raise error

    monkeypatch.setattr(loop.anomaly_detector, "detect", detect)
    with caplog.at_level(logging.ERROR, logger="cotenancy.engine.loop"):
        return loop, loop.run(rounds=rounds)


def detection_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "anomaly detection failed" in r.getMessage()]


def test_a_detector_that_fails_is_logged_and_the_round_still_plans(conf, store, caplog, monkeypatch):
    bug = RuntimeError("forecaster plugin bug")

    loop, [result] = rounds_with_a_detector_raising(conf, store, caplog, monkeypatch, bug, rounds=1)

    assert result.anomalies == [] and result.plan is not None
    assert loop.failed_rounds == 0
    [error] = detection_errors(caplog)
    assert error.exc_info, "an unexpected error comes with its traceback"


def test_a_forecaster_model_for_other_telemetry_does_not_stop_a_strategy_that_does_not_forecast(
    conf, store, caplog, monkeypatch
):
    stale = SchemaMismatch("the forecaster was trained on 60 s telemetry steps")

    loop, results = rounds_with_a_detector_raising(conf, store, caplog, monkeypatch, stale, rounds=2)

    assert len(results) == 2 and loop.failed_rounds == 0
    errors = detection_errors(caplog)
    assert len(errors) == 2 and "60 s telemetry steps" in errors[0].getMessage()
    assert not errors[0].exc_info, "an error raised on purpose needs no traceback"
