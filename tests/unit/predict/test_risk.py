"""Pairwise conflict risk: labels from events, cold start, candidate hosts, calibration, lifecycle."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from predict_synthetic import STEP, make_state, synthetic_usage, toy_history

from cotenancy.conf import make_conf
from cotenancy.exceptions import SchemaMismatch
from cotenancy.model import Event, EventKind
from cotenancy.predict import features as feats
from cotenancy.predict.history import (
    build_pair_dataset,
    colocated_pairs,
    conflict_keys_by_step,
    placement_over_time,
)
from cotenancy.predict.metrics import average_precision, recall_at_precision
from cotenancy.predict.risk import RiskTrainingConfig, XGBoostRiskModel, train_risk


@pytest.fixture(scope="module")
def history():
    return toy_history()


@pytest.fixture(scope="module")
def dataset(history):
    return build_pair_dataset(history, horizon_steps=6, window_steps=12)


@pytest.fixture(scope="module")
def trained(dataset):
    return train_risk(dataset, RiskTrainingConfig(rounds=40))


def _hot_and_idle_state():
    """Host h0 runs at 99 % of its capacity, h1 is almost idle."""
    usage = synthetic_usage(n_vms=4, days=1, seed=3)
    usage.values["cpu"][:2] = 7900.0
    usage.values["cpu"][2:] = 200.0
    usage.sizes["cpu"][:] = 8000.0
    placement = {"vm-000": "h0", "vm-001": "h0", "vm-002": "h1", "vm-003": "h1"}
    return make_state(usage, 288, window=12, hosts={"h0": 16000.0, "h1": 16000.0}, placement=placement)


def test_cold_start_heuristic_ranks_hot_hosts_first_and_ignores_split_pairs(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _hot_and_idle_state()
    scores = model.score_pairs(state, np.array([[0, 1], [2, 3], [0, 2]]))
    assert not model.trained
    assert scores[0] > 0.5 > scores[1]
    assert scores[2] == 0.0  # not on one host and no candidate host: no shared host, no conflict
    assert ((scores >= 0) & (scores <= 1)).all()


def test_candidate_hosts_score_a_hypothetical_move(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _hot_and_idle_state()
    # the idle pair (2, 3) moved onto the hot host h0 (index 0 in sorted hosts) vs staying on h1
    moved = model.score_pairs(state, np.array([[2, 3], [2, 3]]), hosts=np.array([0, 1]))
    assert moved[0] > moved[1]
    x, _ = model.context(state).features(np.array([[2, 3]]), np.array([0]))
    load = x[0, feats.PAIR_FEATURES.index("host_demand_last")]
    assert load == pytest.approx((7900 * 2 + 200 * 2) / 16000.0)


def test_pairs_are_scored_in_chunks_exactly_as_in_one_batch(tmp_path, monkeypatch):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _hot_and_idle_state()
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 4, size=(23, 2))
    hosts = rng.integers(0, 2, size=23)
    x, placed = model.context(state).features(pairs, hosts)
    one_batch = np.where(placed, model.score_features(x), 0.0)
    monkeypatch.setattr("cotenancy.predict.risk.SCORE_CHUNK", 5)  # 23 pairs: four full chunks and a tail
    np.testing.assert_array_equal(model.score_pairs(state, pairs, hosts), one_batch)
    np.testing.assert_array_equal(model.score_pairs(state, pairs[:0]), np.zeros(0))


def test_labels_come_from_degradation_events_only(history):
    keys = conflict_keys_by_step(history)
    assert any(keys)
    silent = toy_history()
    silent.events = []
    data = build_pair_dataset(silent, horizon_steps=6, window_steps=12)
    assert len(data.y) > 0 and not data.y.any()
    with pytest.raises(ValueError, match="no conflict"):
        train_risk(data)


def test_trained_model_is_accurate_and_calibrated_on_held_out_time(dataset, trained):
    validation = trained.metadata["validation"]
    assert validation["pr_auc"] > 0.8
    steps = np.unique(dataset.step)
    late = dataset.step >= steps[int(len(steps) * 0.875)]
    p = trained.probability(dataset.x[late])
    assert ((p >= 0) & (p <= 1)).all()
    # calibration: the mean probability is close to the observed conflict rate
    assert abs(p.mean() - dataset.y[late].mean()) < 0.1


def test_saved_model_serves_explains_and_refuses_another_schema(tmp_path, history, trained):
    writer = XGBoostRiskModel(model_path=tmp_path / "risk.json")
    writer.save(trained)
    reader = XGBoostRiskModel(model_path=tmp_path / "risk.json")
    assert reader.trained
    x = build_pair_dataset(history, horizon_steps=6, window_steps=12).x[:50]
    np.testing.assert_allclose(reader.score_features(x), trained.probability(x))
    state = _hot_and_idle_state()
    top = reader.explain(state, (0, 1), top=3)
    assert len(top) == 3
    assert all(name in feats.PAIR_FEATURES for name, _ in top)
    assert abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])
    document = json.loads((tmp_path / "risk.json").read_text())
    assert document["metadata"]["validation"]["pr_auc"] > 0
    document["schema_version"] = "pair-v0"
    (tmp_path / "risk.json").write_text(json.dumps(document))
    with pytest.raises(SchemaMismatch):
        XGBoostRiskModel(model_path=tmp_path / "risk.json").score_pairs(state, np.array([[0, 1]]))


def test_incremental_training_adds_rounds(dataset, trained):
    more = train_risk(dataset, RiskTrainingConfig(incremental_rounds=7), previous=trained)
    assert more.booster.num_boosted_rounds() == trained.booster.num_boosted_rounds() + 7


def test_a_model_serves_only_the_telemetry_step_and_spans_it_was_trained_on(tmp_path, trained):
    """Its features count steps: a window of 12, a day of memory, a 30-minute horizon. On 60 s
    telemetry, or with another memory, they would mean other spans, so serving refuses."""
    assert trained.metadata["telemetry"] == {
        "step_seconds": 300.0,
        "window_steps": 12.0,
        "horizon_steps": 6.0,
        "lookback_steps": 288.0,
    }
    XGBoostRiskModel(model_path=tmp_path / "risk.json").save(trained)
    served = XGBoostRiskModel(model_path=tmp_path / "risk.json")
    assert np.isfinite(served.score_pairs(_hot_and_idle_state(), np.array([[0, 1]]))).all()

    one_minute = _hot_and_idle_state()
    one_minute.telemetry.step_seconds = 60.0
    with pytest.raises(SchemaMismatch, match=r"trained on .*step_seconds=300.* serve .*step_seconds=60"):
        served.score_pairs(one_minute, np.array([[0, 1]]))

    conf = make_conf([])
    conf.set_override("memory_hours", 12, group="risk_xgboost")
    half_day = XGBoostRiskModel(conf, model_path=tmp_path / "risk.json")
    with pytest.raises(SchemaMismatch, match=r"lookback_steps=288 .*lookback_steps=144"):
        half_day.score_pairs(_hot_and_idle_state(), np.array([[0, 1]]))


def test_a_model_file_from_before_the_telemetry_was_recorded_still_serves(tmp_path, trained):
    XGBoostRiskModel(model_path=tmp_path / "risk.json").save(trained)
    document = json.loads((tmp_path / "risk.json").read_text())
    del document["metadata"]["telemetry"]
    (tmp_path / "risk.json").write_text(json.dumps(document))
    one_minute = _hot_and_idle_state()
    one_minute.telemetry.step_seconds = 60.0
    scores = XGBoostRiskModel(model_path=tmp_path / "risk.json").score_pairs(one_minute, np.array([[0, 1]]))
    assert np.isfinite(scores).all()


def test_incremental_training_refuses_rows_of_another_telemetry_step(trained):
    one_minute = build_pair_dataset(toy_history(step=60.0), horizon_steps=30, window_steps=12)
    with pytest.raises(ValueError, match="step_seconds=300.*step_seconds=60.*train afresh"):
        train_risk(one_minute, RiskTrainingConfig(incremental_rounds=3), previous=trained)


def test_bad_telemetry_gives_finite_scores(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _hot_and_idle_state()
    state.telemetry.values["cpu"][0, -1] = np.nan
    state.telemetry.values["cpu"][1, -3:] = -50.0
    state.telemetry.values["cpu"][2, :] = np.inf
    scores = model.score_pairs(state, np.array([[0, 1], [2, 3]]))
    assert np.isfinite(scores).all()


def test_past_conflicts_seen_in_rounds_become_features(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _hot_and_idle_state()
    state.events = [
        Event(
            timestamp=state.now - 600,
            kind=EventKind.DEGRADATION,
            vm_ids=("vm-002",),
            host_id="h1",
            details={"neighbours": "vm-002,vm-003"},
        )
    ]
    x, _ = model.context(state).features(np.array([[2, 3], [0, 1]]))
    col = feats.PAIR_FEATURES.index("pair_conflicts")
    assert x[0, col] == 1.0 and x[1, col] == 0.0


def test_a_server_asked_about_an_earlier_time_does_not_count_conflicts_it_saw_later(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    later = _hot_and_idle_state()
    conflict = Event(
        timestamp=later.now - 600,
        kind=EventKind.DEGRADATION,
        vm_ids=("vm-002",),
        host_id="h1",
        details={"neighbours": "vm-002,vm-003"},
    )
    later.events = [conflict]
    earlier = replace(_hot_and_idle_state(), now=later.now - 1200)
    col = feats.PAIR_FEATURES.index("pair_conflicts")

    assert model.context(later).features(np.array([[2, 3]]))[0][0, col] == 1.0
    assert model.context(earlier).features(np.array([[2, 3]]))[0][0, col] == 0.0
    assert model.context(later).features(np.array([[2, 3]]))[0][0, col] == 1.0


def test_placement_history_is_rebuilt_from_migration_events():
    stamps = np.arange(5) * STEP
    moves = [
        Event(
            timestamp=2 * STEP + 10,
            kind=EventKind.MIGRATION,
            vm_ids=("a",),
            host_id="h2",
            details={"from": "h1", "to": "h2"},
        )
    ]
    placement = placement_over_time(["a", "b"], ["h1", "h2"], {"a": "h2", "b": "h1"}, moves, stamps, STEP)
    np.testing.assert_array_equal(placement[0], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(placement[1], [0, 0, 0, 0, 0])


def test_colocated_pairs_lists_every_pair_on_each_host():
    pairs = colocated_pairs(np.array([0, 1, 0, -1, 0, 1]))
    assert {tuple(p) for p in pairs.tolist()} == {(0, 2), (0, 4), (2, 4), (1, 5)}


def test_ranking_metrics_on_a_known_example():
    y = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    # precision at each positive: 1/1, 2/3, 3/6
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    recall, threshold = recall_at_precision(y, s, 0.8)
    assert recall == pytest.approx(1 / 3) and threshold == pytest.approx(0.9)


def test_how_fast_interference_evidence_fades_is_read_from_the_plugins_config_group(tmp_path):
    conf = make_conf([])
    conf.set_override("sensitivity_decay", 0.9, group="risk_xgboost")
    conf.set_override("pressure_decay", 0.8, group="risk_xgboost")
    conf.set_override("pressure_prior", 3.0, group="risk_xgboost")
    memory = XGBoostRiskModel(conf, model_path=tmp_path / "absent.json")._interference
    assert (memory.sensitivity_decay, memory.pressure_decay, memory.prior) == (0.9, 0.8, 3.0)
    default = XGBoostRiskModel(make_conf([]), model_path=tmp_path / "absent.json")._interference
    assert (default.sensitivity_decay, default.pressure_decay, default.prior) == (0.995, 0.99, 1.0)
