"""How the default setup shares CPU, reports a migrating VM, powers hosts and counts migrations."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.exceptions import ActionFailed
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.power import power_table
from cotenancy.sim.setups import default_setup


def small_host_cloud(make_planetlab, cpu_percent: list[list[int]], placement: list[int]) -> SimulatedCloud:
    """VMs of 2000 MHz (one vCPU) on hosts cut down to 2 x 1500 MHz, without interference, so a
    few VMs are enough to oversubscribe a host."""
    workload = make_planetlab(np.array(cpu_percent))
    setup = default_setup(workload, headroom=4.0)
    setup.hosts.cpu[:] = 3000.0
    setup.hosts.cores[:] = 2.0
    setup.vm_cpu[:] = 2000.0
    setup.vm_cores[:] = 1.0
    setup.placement[:] = placement
    return SimulatedCloud(workload, setup)


@pytest.mark.parametrize("shares", [1000, 2000], ids=["equal shares", "double shares"])
def test_cpu_a_vm_leaves_below_its_weighted_share_goes_to_the_vms_still_asking(make_planetlab, shares):
    """Shares weight the split like a proportional-share scheduler: a VM asking less than its
    weighted share keeps what it asks and the rest goes to the others by weight, so an
    oversubscribed host leaves no CPU idle."""
    cloud = small_host_cloud(make_planetlab, [[15] * 4, [75] * 4, [75] * 4], [0, 0, 0])
    cloud.set_allocation("vm-000", None, shares)
    state = cloud.cpu_state(cloud.time)
    assert state.request[:3].tolist() == [300.0, 1500.0, 1500.0]
    assert state.allocated[:3] == pytest.approx([300.0, 1350.0, 1350.0])
    assert state.host_used[0] == pytest.approx(3000.0)


def test_an_oversubscribed_host_shares_what_is_left_after_the_reserve_of_a_migration_coming_in(
    make_planetlab,
):
    """The target of a live migration reserves 10 % of the incoming VM's request; its own VMs
    share the rest by weight, and the host never hands out more than it has."""
    cloud = small_host_cloud(make_planetlab, [[75] * 4, [75] * 4, [50] * 4], [0, 0, 1])
    cloud.set_allocation("vm-000", None, 3000)
    cloud.start_migration("vm-002", cloud.hosts.ids[0])
    state = cloud.cpu_state(cloud.time)
    assert state.incoming[2] == pytest.approx(100.0)
    assert state.allocated[:2] == pytest.approx([1500.0, 1400.0])
    assert state.host_used[0] == pytest.approx(3000.0)


@pytest.mark.parametrize(
    ("cpu_percent", "placement"),
    [([[40] * 4], [0]), ([[75] * 4] * 3, [0, 0, 0])],
    ids=["quiet source", "oversubscribed source"],
)
def test_a_migrating_vms_ready_time_is_what_it_got_against_what_it_asked(
    make_planetlab, cpu_percent, placement
):
    """What a VM's own live migration costs it is PDM's: ``cpu`` leaves it out as ``cpu_ready``
    and the conflict test do, so ``cpu_ready = 1 - cpu / cpu_demand`` holds for a VM in flight,
    on a quiet host (nothing is missing) and on an oversubscribed one (only contention is)."""
    cloud = small_host_cloud(make_planetlab, cpu_percent, placement)
    cloud.setup.migration_mbit = 1.0  # still in flight at the next step boundary
    cloud.start_migration("vm-000", cloud.hosts.ids[1])
    cloud.advance_step()
    assert cloud.vm_target[0] == 1
    metrics = cloud.frames[-1].metrics
    got, asked, ready = metrics["cpu"][0], metrics["cpu_demand"][0], metrics["cpu_ready"][0]
    assert ready == pytest.approx(1.0 - got / asked)
    contended = len(placement) > 1
    assert bool(ready > 0.0) is contended
    assert bool(cloud.metrics()["conflict_minutes"] > 0) is contended


def test_a_host_whose_vms_all_ask_no_cpu_still_draws_its_idle_power(make_planetlab):
    """A powered-on host with VMs cannot be switched off: it draws at least its idle power (the
    0 % entry of its SPECpower table), and the power series says so too."""
    cloud = small_host_cloud(make_planetlab, [[0] * 4, [0] * 4], [0, 0])
    cloud.advance_step()
    idle = power_table(cloud.hosts.power_models[0])[0]
    assert cloud.acc.energy_joules == pytest.approx(idle * cloud.step_seconds)
    assert cloud.series["power_watts"] == pytest.approx([idle, idle])
    assert cloud.series["active_hosts"] == [1.0, 1.0]


def test_migrations_are_counted_in_the_step_that_started_them(make_planetlab):
    """Each entry of the per-step series describes the step starting at its ``time``: the
    migrations a plan started at that step are in it, the last step's included, so the series
    adds up to the migrations of the run."""
    cloud = small_host_cloud(make_planetlab, [[10] * 4] * 4, [0, 0, 0, 0])
    cloud.start_migration("vm-000", cloud.hosts.ids[1])
    cloud.advance_step()
    cloud.start_migration("vm-001", cloud.hosts.ids[1])
    cloud.start_migration("vm-002", cloud.hosts.ids[2])
    cloud.advance_step()
    cloud.advance_step()
    assert cloud.finished
    cloud.start_migration("vm-003", cloud.hosts.ids[3])
    assert cloud.series["time"] == [0.0, 300.0, 600.0, 900.0]
    assert cloud.series["migrations"] == [1.0, 2.0, 0.0, 1.0]
    assert sum(cloud.series["migrations"]) == cloud.metrics()["migrations"]


@pytest.mark.parametrize("shares", [0, -5, float("nan")])
def test_shares_that_could_not_weigh_a_vm_are_refused(make_planetlab, shares):
    """The split divides by shares: none, negative or NaN would hand out infinite or no CPU."""
    cloud = small_host_cloud(make_planetlab, [[15] * 4, [75] * 4], [0, 0])
    with pytest.raises(ActionFailed, match="CPU shares must be positive"):
        cloud.set_allocation("vm-000", None, shares)
    assert cloud.vm_shares[0] == 1000.0
