"""The forecast evaluation says where the model's margin over a baseline is won or lost."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.predict.evaluation import heaviest_vms


def test_the_vm_a_baseline_loses_most_on_is_reported_apart_from_the_rest():
    target = np.array([[10.0, 10.0], [100.0, 100.0], [10.0, 10.0]])
    valid = np.ones_like(target, dtype=bool)
    baseline = np.array([[20.0, 20.0], [0.0, 0.0], [20.0, 20.0]])
    model = np.array([[11.0, 11.0], [50.0, 50.0], [11.0, 11.0]])
    heavy = heaviest_vms(target, valid, model, baseline)
    # the baseline misses VM 1 by 100 twice (loss 0.95 x 100 x 2 = 190) and overshoots the
    # others by 10 twice (0.05 x 10 x 2 = 1 each)
    assert heavy["vms"] == 1
    assert heavy["baseline_loss_share"] == pytest.approx(190 / 192)
    # the model misses VM 1 by 50 twice (95) and overshoots the others by 1 twice (0.1 each)
    assert heavy["model_loss_share"] == pytest.approx(95 / 95.2)
    assert heavy["reduction_on_heaviest"] == pytest.approx(0.5)
    assert heavy["reduction_on_rest"] == pytest.approx(1 - 0.2 / 2)


def test_targets_that_are_not_valid_do_not_count():
    target = np.array([[10.0, np.nan], [10.0, 10.0]])
    valid = ~np.isnan(target)
    baseline = np.array([[0.0, 0.0], [10.0, 10.0]])
    heavy = heaviest_vms(target, valid, baseline, baseline)
    assert heavy["baseline_loss_share"] == pytest.approx(1.0)
    assert heavy["reduction_on_heaviest"] == 0.0
