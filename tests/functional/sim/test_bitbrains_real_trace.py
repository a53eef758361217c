"""The Bitbrains loader on the published 2013-7 month, where a few VMs are sampled every ~110 s:
each 300 s step holds the mean of all the VM's samples in it, not just the last one."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np
import pytest

from cotenancy.model import Resource
from cotenancy.sim.traces import load_bitbrains, read_bitbrains_file


@pytest.mark.parametrize(("resource", "used", "capacity"), [(Resource.CPU, 2, 1), (Resource.MEMORY, 5, 4)])
def test_a_vm_sampled_more_often_than_the_grid_gets_the_mean_of_each_step(
    shared_dir, resource: Resource, used: int, capacity: int
) -> None:
    month = shared_dir / "traces" / "bitbrains-rnd" / "2013-7"
    workload = load_bitbrains(month, names=["340"])
    stamps, data = read_bitbrains_file(month / "340.csv.gz")
    by_step: dict[int, list[float]] = defaultdict(list)
    for stamp, row in zip(stamps, data, strict=True):
        if row[capacity] > 0 and math.isfinite(row[used]):
            by_step[int((stamp - workload.start) // 300)].append(row[used] / row[capacity])
    assert sum(map(len, by_step.values())) > 2 * len(by_step)  # the case under test: ~2.4 per step
    got = workload.utilisation[resource][0]
    assert np.flatnonzero(np.isfinite(got)).tolist() == sorted(by_step)
    for step, values in by_step.items():
        assert got[step] == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-15)
