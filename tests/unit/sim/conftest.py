"""Small workloads and clouds for the simulator's unit tests."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.model import Resource
from cotenancy.sim.workload import Workload


def planetlab_like(cpu_percent: np.ndarray, start: float = 0.0) -> Workload:
    """A PlanetLab-shaped workload (CPU fractions only) from a VMs x steps array of percentages."""
    cpu = np.asarray(cpu_percent, dtype=float) / 100.0
    return Workload(
        vm_names=[f"vm-{i:03d}" for i in range(cpu.shape[0])],
        step_seconds=300.0,
        start=start,
        utilisation={Resource.CPU: cpu},
        sizes=None,
        source="test",
    )


@pytest.fixture(scope="session")
def make_planetlab():
    return planetlab_like
