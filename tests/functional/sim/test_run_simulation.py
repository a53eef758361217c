"""``run_simulation`` is the API predictors train from: it records telemetry and events."""

from __future__ import annotations

import pytest

from cotenancy.model import EventKind
from cotenancy.sim.runner import METRIC_KEYS, run_simulation
from cotenancy.sim.synthetic import generate_synthetic
from cotenancy.store import HistoryStore
from cotenancy.strategies.lr_mmt import LrMmtStrategy


def test_history_store_receives_what_a_real_cloud_would_show(tmp_path, conf):
    workload = generate_synthetic(30, 0.1, step_seconds=300.0, seed=3)
    store = HistoryStore(f"sqlite:///{tmp_path / 'h.sqlite'}")
    try:
        result = run_simulation(
            workload, setup="default", strategy=LrMmtStrategy(conf), conf=conf, store=store, seed=3
        )
        assert set(METRIC_KEYS) <= set(result.metrics)
        assert len(result.series["time"]) == result.steps
        used = result.series["energy_kwh"]
        assert all(b >= a for a, b in zip(used, used[1:], strict=False))
        assert used[-1] == pytest.approx(result.metrics["energy_kwh"])
        samples = store.samples(workload.start - 3600, workload.start + 86400)
        assert {s.metric for s in samples} >= {"cpu", "cpu_demand", "cpu_ready", "memory"}
        assert {s.vm_id for s in samples} == set(workload.vm_names)
        events = store.events(workload.start - 3600, workload.start + 86400)
        degradation = [e for e in events if e.kind is EventKind.DEGRADATION]
        assert len(degradation) > 0
        assert all(e.details["neighbours"] for e in degradation)
        assert "pressure" not in str(samples[:50]) and "sensitivity" not in str(events[:50])
    finally:
        store.close()


def test_same_seed_gives_the_same_run(conf):
    workload = generate_synthetic(20, 0.05, step_seconds=300.0, seed=1)
    first = run_simulation(workload, setup="default", strategy="lr-mmt", conf=conf, seed=7).metrics
    second = run_simulation(workload, setup="default", strategy="lr-mmt", conf=conf, seed=7).metrics
    first.pop("wall_seconds"), second.pop("wall_seconds")
    assert first == second


def test_every_round_reports_how_long_the_strategy_and_its_planner_took(conf):
    workload = generate_synthetic(20, 0.05, step_seconds=300.0, seed=2)
    result = run_simulation(workload, setup="default", strategy="predictive", conf=conf, seed=2)
    strategy_times = result.extra["plan_seconds"]
    planner_times = result.extra["planner_seconds"]
    assert len(strategy_times) == len(planner_times) == result.steps
    # each round is dated in trace time, one interval apart, so a slow one can be found in the trace
    clock = result.extra["round_trace_seconds"]
    assert len(clock) == result.steps
    assert all(b - a == 300.0 for a, b in zip(clock, clock[1:], strict=False))
    assert all(t > 0 for t in strategy_times)
    # the planner runs inside the strategy, after the forecasts and risks
    assert all(0 < p <= s for p, s in zip(planner_times, strategy_times, strict=True))


def test_every_round_splits_the_planner_time_into_building_and_searching(conf):
    workload = generate_synthetic(20, 0.05, step_seconds=300.0, seed=2)
    result = run_simulation(workload, setup="default", strategy="predictive", conf=conf, seed=2)
    planner = result.extra["planner_seconds"]
    build = result.extra["planner_build_seconds"]
    solve = result.extra["planner_solve_seconds"]
    assert len(build) == len(solve) == len(planner) == result.steps
    # building the candidate model and CP-SAT's search are parts of the planner's round
    assert all(b > 0 for b in build)
    assert all(b + s <= p for b, s, p in zip(build, solve, planner, strict=True))
