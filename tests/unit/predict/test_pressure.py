"""Learning which neighbours hurt from the slowdowns of the sensitive VMs next to them."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.predict.pressure import InterferenceMemory

HALF = 3.5


def _learn(activity, ready, sensitivity, host_of, weighted: bool = True) -> np.ndarray:
    """Pressures one window teaches a fresh memory."""
    memory = InterferenceMemory(HALF, weighted=weighted)
    ids = [f"vm{i}" for i in range(len(host_of))]
    memory.update(ids, activity, ready, host_of, sensitivity)
    return memory.pressure(ids)


def _window(pressure: np.ndarray, host_of: np.ndarray, sensitivity: np.ndarray, width: int, seed: int = 0):
    """Activity at random and the ready share the interference model gives every VM."""
    rng = np.random.default_rng(seed)
    activity = rng.uniform(0.0, 1.0, size=(len(pressure), width))
    load = np.zeros_like(activity)
    for h in np.unique(host_of):
        members = host_of == h
        total = (pressure[members, None] * activity[members]).sum(axis=0)
        load[members] = total - pressure[members, None] * activity[members]
    ready = sensitivity[:, None] * load / (load + HALF)
    return activity, ready


def test_the_pressure_of_neighbours_is_read_from_a_sensitive_vms_slowdown():
    rng = np.random.default_rng(1)
    n_hosts, per_host = 6, 8
    host_of = np.repeat(np.arange(n_hosts), per_host)
    sensitivity = np.where(np.arange(len(host_of)) % per_host == 0, 0.45, 0.01)
    pressure = rng.lognormal(-0.125, 0.5, size=len(host_of))
    activity, ready = _window(pressure, host_of, sensitivity, width=36)
    learnt = _learn(activity, ready, sensitivity, host_of)
    neighbours = sensitivity < 0.1
    assert np.corrcoef(learnt[neighbours], pressure[neighbours])[0, 1] > 0.9


def test_a_vm_never_next_to_a_sensitive_one_keeps_the_typical_pressure():
    host_of = np.array([0, 0, 0, 1, 1])
    sensitivity = np.array([0.45, 0.01, 0.01, 0.01, 0.01])
    pressure = np.array([1.0, 2.0, 0.5, 3.0, 3.0])
    activity, ready = _window(pressure, host_of, sensitivity, width=12)
    learnt = _learn(activity, ready, sensitivity, host_of)
    assert learnt[3:].tolist() == [1.0, 1.0]
    assert learnt[1] > 1.2 > 1.0 > 0.8 > learnt[2]


def test_missing_ready_samples_and_an_empty_window_teach_nothing():
    host_of = np.array([0, 0])
    sensitivity = np.array([0.45, 0.01])
    nothing = np.full((2, 6), np.nan)
    assert _learn(np.ones((2, 6)), nothing, sensitivity, host_of).tolist() == [1.0, 1.0]
    assert _learn(np.zeros((2, 0)), np.zeros((2, 0)), sensitivity, host_of).tolist() == [1.0, 1.0]


def test_the_memory_tells_neighbours_apart_by_the_rounds_they_were_not_together():
    """Two sensitive VMs, four neighbours; placements change between rounds, one new step each.
    The slowdowns then predicted for a placement never seen match the true ones."""
    pressure = np.array([1.0, 1.0, 2.5, 0.3, 1.0, 1.0])
    sensitivity = np.array([0.45, 0.3, 0.01, 0.01, 0.01, 0.01])
    placements = [np.array([0, 1, 0, 0, 1, 1]), np.array([0, 1, 0, 1, 0, 1]), np.array([0, 1, 1, 0, 0, 1])]
    memory = InterferenceMemory(HALF)
    ids = [f"vm{i}" for i in range(6)]
    for step in range(90):
        host_of = placements[step % 3]
        activity, ready = _window(pressure, host_of, sensitivity, width=1, seed=step)
        memory.update(ids, activity, ready, host_of, np.zeros(6))
    learnt = memory.pressure(ids)
    assert learnt[2] > 1.6 and learnt[3] < 0.6
    assert abs(learnt[4] - 1.0) < 0.3 and abs(learnt[5] - 1.0) < 0.3
    learnt_sensitivity = memory.sensitivity(ids, np.zeros(6))
    assert learnt_sensitivity[0] > learnt_sensitivity[1] > 0.1 > learnt_sensitivity[2:].max()
    unseen = np.array([0, 1, 1, 0, 0, 1])
    _, slowdown = _window(pressure, unseen, sensitivity, width=200, seed=999)
    _, predicted = _window(learnt, unseen, learnt_sensitivity, width=200, seed=999)
    assert np.abs(predicted[:2] - slowdown[:2]).mean(axis=1) == pytest.approx(
        [0, 0], abs=0.1 * slowdown[:2].mean()
    )
    assert memory.pressure(["never-seen"]).tolist() == [1.0]


def test_weighing_samples_by_the_slope_of_the_load_curve_resists_noisy_slowdowns():
    """Near saturation a little noise in the ready share reads as a large load; weighing each
    sample by how much the ready share moves with the load keeps those from dominating."""
    n_hosts, per_host = 6, 8
    host_of = np.repeat(np.arange(n_hosts), per_host)
    sensitivity = np.where(np.arange(len(host_of)) % per_host == 0, 0.45, 0.01)
    neighbours = sensitivity < 0.1
    for seed in range(5):
        rng = np.random.default_rng(seed)
        pressure = rng.lognormal(-0.125, 0.5, size=len(host_of))
        activity, ready = _window(pressure, host_of, sensitivity, width=36, seed=seed)
        noisy = ready + rng.normal(0.0, 0.02, ready.shape)
        fit = {
            weighted: np.corrcoef(
                _learn(activity, noisy, sensitivity, host_of, weighted)[neighbours], pressure[neighbours]
            )[0, 1]
            for weighted in (True, False)
        }
        assert fit[True] > fit[False]
