"""Conformal shifts are kept only where they lower the held-out pinball loss in project units."""

from __future__ import annotations

import numpy as np

from cotenancy.predict.forecast import _shift_helps


def test_a_shift_towards_the_true_quantile_is_kept_and_a_harmful_one_dropped():
    rng = np.random.default_rng(0)
    z = rng.normal(size=5000)
    # p95 predicted at 0 (far too low) and p50 predicted exactly at the median
    pred = np.zeros((5000, 2))
    shifts = np.array([1.0, 1.645])
    kept = _shift_helps(z, pred, np.ones(5000), shifts, (0.5, 0.95))
    assert kept.tolist() == [False, True]


def test_the_choice_weights_rows_by_their_scale():
    # small VMs need the shift, the one big VM does not: in project units the big VM decides
    z = np.concatenate([np.full(100, 2.0), np.zeros(10)])
    pred = np.zeros((110, 1))
    scale = np.concatenate([np.ones(100), np.full(10, 1000.0)])
    assert not _shift_helps(z, pred, scale, np.array([2.0]), (0.95,))[0]
    assert _shift_helps(z, pred, np.ones(110), np.array([2.0]), (0.95,))[0]


def test_too_few_rows_keep_no_shift():
    assert not _shift_helps(np.zeros(5), np.zeros((5, 1)), np.ones(5), np.array([1.0]), (0.95,)).any()
