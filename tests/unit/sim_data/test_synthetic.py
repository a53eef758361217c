"""The embedded default workload: reproducible, well-formed, and with the structure that makes
co-tenancy matter (daily and weekly cycles, groups that peak together, scheduled batch jobs)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cotenancy.model import Resource
from cotenancy.sim.synthetic import DEFAULT_START, FLAVORS, generate_synthetic
from cotenancy.sim.workload import Workload

STEPS_PER_DAY = 288


@pytest.fixture(scope="module")
def week() -> Workload:
    return generate_synthetic(400, days=7, seed=5)


def test_same_seed_same_workload_other_seed_other_workload() -> None:
    a = generate_synthetic(60, days=2, seed=1)
    b = generate_synthetic(60, days=2, seed=1)
    c = generate_synthetic(60, days=2, seed=2)
    assert a.attributes == b.attributes
    assert a.sizes == b.sizes
    for resource in a.utilisation:
        np.testing.assert_array_equal(a.utilisation[resource], b.utilisation[resource])
    assert not np.array_equal(a.utilisation[Resource.CPU], c.utilisation[Resource.CPU])


def test_shape_grid_and_ranges(week: Workload) -> None:
    assert week.n_vms == 400
    assert week.n_steps == 7 * STEPS_PER_DAY
    assert week.step_seconds == 300.0
    assert week.start == DEFAULT_START
    assert time.gmtime(DEFAULT_START).tm_wday == 0 and time.gmtime(DEFAULT_START).tm_hour == 0
    assert len(set(week.vm_names)) == 400
    assert {Resource.CPU, Resource.MEMORY, Resource.DISK_IO, Resource.NETWORK} <= set(week.utilisation)
    for resource, values in week.utilisation.items():
        assert values.shape == (400, week.n_steps), resource
        assert np.isfinite(values).all(), resource
        assert (values >= 0).all() and (values <= 1).all(), resource


def test_attributes_and_sizes_are_aligned_with_vms(week: Workload) -> None:
    assert set(week.attributes) >= {"tenant", "app_type", "priority", "security_level", "flavor", "group"}
    for name, values in week.attributes.items():
        assert len(values) == week.n_vms, name
    assert week.sizes is not None
    assert [FLAVORS[f].size for f in week.attributes["flavor"]] == week.sizes
    assert all(0 <= int(p) <= 10 for p in week.attributes["priority"])
    assert set(week.attributes["security_level"]) <= {"public", "internal", "confidential"}
    assert set(week.attributes["app_type"]) == {"web", "database", "cache", "analytics", "batch", "ml"}
    demand = week.demand(Resource.CPU)
    assert demand.shape == (400, week.n_steps)


def test_only_gpu_flavors_use_gpus(week: Workload) -> None:
    gpu = week.utilisation[Resource.GPU]
    has_gpu = np.array([FLAVORS[f].size.gpu > 0 for f in week.attributes["flavor"]])
    assert has_gpu.any()
    assert (gpu[~has_gpu] == 0).all()
    assert gpu[has_gpu].max() > 0.5


def _group_means(week: Workload, app_type: str) -> dict[str, np.ndarray]:
    cpu = week.utilisation[Resource.CPU]
    groups: dict[str, list[int]] = {}
    for i, (group, kind) in enumerate(
        zip(week.attributes["group"], week.attributes["app_type"], strict=True)
    ):
        if kind == app_type:
            groups.setdefault(group, []).append(i)
    return {g: cpu[rows].mean(axis=0) for g, rows in groups.items()}


def _autocorrelation(series: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(series[:-lag], series[lag:])[0, 1])


def test_interactive_load_has_a_daily_cycle(week: Workload) -> None:
    for series in _group_means(week, "web").values():
        assert _autocorrelation(series, STEPS_PER_DAY) > 0.5
        assert _autocorrelation(series, STEPS_PER_DAY // 2) < 0.0


def test_interactive_load_is_lower_at_weekends(week: Workload) -> None:
    weekday = np.arange(week.n_steps) // STEPS_PER_DAY
    for series in _group_means(week, "web").values():
        assert series[weekday >= 5].mean() < series[weekday < 5].mean()


def test_vms_of_a_group_peak_together(week: Workload) -> None:
    cpu = week.utilisation[Resource.CPU]
    groups = np.array(week.attributes["group"])
    corr = np.corrcoef(cpu)
    same = groups[:, None] == groups[None, :]
    off_diagonal = ~np.eye(len(groups), dtype=bool)
    within = np.nanmean(corr[same & off_diagonal])
    across = np.nanmean(corr[~same])
    assert within > across + 0.2


def test_batch_jobs_run_at_scheduled_hours(week: Workload) -> None:
    for series in _group_means(week, "batch").values():
        days = series.reshape(7, STEPS_PER_DAY)
        busiest_step = days.argmax(axis=1)
        # the job starts at the same time every day, give or take a burst
        assert np.ptp(busiest_step[:5]) <= 36
        assert days.max(axis=1).min() > 3 * np.median(days)


def test_bursts_exist(week: Workload) -> None:
    cpu = week.utilisation[Resource.CPU]
    jumps = np.diff(cpu, axis=1)
    assert (jumps > 0.15).sum() > 100


def test_other_grids_and_bad_arguments() -> None:
    hourly = generate_synthetic(5, days=1.5, step_seconds=3600.0, start=0.0)
    assert hourly.n_steps == 36
    assert hourly.start == 0.0
    with pytest.raises(ValueError):
        generate_synthetic(0, days=1)
    with pytest.raises(ValueError):
        generate_synthetic(3, days=0)
