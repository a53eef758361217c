"""A round of the control loop on the simulated cloud while a live migration is in flight: the VM
shows where it is going, and no plan fills the host it is about to land on."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.drivers.simulated.driver import SimulatedDriver
from cotenancy.engine.loop import ControlLoop
from cotenancy.model import StepStatus, VMState
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.setups import default_setup
from cotenancy.strategies.predictive import PredictiveStrategy

GIB = 1024.0


@pytest.fixture
def tight(conf, make_planetlab):
    """Four hosts of 4 GiB: host 0 full (a 3 GiB and a 1 GiB VM), host 1 with two 2 GiB VMs,
    host 2 empty, host 3 with two 1 GiB VMs. Migrations take minutes (a slow link)."""
    workload = make_planetlab(np.full((6, 12), 10), start=1_000_000.0)
    setup = default_setup(workload, headroom=4.0)
    assert setup.hosts.n_hosts == 4
    setup.hosts.memory[:] = 4 * GIB
    setup.vm_memory[:] = [3 * GIB, GIB, 2 * GIB, 2 * GIB, GIB, GIB]
    setup.placement[:] = [0, 0, 1, 1, 3, 3]
    setup.migration_mbit = 20.0
    return SimulatedDriver(conf, cloud=SimulatedCloud(workload, setup))


def test_a_migrating_vm_shows_its_target_until_it_lands(tight):
    tight.live_migrate("vm-000", "host-0002")
    vm = tight.get_inventory().vms["vm-000"]
    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "host-0000", "host-0002")
    for _ in range(8):
        tight.wait(300.0)
    vm = tight.get_inventory().vms["vm-000"]
    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.ACTIVE, "host-0002", None)


def test_a_round_during_a_migration_plans_nothing_into_the_memory_it_is_about_to_fill(conf, tight):
    conf.set_override("underloaded_hosts", 0, group="planner")
    conf.set_override("manage_allocations", False, group="planner")
    tight.live_migrate("vm-000", "host-0002")  # 3 GiB arriving on host 2 for minutes
    tight.set_host_maintenance("host-0001", True)  # its two 2 GiB VMs must leave
    loop = ControlLoop(conf, driver=tight, strategy=PredictiveStrategy(conf, risk_model=None))
    result = loop.run_once()
    assert tight.get_inventory().vms["vm-000"].state is VMState.MIGRATING  # still in flight
    moves = [(a.vm_id, a.target_host_id, a.status) for a in result.plan.migrations]
    # host 3 takes one 2 GiB VM; host 2 has 1 GiB left once vm-000 lands, so the other one waits
    assert len(moves) == 1 and moves[0][1:] == ("host-0003", StepStatus.SUCCEEDED)
    assert not any(s.status is StepStatus.FAILED for s in result.plan.actions)
