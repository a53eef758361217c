"""The ansible executor against the vCenter simulator: community.vmware playbooks carry out a
plan's vMotion, resize and allocation change, and pyVmomi sees the result; failed tasks and an
unreachable vCenter become failed steps with Ansible's message, and the failure policy holds."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyVmomi import vim
from vcsim_admin import cluster_hosts, create_vm, remove_vm, vsphere_overrides

from cotenancy.conf import make_conf
from cotenancy.drivers.vsphere.driver import VSphereDriver
from cotenancy.model import ActionKind, ActionPlan, Allocation, Resources, StepStatus
from cotenancy.plugins.ansible.executor import AnsibleExecutor
from cotenancy.store import HistoryStore


def hosts(vcenter: vim.ServiceInstanceContent) -> list[vim.HostSystem]:
    """The hosts of the simulator's one cluster, by name."""
    return cluster_hosts(vcenter, 0)


@pytest.fixture
def new_vm(vcenter: vim.ServiceInstanceContent) -> Iterator[Callable[..., vim.VirtualMachine]]:
    """Powered-on VMs on the cluster's first host; hot-add on unless asked otherwise."""
    created: list[vim.VirtualMachine] = []

    def make(hot_add: bool = True, memory_mb: int = 256, cpus: int = 1) -> vim.VirtualMachine:
        vm = create_vm(
            vcenter,
            hosts(vcenter)[0],
            "ansible",
            cpus=cpus,
            memory_mb=memory_mb,
            cpuHotAddEnabled=hot_add,
            memoryHotAddEnabled=hot_add,
        )
        created.append(vm)
        return vm

    yield make
    for vm in created:
        remove_vm(vm)


def write_extravars(path: Path, vcsim, **changes: Any) -> Path:
    values = {
        "vcenter_hostname": vcsim.host,
        "vcenter_port": vcsim.port,
        "vcenter_username": vcsim.username,
        "vcenter_password": vcsim.password,
        "vcenter_validate_certs": True,
    } | changes
    path.write_text(yaml.safe_dump(values))
    path.chmod(0o600)
    return path


@pytest.fixture
def setup(vcsim, tmp_path: Path, ansible_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """(conf, driver, store) for the ansible executor against the simulator; TLS verified
    against the simulator's certificate."""
    for name in ("ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP"):
        monkeypatch.setenv(name, ansible_env[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conf = make_conf([], config_files=[])
    for name, value in vsphere_overrides(vcsim).items():
        conf.set_override(name, value, group="vsphere")
    conf.set_override("step_timeout", 120.0)
    AnsibleExecutor(conf)  # registers [ansible]
    conf.set_override(
        "extravars_file", str(write_extravars(tmp_path / "vcenter.yml", vcsim)), group="ansible"
    )
    conf.set_override("ca_file", str(vcsim.ca_file), group="ansible")
    driver = VSphereDriver(conf)
    store = RecordingStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    yield conf, driver, store
    driver.close()
    store.close()


class RecordingStore(HistoryStore):
    """The real store, also keeping every step update in order (what an operator watching the
    store would have seen)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.updates: list[tuple[int, StepStatus, str]] = []

    def update_step(self, plan_id: str, index: int, status: StepStatus, message: str = "") -> None:
        self.updates.append((index, status, message))
        super().update_step(plan_id, index, status, message)


def run_plan(conf, driver, store, plan: ActionPlan) -> ActionPlan:
    """Runs the plan through the ansible executor; the vCenter password shows up nowhere."""
    store.save_plan(plan)
    AnsibleExecutor(conf, store=store).execute(plan, driver)
    stored = store.get_plan(plan.id)
    password = conf.vsphere.password
    assert not [m for _, _, m in store.updates if password in m]
    assert not [a.message for a in stored.actions if password in a.message]
    return stored


def test_vmotion_resize_and_allocation_are_carried_out(setup, new_vm, vcenter, caplog) -> None:
    conf, driver, store = setup
    caplog.set_level(logging.DEBUG)
    vm = new_vm()
    target = hosts(vcenter)[2]
    record = driver.get_inventory().vms[vm._moId]
    per_vcpu = record.size.cpu / record.vcpus
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=2 * per_vcpu, memory=512), depends_on=(0,))
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id=vm._moId,
        allocation=Allocation(reservation=Resources(cpu=500, memory=128), shares=2000),
        depends_on=(1,),
    )

    stored = run_plan(conf, driver, store, plan)

    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * 3, [
        a.message for a in stored.actions
    ]
    # the runner's events reached the store while the step ran: the task, then the outcome
    assert store.updates[:3] == [
        (0, StepStatus.RUNNING, ""),
        (0, StepStatus.RUNNING, f"task: vMotion {vm.name} to {target.name}"),
        (0, StepStatus.SUCCEEDED, ""),
    ]
    assert conf.vsphere.password not in caplog.text
    assert vm.runtime.host == target
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 512)
    assert vm.config.cpuAllocation.reservation == 500
    assert vm.config.memoryAllocation.reservation == 128
    assert vm.config.cpuAllocation.shares.shares == 2 * 1000 * 2000 // 1000  # 2 vCPUs at weight 2000
    assert driver.get_inventory().vms[vm._moId].allocation.shares == 2000  # read back as planned


def test_refused_resize_fails_its_step_with_ansibles_message_and_skips_dependents(
    setup, new_vm, vcenter
) -> None:
    conf, driver, store = setup
    vm = new_vm(hot_add=False)  # vCenter refuses to add vCPUs to it while it runs
    other = new_vm()
    record = driver.get_inventory().vms[vm._moId]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=4 * record.size.cpu, memory=256))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=hosts(vcenter)[1]._moId, depends_on=(0,))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=other._moId, target_host_id=hosts(vcenter)[1]._moId)

    stored = run_plan(conf, driver, store, plan)

    resize, dependent, independent = stored.actions
    assert resize.status is StepStatus.FAILED
    assert "cpuHotAdd is not enabled" in resize.message
    assert dependent.status is StepStatus.SKIPPED
    assert independent.status is StepStatus.SUCCEEDED
    assert vm.config.hardware.numCPU == 1 and vm.runtime.host == hosts(vcenter)[0]
    assert other.runtime.host == hosts(vcenter)[1]


def test_vcenter_fault_during_vmotion_aborts_the_plan_under_abort_policy(
    setup, new_vm, vcenter, vcsim
) -> None:
    conf, driver, store = setup
    conf.set_override("on_step_failure", "abort")
    vm = new_vm()
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=vm._moId)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=hosts(vcenter)[1]._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm._moId, allocation=Allocation(shares=500))

    stored = run_plan(conf, driver, store, plan)

    migrate, rest = stored.actions
    assert migrate.status is StepStatus.FAILED
    assert migrate.message.startswith("ActionFailed: failed: vMotion")
    assert rest.status is StepStatus.CANCELLED
    assert vm.runtime.host == hosts(vcenter)[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_vcenter_fails_every_step_and_never_reveals_the_password(
    setup, new_vm, vcenter, vcsim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf, driver, store = setup
    port = closed_port()
    secret = "Connection refused"  # a password Ansible's own error message happens to contain
    extravars = write_extravars(
        tmp_path / "unreachable.yml",
        vcsim,
        vcenter_hostname="127.0.0.1",
        vcenter_port=port,
        vcenter_password=secret,
    )
    conf.set_override("extravars_file", str(extravars), group="ansible")
    conf.set_override("on_step_failure", "continue")
    vm = new_vm()
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=hosts(vcenter)[1]._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm._moId, allocation=Allocation(shares=500), depends_on=(0,))

    with caplog.at_level(logging.DEBUG):
        stored = run_plan(conf, driver, store, plan)

    assert [a.status for a in stored.actions] == [StepStatus.FAILED, StepStatus.FAILED]
    for action in stored.actions:
        assert f"error while connecting to vCenter or ESXi API at 127.0.0.1:{port}" in action.message
        assert secret not in action.message
    assert secret not in caplog.text
    assert not list(tmp_path.glob("cotenancy-ansible-*")), "the runner folder (with the variables) is left"
    assert vm.runtime.host == hosts(vcenter)[0]


def test_an_unreachable_ansible_host_is_a_failed_step_with_ansibles_message(
    setup, new_vm, vcenter, vcsim, tmp_path: Path
) -> None:
    """Ansible cannot set the host up for its modules (its UNREACHABLE result; here the remote
    temporary folder cannot be created): the step fails with Ansible's message and its
    dependents are skipped."""
    conf, driver, store = setup
    extravars = write_extravars(
        tmp_path / "broken-tmp.yml", vcsim, ansible_remote_tmp="/proc/no-such-dir/tmp"
    )
    conf.set_override("extravars_file", str(extravars), group="ansible")
    vm = new_vm()
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=hosts(vcenter)[1]._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm._moId, allocation=Allocation(shares=500), depends_on=(0,))

    migrate, dependent = run_plan(conf, driver, store, plan).actions

    assert migrate.status is StepStatus.FAILED
    assert migrate.message.startswith(f"ActionFailed: unreachable: vMotion {vm.name}")
    assert "Failed to create temporary directory" in migrate.message
    assert dependent.status is StepStatus.SKIPPED
    assert vm.runtime.host == hosts(vcenter)[0]


def test_host_maintenance_is_entered_and_left(setup, vcenter) -> None:
    conf, driver, store = setup
    host = hosts(vcenter)[1]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.SET_MAINTENANCE, host_id=host._moId, maintenance=True)

    (entered,) = run_plan(conf, driver, store, plan).actions

    assert entered.status is StepStatus.SUCCEEDED, entered.message
    assert host.runtime.inMaintenanceMode is True
    leave = ActionPlan(strategy="test")
    leave.add(ActionKind.SET_MAINTENANCE, host_id=host._moId, maintenance=False)
    (left,) = run_plan(conf, driver, store, leave).actions
    assert left.status is StepStatus.SUCCEEDED, left.message
    assert host.runtime.inMaintenanceMode is False


def test_vmotion_to_a_host_vcenter_does_not_know_fails_with_the_modules_message(
    setup, new_vm, vcenter
) -> None:
    conf, driver, store = setup
    vm = new_vm()
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id="host-9999")

    (step,) = run_plan(conf, driver, store, plan).actions

    assert step.status is StepStatus.FAILED
    assert step.message.startswith(f"ActionFailed: failed: vMotion {vm.name} to host-9999: ")
    assert "host-9999" in step.message.split(": ", 3)[3]  # vmware_vmotion names the missing host
    assert vm.runtime.host == hosts(vcenter)[0]


def test_a_cold_resize_powers_the_vm_off_and_on_again(setup, new_vm, vcsim, tmp_path: Path) -> None:
    conf, driver, store = setup
    extravars = write_extravars(tmp_path / "cold.yml", vcsim, allow_power_cycle=True)
    conf.set_override("extravars_file", str(extravars), group="ansible")
    vm = new_vm(hot_add=False)
    record = driver.get_inventory().vms[vm._moId]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=2 * record.size.cpu, memory=512))

    (resize,) = run_plan(conf, driver, store, plan).actions

    assert resize.status is StepStatus.SUCCEEDED, resize.message
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 512)
    assert vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn


def test_a_cold_resize_that_vcenter_refuses_leaves_the_vm_running_as_it_was(
    setup, new_vm, vcsim, tmp_path: Path
) -> None:
    """The play powers the VM off, vCenter refuses the new size: the step fails with vCenter's
    fault, and the VM is powered on again instead of being left off."""
    conf, driver, store = setup
    extravars = write_extravars(tmp_path / "cold.yml", vcsim, allow_power_cycle=True)
    conf.set_override("extravars_file", str(extravars), group="ansible")
    vm = new_vm(hot_add=False)
    record = driver.get_inventory().vms[vm._moId]
    vcsim.arm_fault("ReconfigVM_Task", "InsufficientResourcesFault", this=vm._moId)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=2 * record.size.cpu, memory=512))

    (resize,) = run_plan(conf, driver, store, plan).actions

    assert resize.status is StepStatus.FAILED
    assert "InsufficientResourcesFault" in resize.message
    assert vm.config.hardware.numCPU == 1
    assert vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
