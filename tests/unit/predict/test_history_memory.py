"""Training-side memory of the past: conflict counts over a sliding window and placement churn."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from predict_synthetic import STEP, toy_history

from cotenancy.model import Event, EventKind
from cotenancy.predict.history import RECENT_STEPS, ConflictMemory, placement_churn


def _recount(history, col: int, lookback_steps: int) -> dict:
    """The definition, event by event: events with ``now - lookback < t <= now``."""
    index = {v: i for i, v in enumerate(history.vm_ids)}
    n = len(index)
    now = history.timestamps[col]
    per_vm, recent, present = np.zeros(n), np.zeros(n), np.zeros(n)
    pairs: Counter = Counter()
    for event in history.events:
        if not now - lookback_steps * STEP < event.timestamp <= now:
            continue
        victims = [index[v] for v in event.vm_ids]
        neighbours = [index[v] for v in event.details["neighbours"].split(",")]
        per_vm[victims] += 1
        present[neighbours] += 1
        if event.timestamp > now - RECENT_STEPS * STEP:
            recent[victims] += 1
        for x in victims:
            for y in neighbours:
                if x != y:
                    pairs[min(x, y) * n + max(x, y)] += 1
    return {"per_vm": per_vm, "recent": recent, "present": present, "pairs": pairs}


def test_sliding_conflict_memory_equals_a_recount_at_every_step():
    history = toy_history(steps=120)
    assert len(history.events) > 20
    memory = ConflictMemory(history, lookback_steps=24)
    for col in range(0, 120, 3):  # skipping steps must not lose or double-count events
        got = memory.at(col)
        want = _recount(history, col, 24)
        np.testing.assert_array_equal(got["vm_conflicts"], want["per_vm"])
        np.testing.assert_array_equal(got["vm_recent_conflicts"], want["recent"])
        np.testing.assert_array_equal(got["vm_present_conflicts"], want["present"])
        assert dict(
            zip(got["pair_conflict_keys"].tolist(), got["pair_conflict_counts"].tolist(), strict=True)
        ) == {k: float(v) for k, v in want["pairs"].items()}


def test_memory_counts_the_events_of_the_step_being_observed():
    history = toy_history(steps=60)
    history.events = [
        Event(
            timestamp=float(history.timestamps[10]),
            kind=EventKind.DEGRADATION,
            vm_ids=("vm-0",),
            host_id="h0",
            details={"neighbours": "vm-0,vm-3"},
        )
    ]
    memory = ConflictMemory(history, lookback_steps=5)
    assert memory.at(9)["vm_conflicts"][0] == 0
    assert memory.at(10)["vm_conflicts"][0] == 1
    assert memory.at(14)["vm_conflicts"][0] == 1
    assert memory.at(15)["vm_conflicts"][0] == 0  # older than the 5-step lookback


def test_placement_churn_counts_recent_moves_and_steps_since_the_last():
    host_of = np.array(
        [
            [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [-1, -1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        ]
    )
    counts, since = placement_churn(host_of, lookback_steps=288)
    assert counts[0].tolist()[:6] == [0, 0, 1, 1, 2, 2]
    assert counts[0, 2 + RECENT_STEPS] == 1  # the move at step 2 has left the last hour
    assert since[0].tolist()[:6] == [288, 288, 0, 1, 0, 1]
    assert not counts[1].any() and (since[1] == 288).all()
    # being started is not a migration; a later move is
    assert counts[2, 2] == 0 and since[2, 14] == 288 and since[2, 15] == 0


@pytest.mark.parametrize("lookback", [1, 288])
def test_churn_since_is_capped_by_the_lookback(lookback):
    host_of = np.array([[0, 1] + [1] * 10])
    _, since = placement_churn(host_of, lookback_steps=lookback)
    assert since.max() <= lookback
