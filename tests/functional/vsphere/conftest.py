"""The vCenter simulator for the vsphere driver's and the scheduled-task executor's tests.

One simulator per session on a free loopback port with TLS (its certificate is the CA bundle the
driver verifies against); tests that change a VM create their own, so they do not depend on order.
A missing simulator binary fails the tests: they never skip.
"""

from __future__ import annotations

import ssl
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

HARNESS_DIR = Path(__file__).resolve().parents[2] / "harness" / "vcsim"
sys.path.insert(0, str(HARNESS_DIR))

import vcsim_harness  # noqa: E402
from vsphere_helpers import cluster_hosts, objects, vsphere_overrides, wait_task  # noqa: E402

from cotenancy.conf import make_conf  # noqa: E402
from cotenancy.drivers.vsphere.driver import VSphereDriver  # noqa: E402
from cotenancy.store import HistoryStore  # noqa: E402

CLUSTERS = 2
HOSTS_PER_CLUSTER = 3
VMS_PER_POOL = 3


@pytest.fixture(scope="session")
def vcsim() -> Iterator[vcsim_harness.VCSim]:
    """The running simulator: 1 datacenter, 2 clusters of 3 hosts, 3 VMs per cluster."""
    sim = vcsim_harness.VCSim.start(
        clusters=CLUSTERS, hosts_per_cluster=HOSTS_PER_CLUSTER, vms_per_pool=VMS_PER_POOL
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults and delays armed by a test never leak into the next one."""
    yield
    if "vcsim" in request.fixturenames:
        sim = request.getfixturevalue("vcsim")
        sim.clear_faults()
        for method in ("RelocateVM_Task", "ReconfigVM_Task", "RetrievePropertiesEx"):
            sim.set_delay(method, 0)


@pytest.fixture(scope="session")
def admin(vcsim: vcsim_harness.VCSim) -> Iterator[vim.ServiceInstanceContent]:
    """A pyVmomi connection of the tests' own, to arrange and to check what the driver did."""
    context = ssl.create_default_context(cafile=str(vcsim.ca_file))
    si = SmartConnect(
        host=vcsim.host,
        port=vcsim.port,
        user=vcsim.username,
        pwd=vcsim.password,
        sslContext=context,
    )
    try:
        yield si.RetrieveContent()
    finally:
        Disconnect(si)


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
        host = host or cluster_hosts(admin, 0)[0]
        datacenter = objects(admin, vim.Datacenter)[0]
        datastore = host.datastore[0]
        spec = vim.vm.ConfigSpec(
            name=f"test-{uuid.uuid4().hex[:8]}",
            numCPUs=cpus,
            memoryMB=memory_mb,
            guestId="otherGuest",
            files=vim.vm.FileInfo(vmPathName=f"[{datastore.name}]"),
        )
        pool = host.parent.resourcePool
        vm = wait_task(datacenter.vmFolder.CreateVM_Task(config=spec, pool=pool, host=host))
        wait_task(vm.PowerOnVM_Task())
        created.append(vm)
        return vm

    yield make
    for vm in created:
        try:
            if vm.runtime.powerState == "poweredOn":
                wait_task(vm.PowerOffVM_Task())
            wait_task(vm.Destroy_Task())
        except vim.fault.NotFound:
            pass
        except Exception as exc:  # a VM the test deleted itself is gone already
            if "ManagedObjectNotFound" not in type(exc).__name__:
                raise


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    try:
        yield history
    finally:
        history.close()
