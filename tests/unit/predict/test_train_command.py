"""``cotenancy train`` writes what ``cotenancy run`` and the API then serve: a forecaster that learnt
from what serving gives it (the VMs' sizes), on the control loop's telemetry step, and an
incremental retraining that never continues a model on history of another shape."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from predict_synthetic import STEP, Usage, make_state, synthetic_usage, toy_history

from cotenancy.cli.main import main
from cotenancy.conf import make_conf
from cotenancy.model import VM, ClusterState, Host, Inventory, MetricSample, Resources, TelemetryWindow
from cotenancy.predict.forecast import DEFAULT_RESOURCES, HybridForecaster
from cotenancy.predict.history import load_history
from cotenancy.predict.risk import RiskTrainingConfig, XGBoostRiskModel, train_risk
from cotenancy.store import HistoryStore

#: a small forecaster: few trees, two horizons
SMALL = [
    "--set",
    "forecast_default.rounds=5",
    "--set",
    "forecast_default.parallel_trees=1",
    "--set",
    "forecast_default.incremental_rounds=2",
    "--set",
    "forecast_default.train_horizons=1,6",
    "--set",
    "forecast_default.max_rows=4000",
]


def _inventory(usage: Usage, sizes: dict[str, np.ndarray]) -> Inventory:
    host = Host("h0", "h0", Resources(cpu=1e6, memory=1e6))
    vms = {
        vm_id: VM(vm_id, vm_id, "h0", Resources(cpu=sizes["cpu"][i], memory=sizes["memory"][i]))
        for i, vm_id in enumerate(usage.vm_ids)
    }
    return Inventory(hosts={"h0": host}, vms=vms)


def _fill(url: str, usage: Usage, step: float) -> None:
    """The usage as a cloud reports it: the inventory (with sizes) and one sample per interval."""
    timestamps = usage.timestamps[0] + step * np.arange(len(usage.timestamps))
    store = HistoryStore(url)
    try:
        store.upsert_inventory(_inventory(usage, usage.sizes), float(timestamps[0]))
        store.add_samples(
            [
                MetricSample(vm_id, float(t), metric, float(values[i, k]))
                for metric, values in usage.values.items()
                for i, vm_id in enumerate(usage.vm_ids)
                for k, t in enumerate(timestamps)
            ]
        )
    finally:
        store.close()


def _train(tmp_path: Path, url: str, *train_options: str, interval: int = 300) -> int:
    """``cotenancy train --only forecast`` on the whole store, with ``[DEFAULT] interval``."""
    return main(
        ["--set", f"predict.model_dir={tmp_path / 'models'}", "--set", f"DEFAULT.interval={interval}", *SMALL]
        + ["train", "--store", url, "--since", "0", "--until", "2000000000", "--only", "forecast"]
        + list(train_options)
    )


def _forecaster(tmp_path: Path, interval: int = 300) -> HybridForecaster:
    conf = make_conf([], config_files=[])
    conf.set_override("model_dir", str(tmp_path / "models"), group="predict")
    conf.set_override("interval", interval)
    return HybridForecaster(conf)


@pytest.fixture(scope="module")
def usage() -> Usage:
    return synthetic_usage(n_vms=8, days=2)


def test_the_forecaster_trains_on_the_vm_sizes_that_serving_gives_it(tmp_path, usage):
    """Serving hands the forecaster each VM's size from the inventory (a feature); ``cotenancy
    train`` reads the same sizes from the store, in the rows' order, for each resource it trains."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, usage, STEP)
    store = HistoryStore(url)
    try:
        history = load_history(store, 0.0, 2e9, STEP)
    finally:
        store.close()
    values, sizes = history.forecast_inputs(DEFAULT_RESOURCES)
    assert set(values) == set(sizes) == {"cpu", "memory"}
    rows = [usage.vm_ids.index(v) for v in history.vm_ids]
    for resource, size in sizes.items():
        np.testing.assert_array_equal(size, usage.sizes[resource][rows])


def test_a_vm_of_unknown_size_does_not_stop_training(tmp_path, usage, capsys):
    """A cloud reports a size it does not know as 0: that VM's size feature is missing, as for a
    VM the inventory does not list, rather than an infinite logarithm XGBoost refuses."""
    unknown = dataclasses.replace(usage, sizes={**usage.sizes, "cpu": np.r_[0.0, usage.sizes["cpu"][1:]]})
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, unknown, STEP)
    assert _train(tmp_path, url) == 0, capsys.readouterr().out
    forecast = _forecaster(tmp_path).forecast(make_state(unknown, upto=500), (1,))
    assert forecast.source["cpu"] == "trained"
    assert np.isfinite(forecast.values["cpu"]).all()


def test_train_counts_in_the_control_loops_interval_unless_told_otherwise(tmp_path, usage, capsys):
    """A cloud polled every minute: the model ``cotenancy train`` writes serves the loop and the
    API, which read telemetry every ``[DEFAULT] interval``, without ``--step``."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, usage, 60.0)
    assert _train(tmp_path, url, interval=60) == 0, capsys.readouterr().out
    forecaster = _forecaster(tmp_path, interval=60)
    timestamps = usage.timestamps[0] + 60.0 * np.arange(400)
    telemetry = TelemetryWindow(
        list(usage.vm_ids), timestamps, {r: v[:, :400] for r, v in usage.values.items()}, 60.0
    )
    state = ClusterState(
        now=float(timestamps[-1]) + 60.0, inventory=_inventory(usage, usage.sizes), telemetry=telemetry
    )
    assert forecaster.forecast(state, (1,)).source["cpu"] == "trained"
    assert forecaster.model.metadata["step_seconds"] == 60.0


def test_incremental_training_on_another_step_is_refused_and_the_model_kept(tmp_path, usage, capsys):
    """Continuing trees whose horizons and "yesterday" count 600 s steps on 300 s rows would mix
    two meanings in one model; the file in place stays as it was."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, usage, STEP)
    assert _train(tmp_path, url, "--step", "600") == 0
    path = tmp_path / "models" / "forecast.json"
    before = path.read_bytes()
    capsys.readouterr()
    code = _train(tmp_path, url, "--step", "300", "--incremental")
    out = capsys.readouterr().out
    assert code == 1
    assert "600 s" in out and "300 s" in out and "without --incremental" in out, out
    assert f"{path} is left as it was" in out, out
    assert path.read_bytes() == before
    assert json.loads(before)["metadata"]["step_seconds"] == 600.0


def test_an_absurdly_large_sample_does_not_stop_training(tmp_path, usage, capsys):
    """The store keeps any finite, non-negative value, so a driver's garbage (1e300) reaches
    training; features it overflows to infinity are missing, as for a NaN sample."""
    values = {r: v.copy() for r, v in usage.values.items()}
    values["memory"][2, 300] = 1e300
    garbage = dataclasses.replace(usage, values=values)
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, garbage, STEP)
    code = _train(tmp_path, url)
    out = capsys.readouterr().out
    assert code == 0, out
    forecast = _forecaster(tmp_path).forecast(make_state(garbage, upto=500), (1,))
    assert forecast.source["memory"] == "trained"
    assert np.isfinite(forecast.values["memory"]).all()


def test_an_absurdly_large_sample_does_not_stop_the_risk_models_training(tmp_path):
    """The same garbage in a host's telemetry: the pair rows hold no infinity and the model trains."""
    history = toy_history()
    history.values["cpu"][0, 100] = 1e300
    history.values["cpu_demand"][0, 100] = 1e300
    risk = XGBoostRiskModel(model_path=tmp_path / "risk.json")
    data = risk.training_rows(history)
    assert not np.isinf(data.x).any()
    risk.save(train_risk(data, RiskTrainingConfig(rounds=5)))
    assert risk.trained


def test_a_window_without_samples_says_when_the_store_has_some(tmp_path, usage, capsys):
    """A simulated history is stamped in the trace's time, not today's: the default ``--since 30d``
    finds nothing there, and the error says which window would."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, usage, STEP)
    code = main(["--set", f"predict.model_dir={tmp_path / 'models'}", "train", "--store", url])
    err = capsys.readouterr().err
    assert code == 2
    assert "no samples in that window" in err
    assert "2023-11-15T00:00:00+00:00" in err and "2023-11-16T23:55:00+00:00" in err, err
    assert not (tmp_path / "models").exists()


def test_incremental_training_with_other_quantile_levels_is_refused_and_the_model_kept(
    tmp_path, usage, capsys
):
    """Trees that learnt four quantile levels cannot continue as three: rather than train afresh
    under the name of a continuation, the command says so and leaves the file as it was."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    _fill(url, usage, STEP)
    assert _train(tmp_path, url) == 0
    path = tmp_path / "models" / "forecast.json"
    before = path.read_bytes()
    capsys.readouterr()
    code = main(
        ["--set", f"predict.model_dir={tmp_path / 'models'}", *SMALL]
        + ["--set", "forecast_default.train_quantiles=0.5,0.9,0.95"]
        + ["train", "--store", url, "--since", "0", "--until", "2000000000", "--only", "forecast"]
        + ["--incremental"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "0.5, 0.9, 0.95, 0.99" in out and "without --incremental" in out, out
    assert path.read_bytes() == before
