"""The cloudsim reference setup reproduces CloudSim 4.0's PlanetLab experiment configuration."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.cloudsim import VM_TYPES, cloudsim_setup, make_hosts, vm_types
from cotenancy.sim.power import POWER_TABLES, power_at, power_table


def test_vm_type_is_i_over_ceil_n_over_4():
    assert vm_types(10).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert vm_types(1052)[262].item() == 0 and vm_types(1052)[263].item() == 1
    assert np.bincount(vm_types(1052)).tolist() == [263, 263, 263, 263]


def test_hosts_alternate_g4_and_g5():
    hosts = make_hosts(4)
    assert hosts.power_models == ["hp-proliant-ml110-g4", "hp-proliant-ml110-g5"] * 2
    assert hosts.cpu.tolist() == [3720.0, 5320.0, 3720.0, 5320.0]
    assert hosts.pe_mips.tolist() == [1860.0, 2660.0, 1860.0, 2660.0]
    assert hosts.memory.tolist() == [4096.0] * 4


def test_power_tables_interpolate_linearly():
    g4 = power_table("hp-proliant-ml110-g4")
    assert power_at(g4, np.array([0.0, 0.1, 1.0])).tolist() == [86.0, 89.4, 117.0]
    assert power_at(g4, np.array([0.05]))[0] == pytest.approx((86.0 + 89.4) / 2)
    assert POWER_TABLES["hp-proliant-ml110-g5"][5] == 116


def test_initial_placement_respects_full_mips_ram_and_core_speed(make_planetlab):
    workload = make_planetlab(np.full((40, 5), 50))
    setup = cloudsim_setup(workload, n_hosts=40)
    hosts = setup.hosts
    assert (setup.placement >= 0).all()
    for host in range(hosts.n_hosts):
        on = setup.placement == host
        assert setup.vm_cpu[on].sum() <= hosts.cpu[host]
        assert setup.vm_memory[on].sum() <= hosts.memory[host]
        assert (setup.vm_cpu[on] <= hosts.pe_mips[host]).all()
    # 2500-MIPS VMs only fit a G5 core
    assert (hosts.pe_mips[setup.placement[setup.vm_cpu == VM_TYPES[0][0]]] == 2660.0).all()


def test_vm_with_zero_request_is_retired_not_lost(make_planetlab):
    cpu = np.full((4, 6), 20)
    cpu[1, 2:4] = 0  # two zero samples in a row: the request at 600.1 s is exactly 0
    cpu[2, 3] = 0  # one zero sample: the request 0.1 s later is already above 0
    cloud = SimulatedCloud(make_planetlab(cpu), cloudsim_setup(make_planetlab(cpu), n_hosts=8))
    while not cloud.finished:
        cloud.advance_step()
    assert cloud.vm_retired.tolist() == [False, True, False, False]
    assert cloud.vm_host[1] == -1
    assert cloud.metrics()["retired_vms"] == 1
    assert cloud.running.sum() + cloud.vm_retired.sum() == 4


def test_migration_lasts_ram_over_62_5_and_degrades_by_ten_percent(make_planetlab):
    cpu = np.full((2, 4), 40)
    workload = make_planetlab(cpu)
    setup = cloudsim_setup(workload, n_hosts=4)
    cloud = SimulatedCloud(workload, setup)
    vm = cloud.vm_ids[1]
    source = int(cloud.vm_host[1])
    target = next(h for h in range(4) if h != source and h != cloud.vm_host[0])
    end = cloud.start_migration(vm, cloud.hosts.ids[target])
    assert end - cloud.time == pytest.approx(setup.vm_memory[1] / 62.5)
    state = cloud.cpu_state(cloud.time)
    assert state.allocated[1] == pytest.approx(0.9 * state.request[1])
    assert state.incoming[1] == pytest.approx(0.1 * min(state.request[1], cloud.hosts.pe_mips[target]))
    assert state.host_requested[target] == pytest.approx(state.request[1])
    cloud.advance_step()
    assert cloud.vm_host[1] == target and cloud.vm_target[1] == -1
    assert cloud.metrics()["pdm"] > 0


def test_energy_is_trapezoid_and_zero_for_idle_start(make_planetlab):
    cpu = np.array([[50, 50, 50, 50]])
    workload = make_planetlab(cpu)
    cloud = SimulatedCloud(workload, cloudsim_setup(workload, n_hosts=2))
    host = int(cloud.vm_host[0])
    while not cloud.finished:
        cloud.advance_step()
    util = 0.5 * cloud.vm_cpu[0] / cloud.hosts.cpu[host]
    watts = power_at(cloud.hosts.power[host], np.array([util]))[0]
    # updates at 300.1, 600.1, 900.1: the first segment starts from utilisation 0 (no energy)
    assert cloud.acc.energy_joules == pytest.approx(watts * 600.0)
