"""The vCenter simulator for the vsphere driver's and the scheduled-task executor's tests.

One simulator per session on a free loopback port with TLS (its certificate is the CA bundle the
driver verifies against); tests that change a VM create their own, so they do not depend on order.
A missing simulator binary fails the tests: they never skip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

HARNESS_DIR = Path(__file__).resolve().parents[2] / "harness" / "vcsim"
sys.path.insert(0, str(HARNESS_DIR))

import vcsim_harness  # noqa: E402
from vcsim_admin import admin_connection, cluster_hosts, create_vm, remove_vm, vsphere_overrides  # noqa: E402

from cotenancy.conf import make_conf  # noqa: E402
from cotenancy.drivers.vsphere.driver import VSphereDriver  # noqa: E402
from cotenancy.model import ActionKind, ActionPlan, Allocation  # noqa: E402
from cotenancy.store import HistoryStore  # noqa: E402

CLUSTERS = 2
HOSTS_PER_CLUSTER = 3
VMS_PER_POOL = 3


@pytest.fixture(scope="session")
def vcsim() -> Iterator[vcsim_harness.VCSim]:
    """The running simulator: 1 datacenter, 2 clusters of 3 hosts, 3 VMs per cluster."""
    with vcsim_harness.VCSim.start(
        clusters=CLUSTERS, hosts_per_cluster=HOSTS_PER_CLUSTER, vms_per_pool=VMS_PER_POOL
    ) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults, delays and clock skews armed by a test never leak into the next one."""
    yield
    if "vcsim" in request.fixturenames:
        sim = request.getfixturevalue("vcsim")
        sim.clear_faults()
        sim.set_clock_offset(0)
        for method in ("RelocateVM_Task", "ReconfigVM_Task", "RetrievePropertiesEx"):
            sim.set_delay(method, 0)


@pytest.fixture(scope="session")
def admin(vcsim: vcsim_harness.VCSim) -> Iterator[vim.ServiceInstanceContent]:
    """A pyVmomi connection of the tests' own, to arrange and to check what the driver did."""
    with admin_connection(vcsim) as content:
        yield content


@pytest.fixture
def vsphere_conf(vcsim: vcsim_harness.VCSim):
    conf = make_conf([], config_files=[])
    for name, value in vsphere_overrides(vcsim).items():
        conf.set_override(name, value, group="vsphere")
    return conf


@pytest.fixture
def driver(vsphere_conf) -> Iterator[VSphereDriver]:
    drv = VSphereDriver(vsphere_conf)
    try:
        yield drv
    finally:
        drv.close()


@pytest.fixture
def new_vm(admin: vim.ServiceInstanceContent) -> Iterator[Callable[..., vim.VirtualMachine]]:
    """Creates powered-on VMs on a given host (first host of cluster 0 by default); removes them
    afterwards unless the test deleted them."""
    created: list[vim.VirtualMachine] = []

    def make(host: vim.HostSystem | None = None, memory_mb: int = 256, cpus: int = 1) -> Any:
        vm = create_vm(admin, host or cluster_hosts(admin, 0)[0], "test", cpus=cpus, memory_mb=memory_mb)
        created.append(vm)
        return vm

    yield make
    for vm in created:
        remove_vm(vm)


@pytest.fixture
def store(sqlite_store: HistoryStore) -> HistoryStore:
    return sqlite_store


@pytest.fixture
def moved_and_refused(vcsim: vcsim_harness.VCSim, admin: vim.ServiceInstanceContent, new_vm) -> ActionPlan:
    """A plan of two relocations, the first of which vCenter carries out and the second refuses
    (MigrationFault), and an allocation change of the moved VM that depends on the first."""
    source, target = cluster_hosts(admin, 0)[:2]
    moved, refused = new_vm(host=source), new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=refused._moId)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=moved._moId, target_host_id=target._moId)
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=refused._moId, target_host_id=target._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=moved._moId, allocation=Allocation(shares=500), depends_on=(0,))
    return plan
