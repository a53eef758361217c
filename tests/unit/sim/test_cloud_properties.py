"""Property tests: whatever a strategy asks, no VM is lost or duplicated and capacity adds up."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotenancy.drivers.simulated.driver import SimulatedDriver
from cotenancy.exceptions import DriverError
from cotenancy.model import Resources, VMState
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.cloudsim import cloudsim_setup
from cotenancy.sim.setups import default_setup

operations = st.lists(
    st.tuples(
        st.sampled_from(["migrate", "migrate", "migrate", "wait", "resize", "maintenance"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=40,
)


def check_invariants(cloud: SimulatedCloud, driver: SimulatedDriver) -> None:
    n = cloud.n_vms
    running = cloud.running
    # every VM is exactly one of: running on one host, or retired (cloudsim zero-request quirk)
    assert (running ^ cloud.vm_retired).all()
    assert int(running.sum() + cloud.vm_retired.sum()) == n
    assert ((cloud.vm_host >= 0) == running).all()
    inventory = driver.get_inventory()
    assert sorted(inventory.vms) == sorted(cloud.vm_ids)
    placed = [vm.id for vms in inventory.vms_by_host().values() for vm in vms]
    assert len(placed) == len(set(placed)) == int(running.sum())
    retired = [vm.id for vm in inventory.vms.values() if vm.host_id is None]
    assert all(inventory.vms[v].state is VMState.STOPPED for v in retired)
    assert len(retired) == int(cloud.vm_retired.sum())
    # a VM in flight is placed on its source and reserved on one target, never twice
    flying = cloud.vm_target >= 0
    assert (cloud.vm_target[flying] != cloud.vm_host[flying]).all()
    assert running[flying].all()
    # capacity accounting is exact: host usage is the sum of what its VMs were given
    state = cloud.cpu_state(cloud.time)
    out = cloud.vm_target >= 0
    contribution = np.where(out, state.allocated / 0.9, state.allocated)
    expected = np.bincount(cloud.vm_host[running], contribution[running], cloud.n_hosts)
    assert set(state.in_vm.tolist()) == set(np.flatnonzero(flying).tolist()) | {g[0] for g in cloud._ghosts}
    assert (state.in_host != cloud.vm_host[state.in_vm]).all()
    expected += np.bincount(state.in_host, state.in_alloc, cloud.n_hosts)
    assert np.allclose(state.host_used, expected, rtol=0, atol=1e-6)
    assert (state.host_used <= cloud.hosts.cpu + 1e-6).all()
    assert (state.allocated <= state.request + 1e-9).all()
    assert (state.allocated[~running] == 0).all()
    if not cloud.quirks:
        assert (cloud.memory_committed() <= cloud.hosts.memory + 1e-6).all()


def run_operations(cloud: SimulatedCloud, ops: list[tuple[str, int, int]]) -> None:
    driver = SimulatedDriver.__new__(SimulatedDriver)
    SimulatedDriver.__init__(driver, _conf(), cloud=cloud)
    started = 0
    for kind, a, b in ops:
        vm = cloud.vm_ids[a % cloud.n_vms]
        host = cloud.hosts.ids[b % cloud.n_hosts]
        try:
            if kind == "migrate":
                before = cloud.acc.migrations_started
                driver.live_migrate(vm, host)
                started += cloud.acc.migrations_started - before
            elif kind == "resize":
                driver.resize(vm, Resources(cpu=250.0 + b % 2000, memory=512.0 + (a % 4) * 512))
            elif kind == "maintenance":
                driver.set_host_maintenance(host, bool(a % 2))
            else:
                driver.wait(300.0)
        except DriverError:
            pass
        check_invariants(cloud, driver)
    assert cloud.acc.migrations_started == started
    while not cloud.finished:
        cloud.advance_step()
        check_invariants(cloud, driver)
    assert cloud.acc.migrations_completed <= cloud.acc.migrations_started


_CONF = None


def _conf():
    global _CONF
    if _CONF is None:
        from cotenancy.conf import make_conf

        _CONF = make_conf([], config_files=[])
    return _CONF


cpu_matrix = st.integers(3, 12).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, 100), min_size=6, max_size=6), min_size=n, max_size=n)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpu=cpu_matrix, ops=operations)
def test_cloudsim_setup_never_loses_or_duplicates_vms(make_planetlab, cpu, ops):
    workload = make_planetlab(np.array(cpu))
    cloud = SimulatedCloud(workload, cloudsim_setup(workload, n_hosts=6))
    run_operations(cloud, ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpu=cpu_matrix, ops=operations)
def test_default_setup_never_loses_vms_and_never_overcommits_memory(make_planetlab, cpu, ops):
    workload = make_planetlab(np.array(cpu))
    cloud = SimulatedCloud(workload, default_setup(workload, headroom=1.0))
    run_operations(cloud, ops)
