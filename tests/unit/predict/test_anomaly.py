"""Anomalies: usage far above its forecast becomes an ANOMALY event in the history store."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from predict_synthetic import make_state, synthetic_usage

from cotenancy.model import Event, EventKind
from cotenancy.predict.anomaly import AnomalyDetector, AnomalySettings, affected
from cotenancy.predict.forecast import HybridForecaster
from cotenancy.store import HistoryStore

#: these specify what one sample far above its forecast is; the default asks for two in a row
ONE_INTERVAL = AnomalySettings(persistence=1)


def _state_with_network(spike_vm: int | None = None, factor: float = 50.0):
    usage = synthetic_usage(n_vms=6, days=2, seed=5)
    rng = np.random.default_rng(5)
    usage.values["network"] = np.abs(rng.normal(400.0, 40.0, usage.values["cpu"].shape))
    if spike_vm is not None:
        usage.values["network"][spike_vm, -1] *= factor
    return make_state(usage, usage.timestamps.size, window=72)


def test_ordinary_usage_raises_nothing(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    assert detector.detect(_state_with_network()) == []


def test_a_sudden_network_burst_is_an_anomaly_recorded_in_the_history(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    state = _state_with_network(spike_vm=3)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    try:
        events = detector.detect_and_record(state, store)
        assert [(e.vm_ids, e.resource) for e in events] == [(("vm-003",), "network")]
        assert events[0].kind is EventKind.ANOMALY
        assert float(events[0].details["observed"]) > 10 * float(events[0].details["forecast_p95"])
        stored = store.events(state.now - 3600, state.now + 3600, kinds=[EventKind.ANOMALY])
        assert [e.vm_ids for e in stored] == [("vm-003",)]
        assert "forecast p95" in stored[0].message
    finally:
        store.close()


def test_a_small_rise_is_not_an_anomaly(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    assert detector.detect(_state_with_network(spike_vm=2, factor=1.3)) == []


def test_bad_latest_samples_do_not_alarm(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    state = _state_with_network()
    state.telemetry.values["network"][0, -1] = np.inf
    state.telemetry.values["network"][1, -1] = -1.0
    state.telemetry.values["network"][2, -1] = np.nan
    assert detector.detect(state) == []


def _network_rising_on(*vms: int):
    usage = synthetic_usage(n_vms=6, days=2, seed=5)
    rng = np.random.default_rng(5)
    usage.values["network"] = np.abs(rng.normal(400.0, 40.0, usage.values["cpu"].shape))
    usage.values["network"][list(vms), -1] *= 50.0
    return make_state(usage, usage.timestamps.size, window=72)


def test_vms_of_one_workload_rising_together_are_one_anomaly_naming_them_all(tmp_path):
    """vm-000, vm-002 and vm-004 are the three "web" VMs; vm-001 is "batch" and rises alone."""
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    group, alone = detector.detect(_network_rising_on(0, 1, 2, 4))
    assert group.vm_ids == ("vm-000", "vm-002", "vm-004")
    assert group.host_id == "h0"
    assert "network rose together on 3 VMs of tenant default's web workload" in group.message
    details = group.details
    assert (details["tenant"], details["app_type"], details["vms"]) == ("default", "web", "3")
    assert alone.vm_ids == ("vm-001",) and "together" not in alone.message
    assert affected(group) == "3 VMs on host h0 (vm-000, vm-002, vm-004)"
    assert affected(alone) == "VM vm-001 (host h1)"


def test_fewer_vms_of_a_workload_than_the_group_minimum_are_reported_one_by_one(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    assert [e.vm_ids for e in detector.detect(_network_rising_on(0, 2))] == [("vm-000",), ("vm-002",)]
    ungrouped = AnomalyDetector(
        HybridForecaster(model_path=tmp_path / "absent.json"), AnomalySettings(persistence=1, group_min_vms=0)
    )
    assert len(ungrouped.detect(_network_rising_on(0, 2, 4))) == 3


def _moved(state, vm_id: str, at: float):
    """``state`` with a MIGRATION event of ``vm_id`` ending at ``at``."""
    event = Event(timestamp=at, kind=EventKind.MIGRATION, vm_ids=(vm_id,), host_id="h0")
    return replace(state, events=[*state.events, event])


def test_usage_on_a_new_host_is_not_judged_against_the_old_hosts_forecast(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    state = _state_with_network(spike_vm=3)
    latest = float(state.telemetry.timestamps[-1])
    assert detector.detect(_moved(state, "vm-003", at=latest)) == []


def test_a_vm_that_moved_before_the_forecasts_last_sample_is_judged_again(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    state = _state_with_network(spike_vm=3)
    origin = float(state.telemetry.timestamps[-2])
    assert [e.vm_ids for e in detector.detect(_moved(state, "vm-003", at=origin))] == [("vm-003",)]


def test_a_host_change_seen_between_rounds_counts_as_a_move_without_an_event(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    before = _state_with_network()
    assert detector.detect(before) == []
    after = _state_with_network(spike_vm=3)
    vm = after.inventory.vms["vm-003"]
    after.inventory.vms["vm-003"] = replace(vm, host_id="h0" if vm.host_id == "h1" else "h1")
    assert detector.detect(after) == []


def test_a_vm_being_migrated_is_not_judged(tmp_path):
    detector = AnomalyDetector(HybridForecaster(model_path=tmp_path / "absent.json"), ONE_INTERVAL)
    state = replace(_state_with_network(spike_vm=3), migrating=frozenset({"vm-003"}))
    assert detector.detect(state) == []
