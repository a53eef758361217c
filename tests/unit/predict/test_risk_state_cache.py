"""The risk model caches a state's pair context while the planner scores it in batches; a new
state, even one for the same instant, is always scored from its own placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from predict_synthetic import make_state, synthetic_usage

from cotenancy.predict.risk import XGBoostRiskModel

HOSTS = {"h0": 16000.0, "h1": 16000.0}
TOGETHER = {"vm-000": "h0", "vm-001": "h0", "vm-002": "h1", "vm-003": "h1"}
SPLIT = {"vm-000": "h0", "vm-001": "h1", "vm-002": "h1", "vm-003": "h0"}


def busy_pair_usage():
    usage = synthetic_usage(n_vms=4, days=1, seed=3)
    usage.values["cpu"][:2] = 7900.0
    usage.values["cpu"][2:] = 200.0
    usage.sizes["cpu"][:] = 8000.0
    return usage


def score_in_a_fresh_state(model: XGBoostRiskModel, usage, placement: dict[str, str]) -> float:
    """As the API does per request: build the state, score, let the state go."""
    state = make_state(usage, 288, window=12, hosts=HOSTS, placement=placement)
    return float(model.score_pairs(state, np.array([[0, 1]]))[0])


def test_a_new_state_for_the_same_instant_is_scored_from_its_own_placement(tmp_path: Path) -> None:
    usage = busy_pair_usage()
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    truth = score_in_a_fresh_state(XGBoostRiskModel(model_path=tmp_path / "absent.json"), usage, SPLIT)

    together = score_in_a_fresh_state(model, usage, TOGETHER)
    split = score_in_a_fresh_state(model, usage, SPLIT)

    assert together > 0.5  # two busy VMs sharing a host
    assert truth == 0.0  # on different hosts they cannot be in conflict
    assert split == truth
