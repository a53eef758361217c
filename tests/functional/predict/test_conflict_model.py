"""The conflict evaluation can hand its trained model to the serving side (the planner's risk.json)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from cotenancy.predict import features as feats
from cotenancy.predict.evaluation import (
    ConflictExperiment,
    analyse_conflict_factors,
    evaluate_conflicts,
    train_conflict_model,
)
from cotenancy.predict.risk import RiskTrainingConfig, XGBoostRiskModel


def _small_days(tmp_path, shared_dir, names, vms=120):
    days = []
    for day in names:
        source = shared_dir / "traces" / "planetlab" / day
        target = tmp_path / day
        target.mkdir()
        for path in sorted(source.iterdir())[:vms]:
            shutil.copy(path, target / path.name)
        days.append(str(target))
    return days


def test_evaluation_saves_a_model_that_another_object_serves(tmp_path, shared_dir):
    train_a, train_b, test = _small_days(tmp_path, shared_dir, ("20110303", "20110306", "20110309"))
    saved = tmp_path / "models" / "risk.json"
    result = evaluate_conflicts(ConflictExperiment([train_a, train_b], [test]), save_model=saved)
    document = json.loads(saved.read_text())
    assert document["schema_version"] == feats.PAIR_SCHEMA
    assert document["metadata"]["feature_names"] == list(feats.PAIR_FEATURES)
    assert document["metadata"]["validation"] == result["model_validation"]

    served = XGBoostRiskModel(model_path=saved)
    assert served.trained
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, len(feats.PAIR_FEATURES))).astype(np.float32)
    p = served.score_features(x)
    assert ((p >= 0) & (p <= 1)).all()
    # the same booster and calibration as the one evaluated
    again = XGBoostRiskModel(model_path=saved)
    np.testing.assert_array_equal(again.score_features(x), p)


def test_evaluation_trains_with_the_capacity_it_is_given(tmp_path, shared_dir):
    train_a, train_b, test = _small_days(tmp_path, shared_dir, ("20110303", "20110306", "20110309"), vms=60)
    saved = tmp_path / "risk.json"
    capacity = RiskTrainingConfig(rounds=7, max_depth=2)
    days = ConflictExperiment([train_a, train_b], [test])
    evaluate_conflicts(days, save_model=saved, training=capacity)
    assert json.loads(saved.read_text())["metadata"]["rounds"] == 7


def test_a_model_trained_for_serving_takes_the_same_capacity(tmp_path, shared_dir):
    train_a, train_b = _small_days(tmp_path, shared_dir, ("20110303", "20110306"), vms=60)
    capacity = RiskTrainingConfig(rounds=5, max_depth=2)
    model = train_conflict_model(ConflictExperiment([train_a, train_b]), training=capacity)
    assert model.metadata["rounds"] == 5


def test_factor_analysis_scores_both_halves_of_the_label_and_their_bounds(tmp_path, shared_dir):
    train_a, train_b, test = _small_days(tmp_path, shared_dir, ("20110303", "20110306", "20110309"), vms=60)
    result = analyse_conflict_factors(ConflictExperiment([train_a, train_b], [test]))
    assert set(result["sets"]) == {"validation", "test"}
    for figures in result["sets"].values():
        rates = figures["positive_rate"]
        # a conflict needs a degraded VM in the window, so it is never more frequent than one
        assert 0 < rates["conflict"] <= rates["degraded"]
        assert 0 < rates["together"] < 1
        assert all(0.0 <= v <= 1.0 for v in figures["pr_auc"].values())
        # a perfect predictor of one half cannot rank conflicts worse than chance
        assert figures["pr_auc"]["degraded_model_x_true_together"] > rates["conflict"]
