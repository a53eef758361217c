"""The vsphere driver against the vCenter simulator, checked through an independent pyVmomi session."""

from __future__ import annotations

import ssl
import time

import pytest
from pyVim.connect import SmartConnect
from pyVmomi import vim
from vcsim_admin import cluster_hosts, objects, vsphere_overrides, wait_task

from cotenancy.conf import make_conf
from cotenancy.drivers.vsphere.driver import VSphereDriver
from cotenancy.exceptions import ActionFailed, AuthenticationFailed, NotFound, Unsupported
from cotenancy.model import Allocation, EventKind, Metric, Resources, VMState


def test_simulator_serves_verified_tls_and_survives_unset_properties(vcsim, admin):
    with pytest.raises(ssl.SSLError):
        SmartConnect(
            host=vcsim.host,
            port=vcsim.port,
            user=vcsim.username,
            pwd=vcsim.password,
            sslContext=ssl.create_default_context(),
        )
    vm = objects(admin, vim.VirtualMachine)[0]
    assert vm.snapshot is None  # crashed govmomi 0.24's Fetch before the workaround
    assert vm.name  # and the connection still works


def test_tls_is_verified_by_default(vcsim):
    conf = make_conf([], config_files=[])
    for name, value in vsphere_overrides(vcsim).items():
        if name != "ca_file":
            conf.set_override(name, value, group="vsphere")
    assert conf.vsphere.insecure is False
    drv = VSphereDriver(conf)
    with pytest.raises(AuthenticationFailed, match=r"failed verification.*\[vsphere\] ca_file"):
        drv.get_inventory()


def test_inventory_matches_what_vcenter_shows(driver, admin):
    inventory = driver.get_inventory()

    hosts = objects(admin, vim.HostSystem)
    assert set(inventory.hosts) == {h._moId for h in hosts}
    for host in hosts:
        record = inventory.hosts[host._moId]
        hardware = host.summary.hardware
        assert record.name == host.name
        assert record.capacity.cpu == hardware.cpuMhz * hardware.numCpuCores
        assert record.capacity.memory == pytest.approx(hardware.memorySize / 2**20)
        assert record.cluster == host.parent.name
        assert record.attributes["datacenter"] == "DC0"

    vms = [v for v in objects(admin, vim.VirtualMachine) if not v.config.template]
    assert set(inventory.vms) == {v._moId for v in vms}
    for vm in vms:
        record = inventory.vms[vm._moId]
        assert record.host_id == vm.runtime.host._moId
        assert record.vcpus == vm.config.hardware.numCPU
        assert record.size.memory == vm.config.hardware.memoryMB
        core_mhz = vm.runtime.host.summary.hardware.cpuMhz
        assert record.size.cpu == vm.config.hardware.numCPU * core_mhz
        expected_state = VMState.ACTIVE if vm.runtime.powerState == "poweredOn" else VMState.STOPPED
        assert record.state is expected_state


def test_inventory_reads_allocations_set_in_vcenter(driver, admin, new_vm):
    vm = new_vm(memory_mb=512, cpus=2)
    spec = vim.vm.ConfigSpec(
        cpuAllocation=vim.ResourceAllocationInfo(
            reservation=800, limit=4000, shares=vim.SharesInfo(level="high", shares=4000)
        ),
        memoryAllocation=vim.ResourceAllocationInfo(
            reservation=128, limit=-1, shares=vim.SharesInfo(level="normal", shares=5120)
        ),
    )
    wait_task(vm.ReconfigVM_Task(spec))

    record = driver.get_inventory().vms[vm._moId]

    assert record.allocation.reservation == Resources(cpu=800, memory=128)
    assert record.allocation.limit is not None
    assert record.allocation.limit.cpu == 4000
    assert record.allocation.limit.memory == float("inf")
    assert record.allocation.shares == 2000


def test_metrics_are_sorted_by_time_and_in_project_units(driver, admin):
    inventory = driver.get_inventory()
    end = time.time()
    start = end - 600

    samples = driver.get_metrics(start, end)

    timestamps = [s.timestamp for s in samples]
    assert timestamps == sorted(timestamps)
    assert all(start <= t < end for t in timestamps)
    running = {v.id for v in inventory.vms.values() if v.state is VMState.ACTIVE}
    assert {s.vm_id for s in samples} == running
    assert {s.metric for s in samples} >= {Metric.CPU, Metric.CPU_READY, Metric.MEMORY}
    assert all(s.is_valid() for s in samples)
    # the simulator answers newest first: the driver reorders
    perf = admin.perfManager
    counter = next(
        c.key
        for c in perf.perfCounter
        if (c.groupInfo.key, c.nameInfo.key, c.rollupType) == ("cpu", "usagemhz", "average")
    )
    vm = vim.VirtualMachine(next(iter(running)), admin.perfManager._stub)
    raw = perf.QueryPerf(
        [
            vim.PerformanceManager.QuerySpec(
                entity=vm,
                intervalId=20,
                maxSample=5,
                metricId=[vim.PerformanceManager.MetricId(counterId=counter, instance="")],
            )
        ]
    )[0]
    assert raw.sampleInfo[0].timestamp > raw.sampleInfo[-1].timestamp


def test_metrics_of_chosen_vms_only(driver):
    inventory = driver.get_inventory()
    chosen = sorted(v.id for v in inventory.vms.values() if v.state is VMState.ACTIVE)[:2]
    end = time.time()

    samples = driver.get_metrics(end - 120, end, vm_ids=chosen)

    assert {s.vm_id for s in samples} == set(chosen)
    per_vm_metric = {(s.vm_id, s.metric) for s in samples}
    assert len(samples) > len(per_vm_metric)  # several intervals per metric


def test_live_migration_within_a_cluster(driver, admin, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)

    driver.live_migrate(vm._moId, target._moId)

    assert vm.runtime.host._moId == target._moId
    assert vm in target.vm and vm not in source.vm


def test_live_migration_across_clusters_moves_to_the_target_pool(driver, admin, new_vm):
    source = cluster_hosts(admin, 0)[0]
    target = cluster_hosts(admin, 1)[0]
    vm = new_vm(host=source)

    driver.live_migrate(vm._moId, target._moId)

    assert vm.runtime.host._moId == target._moId
    assert vm.resourcePool._moId == target.parent.resourcePool._moId


def test_migration_events_reach_the_driver(driver, admin, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    start = time.time() - 1

    driver.live_migrate(vm._moId, target._moId)
    events = driver.get_events(start, time.time() + 1)

    migrations = [e for e in events if e.kind is EventKind.MIGRATION and e.vm_ids == (vm._moId,)]
    assert len(migrations) == 1
    assert migrations[0].host_id == target._moId
    assert migrations[0].details["source_host_id"] == source._moId
    assert any(e.kind is EventKind.POWER and e.vm_ids == (vm._moId,) for e in events)


def test_set_allocation_changes_shares_reservation_and_limit(driver, new_vm):
    vm = new_vm(memory_mb=1024, cpus=2)
    wanted = Allocation(
        reservation=Resources(cpu=1000, memory=512),
        limit=Resources(cpu=3000, memory=float("inf")),
        shares=3000,
    )

    driver.set_allocation(vm._moId, wanted)

    cpu, memory = vm.config.cpuAllocation, vm.config.memoryAllocation
    assert (cpu.reservation, cpu.limit) == (1000, 3000)
    assert (cpu.shares.level, cpu.shares.shares) == ("custom", 6000)
    assert (memory.reservation, memory.limit) == (512, -1)
    assert driver.get_inventory().vms[vm._moId].allocation == wanted


def test_invalid_allocation_is_refused_before_vcenter_is_touched(driver, new_vm):
    vm = new_vm(memory_mb=256)
    before = vm.config.memoryAllocation.reservation

    with pytest.raises(ActionFailed, match="exceeds the VM's 256 MiB"):
        driver.set_allocation(vm._moId, Allocation(reservation=Resources(memory=1024)))

    assert vm.config.memoryAllocation.reservation == before


def test_resize_of_a_running_vm_without_hot_add_is_refused(driver, new_vm):
    vm = new_vm(cpus=1, memory_mb=256)
    host_mhz = vm.runtime.host.summary.hardware.cpuMhz

    with pytest.raises(Unsupported, match="CPU hot-add is disabled.*allow_power_cycle"):
        driver.resize(vm._moId, Resources(cpu=2 * host_mhz, memory=256))

    assert vm.config.hardware.numCPU == 1
    assert vm.runtime.powerState == "poweredOn"


def test_resize_uses_hot_add_where_the_vm_allows_it(driver, new_vm):
    vm = new_vm(cpus=1, memory_mb=256)
    wait_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(cpuHotAddEnabled=True, memoryHotAddEnabled=True)))
    host_mhz = vm.runtime.host.summary.hardware.cpuMhz

    driver.resize(vm._moId, Resources(cpu=2 * host_mhz, memory=512))

    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 512)
    assert vm.runtime.powerState == "poweredOn"


def test_resize_with_power_cycle_allowed(vsphere_conf, new_vm):
    vsphere_conf.set_override("allow_power_cycle", True, group="vsphere")
    drv = VSphereDriver(vsphere_conf)
    vm = new_vm(cpus=2, memory_mb=512)
    host_mhz = vm.runtime.host.summary.hardware.cpuMhz
    start = time.time()

    drv.resize(vm._moId, Resources(cpu=host_mhz, memory=256))

    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (1, 256)
    assert vm.runtime.powerState == "poweredOn"
    power = [e for e in drv.get_events(start, time.time() + 1) if e.vm_ids == (vm._moId,)]
    assert [e.details["type"] for e in power if e.kind is EventKind.POWER] == [
        "VmPoweredOffEvent",
        "VmPoweredOnEvent",
    ]
    drv.close()


def test_maintenance_mode_round_trip(driver, admin):
    host = cluster_hosts(admin, 1)[2]

    driver.set_host_maintenance(host._moId, True)
    assert host.runtime.inMaintenanceMode is True
    assert driver.get_inventory().hosts[host._moId].maintenance is True

    driver.set_host_maintenance(host._moId, False)
    assert host.runtime.inMaintenanceMode is False


def test_migration_to_a_host_in_maintenance_is_refused(driver, admin, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    driver.set_host_maintenance(target._moId, True)
    try:
        with pytest.raises(ActionFailed, match="maintenance"):
            driver.live_migrate(vm._moId, target._moId)
    finally:
        driver.set_host_maintenance(target._moId, False)
    assert vm.runtime.host._moId == source._moId


def test_unknown_objects_are_not_found(driver, admin, new_vm):
    vm = new_vm()
    with pytest.raises(NotFound, match="vm-does-not-exist"):
        driver.live_migrate("vm-does-not-exist", cluster_hosts(admin, 0)[1]._moId)
    with pytest.raises(NotFound, match="host-nope"):
        driver.live_migrate(vm._moId, "host-nope")
    with pytest.raises(NotFound):
        driver.set_host_maintenance("host-nope", True)


def test_one_session_is_reused(driver, admin):
    before = len(admin.sessionManager.sessionList)
    for _ in range(3):
        driver.get_inventory()
    assert len(admin.sessionManager.sessionList) == before + 1
    driver.close()
    assert len(admin.sessionManager.sessionList) == before


def test_password_never_reaches_logs(vsphere_conf, caplog, vcsim):
    caplog.set_level("DEBUG")
    drv = VSphereDriver(vsphere_conf)
    drv.get_inventory()
    drv.close()
    assert vcsim.password not in caplog.text
    assert vcsim.password not in repr(drv)


def test_lost_connection_is_a_typed_error(vsphere_conf):
    vsphere_conf.set_override("port", 1, group="vsphere")
    drv = VSphereDriver(vsphere_conf)
    with pytest.raises(ActionFailed, match="unreachable"):
        drv.get_inventory()


def test_now_is_vcenters_clock(driver, admin):
    vcenter = vim.ServiceInstance("ServiceInstance", admin.rootFolder._stub)
    before = vcenter.CurrentTime().timestamp()
    now = driver.now()
    after = vcenter.CurrentTime().timestamp()
    assert before <= now <= after
