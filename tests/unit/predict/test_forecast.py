"""Demand forecaster: cold start, training, calibration, lifecycle and bad samples."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from predict_synthetic import STEP, make_state, small_config

from cotenancy.conf import make_conf
from cotenancy.exceptions import ConfigurationError, SchemaMismatch
from cotenancy.predict import features as feats
from cotenancy.predict.forecast import (
    HybridForecaster,
    TrainingConfig,
    build_rows,
    fallback_quantiles,
    row_weights,
    stacked_windows,
    train_forecaster,
)
from cotenancy.predict.hints import Hint, apply_hints, parse_hint_line

TRAIN_END = 3 * 288


@pytest.fixture(scope="module")
def trained(usage):
    values = {k: v[:, :TRAIN_END] for k, v in usage.values.items()}
    return train_forecaster(
        values, usage.timestamps[:TRAIN_END], STEP, usage.sizes, usage.vm_ids, usage.classes, small_config()
    )


def _served(tmp_path, model) -> HybridForecaster:
    forecaster = HybridForecaster(model_path=tmp_path / "forecast.json")
    forecaster.save(model)
    return forecaster


def test_cold_start_serves_the_labelled_fallback(tmp_path, usage):
    forecaster = HybridForecaster(model_path=tmp_path / "absent.json")
    state = make_state(usage, TRAIN_END)
    result = forecaster.forecast(state, horizons=(1, 6, 48), quantiles=(0.5, 0.95))
    assert not forecaster.trained
    assert result.source == {"cpu": "fallback", "memory": "fallback"}
    cube = result.values["cpu"]
    assert cube.shape == (len(usage.vm_ids), 3, 2)
    assert np.isfinite(cube).all() and (cube >= 0).all()
    assert (cube[:, :, 1] >= cube[:, :, 0]).all()


def test_fallback_uses_recent_changes_at_the_horizon():
    # alternating 20, 10, ...: from the last value (10) the biggest one-step rise seen is +10
    series = np.tile([20.0, 10.0], 50)[None, :]
    q = fallback_quantiles(series, 1, (0.5, 0.95))
    assert q[0, 1] == pytest.approx(20.0)
    assert 0.0 <= q[0, 0] <= 20.0
    # six steps ahead (an even lag) the series has always come back to where it was
    assert fallback_quantiles(series, 6, (0.95,))[0, 0] == pytest.approx(10.0)


def test_trained_model_is_calibrated_and_beats_the_fallback(tmp_path, usage, trained):
    forecaster = _served(tmp_path, trained)
    assert forecaster.trained
    covered, pin_model, pin_fallback = [], [], []
    for upto in range(TRAIN_END, usage.timestamps.size - 6, 7):
        state = make_state(usage, upto)
        result = forecaster.forecast(state, horizons=(6,), quantiles=(0.5, 0.95))
        assert result.source["cpu"] == "trained"
        y = usage.values["cpu"][:, upto - 1 + 6]
        p95 = result.values["cpu"][:, 0, 1]
        fb = fallback_quantiles(state.telemetry.values["cpu"], 6, (0.95,))[:, 0]
        covered.append(y <= p95)
        pin_model.append(np.maximum(0.95 * (y - p95), -0.05 * (y - p95)))
        pin_fallback.append(np.maximum(0.95 * (y - fb), -0.05 * (y - fb)))
    coverage = np.mean(np.concatenate(covered))
    assert 0.88 <= coverage <= 0.995
    assert np.mean(np.concatenate(pin_model)) < np.mean(np.concatenate(pin_fallback))


def test_metadata_records_schema_window_metrics_and_libraries(tmp_path, trained):
    forecaster = _served(tmp_path, trained)
    document = json.loads(forecaster.model_path.read_text())
    assert document["schema_version"] == feats.FORECAST_SCHEMA
    assert set(document["libraries"]) >= {"xgboost", "numpy", "python", "cotenancy"}
    meta = document["metadata"]
    assert len(meta["training_window"]) == 2 and meta["training_window"][0] < meta["training_window"][1]
    assert 0.85 <= meta["validation"]["cpu"]["coverage_p95"] <= 1.0


def test_a_model_saved_by_one_process_loads_in_another(tmp_path, usage, trained):
    forecaster = _served(tmp_path, trained)
    state = make_state(usage, TRAIN_END + 10)
    here = forecaster.forecast(state, (6,), (0.5, 0.95)).values["cpu"][:, 0, 1]
    window = state.telemetry.values["cpu"]
    np.save(tmp_path / "window.npy", window)
    code = f"""
import numpy as np
from cotenancy.predict.forecast import HybridForecaster
f = HybridForecaster(model_path={str(forecaster.model_path)!r})
assert f.trained
w = np.load({str(tmp_path / "window.npy")!r})
sizes = {{"cpu": np.array({usage.sizes["cpu"].tolist()!r})}}
out = f.forecast_arrays({{"cpu": w}}, {float(state.telemetry.timestamps[-1])!r}, 300.0, (6,), (0.5, 0.95),
                        sizes=sizes)
np.save({str(tmp_path / "other.npy")!r}, out.values["cpu"][:, 0, 1])
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "other.npy"), here, rtol=1e-6)


def test_serving_refuses_a_schema_mismatch(tmp_path, trained):
    forecaster = _served(tmp_path, trained)
    document = json.loads(forecaster.model_path.read_text())
    document["schema_version"] = "forecast-v0"
    forecaster.model_path.write_text(json.dumps(document))
    fresh = HybridForecaster(model_path=forecaster.model_path)
    with pytest.raises(SchemaMismatch, match="forecast-v0"):
        fresh.forecast_arrays({"cpu": np.ones((2, 20))}, 0.0, STEP, (1,))


def test_serving_refuses_telemetry_on_another_step_than_the_models(tmp_path, trained):
    """Horizon 6 is half an hour to a model trained on 5-minute steps; on 1-minute telemetry it
    would silently answer for 6 minutes."""
    forecaster = _served(tmp_path, trained)
    window = np.ones((2, 20))
    assert forecaster.forecast_arrays({"cpu": window}, 0.0, STEP, (1,)).source["cpu"] == "trained"
    with pytest.raises(SchemaMismatch, match="trained on 300 s telemetry steps .* from 60 s steps"):
        forecaster.forecast_arrays({"cpu": window}, 0.0, 60.0, (1,))


def test_a_day_of_training_features_is_a_day_of_the_telemetrys_steps(usage):
    """Trained on 1-minute steps, "yesterday" is 1440 steps back, whatever the config said."""
    values = {"cpu": usage.values["cpu"][:4, :600]}
    model = train_forecaster(values, usage.timestamps[:600], 60.0, config=small_config(rounds=2))
    assert model.steps_per_day == 1440
    assert model.metadata["step_seconds"] == 60.0


def test_models_reload_without_restart(tmp_path, usage, trained):
    forecaster = HybridForecaster(model_path=tmp_path / "forecast.json")
    state = make_state(usage, TRAIN_END)
    assert forecaster.forecast(state, (1,)).source["cpu"] == "fallback"
    writer = HybridForecaster(model_path=tmp_path / "forecast.json")
    writer.save(trained)
    time.sleep(1.1)  # the server looks at the file's mtime at most once a second
    assert forecaster.forecast(state, (1,)).source["cpu"] == "trained"
    (tmp_path / "forecast.json").unlink()
    time.sleep(1.1)
    assert forecaster.forecast(state, (1,)).source["cpu"] == "fallback"


def test_incremental_retraining_continues_the_trees(usage, trained):
    later = slice(288, TRAIN_END + 288)
    values = {k: v[:, later] for k, v in usage.values.items()}
    more = train_forecaster(
        values,
        usage.timestamps[later],
        STEP,
        usage.sizes,
        usage.vm_ids,
        usage.classes,
        small_config(),
        previous=trained,
    )
    before = trained.boosters["cpu"].num_boosted_rounds()
    assert more.boosters["cpu"].num_boosted_rounds() == before + small_config().incremental_rounds
    assert more.metadata["incremental"] is True


def test_each_round_averages_the_configured_number_of_trees(usage):
    values = {"cpu": usage.values["cpu"][:, :TRAIN_END]}
    timestamps = usage.timestamps[:TRAIN_END]
    config = small_config(parallel_trees=2)
    model = train_forecaster(values, timestamps, STEP, config=config)
    booster = model.boosters["cpu"]
    # one tree per quantile per parallel tree per round
    assert len(booster.get_dump()) == config.rounds * len(config.alphas) * 2
    assert booster.num_boosted_rounds() == config.rounds


def test_an_operator_can_trade_forecast_accuracy_for_speed_in_the_config(tmp_path):
    conf = make_conf(config_files=[])
    assert HybridForecaster(conf, model_path=tmp_path / "f.json").training_config().parallel_trees == 3
    conf.set_override("parallel_trees", 1, group=HybridForecaster.group)
    assert HybridForecaster(conf, model_path=tmp_path / "f.json").training_config().parallel_trees == 1


def test_negative_and_non_finite_samples_are_treated_exactly_as_missing(usage):
    """Bad samples neither crash training nor leak into it: the model equals one trained with
    those samples absent (NaN)."""
    rng = np.random.default_rng(1)
    cpu = usage.values["cpu"][:, :TRAIN_END].copy()
    spots = rng.random(cpu.shape) < 0.03
    bad = cpu.copy()
    bad[spots] = rng.choice([-5.0, np.inf, -np.inf, np.nan], int(spots.sum()))
    missing = cpu.copy()
    missing[spots] = np.nan
    cfg = small_config(horizons=(6,))
    ts = usage.timestamps[:TRAIN_END]
    model_bad = train_forecaster({"cpu": bad}, ts, STEP, usage.sizes, config=cfg)
    model_missing = train_forecaster({"cpu": missing}, ts, STEP, usage.sizes, config=cfg)
    probe = missing[:, -312:]
    x, _, _ = feats.forecast_features(probe, float(ts[-1]), 6, STEP)
    np.testing.assert_allclose(
        model_bad.boosters["cpu"].inplace_predict(x), model_missing.boosters["cpu"].inplace_predict(x)
    )


def test_window_statistics_are_also_given_relative_to_the_last_value():
    """The target is the change from the last value, so the features say how far the recent
    peaks, quantiles and yesterday's target lie above it, in the VM's scale."""
    series = np.full((1, 312), 10.0)
    series[0, -20] = 40.0  # a peak inside the last 36 steps, not the last 6
    series[0, -1 - 288 + 6] = 25.0  # one day before the target time of a 6-step horizon
    x, anchor, scale = feats.forecast_features(series, 0.0, 6, STEP)
    row = dict(zip(feats.FORECAST_FEATURES, x[0], strict=True))
    assert anchor[0] == 10.0
    assert row["max_36_above_last"] == pytest.approx(30.0 / scale[0])
    assert row["max_6_above_last"] == pytest.approx(0.0)
    assert row["yday_target_above_last"] == pytest.approx(15.0 / scale[0])
    assert row["max_36_above_last"] == pytest.approx(row["max_36"] - row["last"])


def test_training_rows_weigh_by_scale_and_halve_with_each_half_life_of_age():
    log_scale = np.array([0.0, 0.0, 2.0, 0.0])
    age_days = np.array([0.0, 7.0, 0.0, 14.0])
    weight = row_weights(log_scale, age_days, TrainingConfig(weight_power=0.5, recency_half_life_days=7))
    assert weight.mean() == pytest.approx(1.0)
    assert weight[1] / weight[0] == pytest.approx(0.5)
    assert weight[3] / weight[0] == pytest.approx(0.25)
    assert weight[2] / weight[0] == pytest.approx(10.0)  # a hundred times the scale, sqrt of it
    flat = row_weights(log_scale, age_days, TrainingConfig(weight_power=0.5, recency_half_life_days=0))
    assert flat[1] == pytest.approx(flat[0]) and flat[3] == pytest.approx(flat[0])


def test_staggered_origins_give_each_vm_its_own_instants_with_the_same_rows():
    series = np.arange(40, dtype=float).reshape(2, 20)
    together, at = stacked_windows(series, [5, 10], 4)
    staggered, at_staggered = stacked_windows(series, [5, 10], 4, phases=np.array([0, 3]))
    assert together.shape == staggered.shape
    assert at.tolist() == [5, 5, 10, 10]
    assert at_staggered.tolist() == [5, 8, 10, 13]
    # each row is its own VM's window ending at its own origin
    assert staggered[1].tolist() == [25.0, 26.0, 27.0, 28.0]
    assert staggered[3].tolist() == [30.0, 31.0, 32.0, 33.0]
    # a phase never runs past the last sample
    _, at_end = stacked_windows(series, [18], 4, phases=np.array([0, 5]))
    assert at_end.tolist() == [18, 19]


def test_staggered_training_rows_cover_more_instants_from_as_many_rows(usage):
    cpu = usage.values["cpu"][:, :TRAIN_END]
    ts = usage.timestamps[:TRAIN_END]
    origins = list(range(288, TRAIN_END - 12, 12))
    phases = np.random.default_rng(0).integers(0, 12, cpu.shape[0])
    rows = {
        stagger: build_rows(cpu, ts, STEP, origins, (6,), 312, 288, None, phases=phases if stagger else None)
        for stagger in (False, True)
    }
    (x_together, _, at_together), (x_staggered, _, at_staggered) = rows[False], rows[True]
    assert len(x_staggered) == pytest.approx(len(x_together), rel=0.02)
    assert len(np.unique(at_staggered)) > 5 * len(np.unique(at_together))


def test_training_targets_are_clipped_at_the_configured_number_of_scales(usage):
    cpu = usage.values["cpu"][:, :TRAIN_END]
    ts = usage.timestamps[:TRAIN_END]
    probe, _, _ = feats.forecast_features(cpu[:, -312:], float(ts[-1]), 6, STEP)
    raw = {
        clip: np.asarray(
            train_forecaster(
                {"cpu": cpu}, ts, STEP, usage.sizes, config=small_config(horizons=(6,), z_clip=clip)
            )
            .boosters["cpu"]
            .inplace_predict(probe)
        )
        for clip in (0.5, 30.0)
    }
    # quantile trees predict within the range of the labels they saw
    assert np.abs(raw[0.5]).max() <= 0.5 + 1e-3
    assert np.abs(raw[30.0]).max() > 0.5


def test_serving_survives_bad_and_missing_windows(tmp_path, usage, trained):
    forecaster = _served(tmp_path, trained)
    window = usage.values["cpu"][:4, TRAIN_END - 312 : TRAIN_END].copy()
    window[0, -1] = -3.0  # negative latest sample: ignored, earlier samples used
    window[1, -5:] = np.nan  # a gap
    window[2, :] = np.nan  # no history at all: half the size at p50, the whole size at p95
    window[3, ::2] = np.inf
    sizes = {"cpu": usage.sizes["cpu"][:4]}
    out = forecaster.forecast_arrays(
        {"cpu": window}, float(usage.timestamps[TRAIN_END - 1]), STEP, (1, 6), (0.5, 0.95), sizes=sizes
    ).values["cpu"]
    assert np.isfinite(out).all() and (out >= 0).all()
    assert out[2, 0, 0] == pytest.approx(0.5 * sizes["cpu"][2])
    assert out[2, 0, 1] == pytest.approx(sizes["cpu"][2])
    assert out[0, 0, 1] < sizes["cpu"][0] * 1.5


def test_a_window_with_no_samples_yet_gets_the_size_based_guess_from_a_trained_model(
    tmp_path, usage, trained
):
    """A fresh cloud, or a collector down for longer than the window: the same answer as a VM with
    no history, not a crash of the window statistics."""
    forecaster = _served(tmp_path, trained)
    sizes = {"cpu": usage.sizes["cpu"][:4]}
    out = forecaster.forecast_arrays(
        {"cpu": np.zeros((4, 0))},
        float(usage.timestamps[TRAIN_END - 1]),
        STEP,
        (1, 6),
        (0.5, 0.95),
        sizes=sizes,
    ).values["cpu"]
    assert out[:, 0, 0] == pytest.approx(0.5 * sizes["cpu"])
    assert out[:, 0, 1] == pytest.approx(sizes["cpu"])


def test_long_horizons_use_weekly_profiles_that_transfer_to_new_vms(tmp_path, usage, trained):
    """A VM with one hour of history gets its class's daily shape, not a flat line."""
    forecaster = _served(tmp_path, trained)
    night_vm = usage.classes.index("batch")
    upto = TRAIN_END + 12 * 12  # 12:00 on the fourth day: batch VMs are at their low
    window = usage.values["cpu"][night_vm : night_vm + 1, upto - 12 : upto]
    horizons = tuple(range(48, 288, 24))
    out = forecaster.forecast_arrays(
        {"cpu": window},
        float(usage.timestamps[upto - 1]),
        STEP,
        horizons,
        (0.5,),
        vm_ids=["brand-new-vm"],
        classes=["batch"],
    ).values["cpu"][0, :, 0]
    hours = ((usage.timestamps[upto - 1] + STEP * np.array(horizons)) % 86400) / 3600
    truth = np.cos(2 * np.pi * (hours - 2.0) / 24)
    assert np.corrcoef(out, truth)[0, 1] > 0.8


def test_hints_scale_forecasts_of_matching_vms_while_they_last():
    values = {"cpu": np.ones((2, 3, 2))}
    times = np.array([100.0, 200.0, 300.0])
    hint = Hint(start=150.0, end=250.0, vms="web-*", resource="cpu", factor=2.0)
    applied = apply_hints(values, [hint], [("web-1",), ("db-1",)], times)
    assert applied
    np.testing.assert_array_equal(values["cpu"][0, :, 0], [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(values["cpu"][1], np.ones((3, 2)))


def test_a_hint_on_two_resources_is_named_once_in_what_was_applied():
    values = {"cpu": np.ones((1, 1, 2)), "network": np.ones((1, 1, 2))}
    sale = [Hint(0.0, 10.0, "web-*", resource, 2.0, name="sale") for resource in ("cpu", "network")]
    assert apply_hints(values, sale, [("web-1",)], np.array([5.0])) == ["sale"]
    assert values["cpu"][0, 0, 0] == values["network"][0, 0, 0] == 2.0


def test_hints_come_from_configuration(tmp_path, usage):
    hints_file = tmp_path / "hints.yaml"
    hints_file.write_text(
        "- {start: '2023-11-15T00:00:00', end: '2023-11-16T00:00:00', vms: 'vm-00*', "
        "resource: cpu, factor: 3}\n"
    )
    conf = make_conf([])
    conf.set_override("hints_file", str(hints_file), group="predict")
    conf.set_override("model_dir", str(tmp_path), group="predict")
    forecaster = HybridForecaster(conf)
    plain = HybridForecaster(model_path=tmp_path / "absent.json")
    state = make_state(usage, 200)
    hinted = forecaster.forecast(state, (1,)).values["cpu"][:, 0, 0]
    base = plain.forecast(state, (1,)).values["cpu"][:, 0, 0]
    matching = np.array([v.startswith("vm-00") for v in usage.vm_ids])
    np.testing.assert_allclose(hinted[matching], 3 * base[matching])
    np.testing.assert_allclose(hinted[~matching], base[~matching])


def test_bad_hint_lines_are_rejected_clearly():
    with pytest.raises(ConfigurationError, match="end must be after start"):
        parse_hint_line("start=2024-01-02T00:00,end=2024-01-01T00:00,factor=2")
    with pytest.raises(ConfigurationError, match="unknown resource"):
        parse_hint_line("start=0,end=10,resource=cache")


def test_a_model_trained_without_workload_classes_round_trips(tmp_path, usage):
    values = {"cpu": usage.values["cpu"][:, :TRAIN_END]}
    model = train_forecaster(values, usage.timestamps[:TRAIN_END], STEP, config=small_config(horizons=(1,)))
    forecaster = _served(tmp_path, model)
    fresh = HybridForecaster(model_path=forecaster.model_path)
    out = fresh.forecast_arrays(
        {"cpu": usage.values["cpu"][:, TRAIN_END - 312 : TRAIN_END]},
        float(usage.timestamps[TRAIN_END - 1]),
        STEP,
        (1, 100),
        (0.5, 0.95),
    )
    assert out.source["cpu"] == "trained"
    assert np.isfinite(out.values["cpu"]).all()
