"""A conflict label has two halves, one of the pair degraded and the pair still together; each is
read from the same history as the label itself."""

from __future__ import annotations

import numpy as np
from predict_synthetic import toy_history

from cotenancy.predict.history import build_pair_dataset, conflict_factors, degraded_by_step


def test_degraded_marks_the_victims_of_each_event_for_the_steps_it_lasts():
    history = toy_history(steps=60)
    marks = degraded_by_step(history)
    index = {v: i for i, v in enumerate(history.vm_ids)}
    expected = np.zeros_like(marks)
    for event in history.events:
        col = int((event.timestamp - history.timestamps[0]) // history.step_seconds)
        expected[[index[v] for v in event.vm_ids], col] = True
    assert expected.any()
    np.testing.assert_array_equal(marks, expected)


def test_every_conflict_needs_a_degraded_vm_and_the_pair_together():
    history = toy_history(steps=120)
    data = build_pair_dataset(history, horizon_steps=6, label_from_steps=3)
    degraded, together = conflict_factors(history, data, label_from_steps=3, horizon_steps=6)
    assert data.y.any() and (~degraded).any()
    assert not (data.y & ~degraded).any()
    # nobody moves in the toy cloud, so every co-located pair is still together
    assert together.all()


def test_a_pair_split_before_the_window_is_not_together():
    history = toy_history(steps=120)
    history.host_of[0, 50:] = (history.host_of[0, 0] + 1) % 3  # vm-0 leaves its host at step 50
    data = build_pair_dataset(history, horizon_steps=6, label_from_steps=3)
    _, together = conflict_factors(history, data, label_from_steps=3, horizon_steps=6)
    n = len(history.vm_ids)
    old_neighbours = np.flatnonzero(history.host_of[:, 0] == history.host_of[0, 0])[1:]
    split = (data.keys // n == 0) & np.isin(data.keys % n, old_neighbours)
    assert split.any()
    # observed at steps 47-49, the pair is apart at t + 3; before that it is still together at t + 3
    assert not together[split & (data.step >= 47)].any()
    assert together[split & (data.step < 47)].all()
    assert together[~split].all()
