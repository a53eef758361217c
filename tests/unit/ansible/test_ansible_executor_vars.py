"""What the ansible executor hands a step playbook: which playbook, and which variables."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cotenancy.conf import make_conf
from cotenancy.drivers.simulated.persistent import PersistentSimulatedDriver
from cotenancy.exceptions import ActionFailed, ConfigurationError, Unsupported
from cotenancy.model import Action, ActionKind, ActionPlan, Allocation, Resources
from cotenancy.plugins.ansible.executor import (
    AnsibleExecutor,
    _ansible_env,
    _redact,
    _untrusted,
    playbook_vars,
)


@pytest.fixture(scope="module")
def driver() -> PersistentSimulatedDriver:
    conf = make_conf([], config_files=[])
    conf.set_override("synthetic_vms", 4, group="simulator")
    conf.set_override("days", 0.02, group="simulator")
    return PersistentSimulatedDriver(conf)


@pytest.fixture
def executor() -> AnsibleExecutor:
    return AnsibleExecutor(make_conf([], config_files=[]))


def test_each_step_kind_has_a_playbook_for_every_cloud(executor, driver) -> None:
    for cloud in ("simulated", "vsphere", "nova", "hyperv"):
        folder = Path(executor.conf.ansible.playbook_dir) / cloud
        for kind in ActionKind:
            assert (folder / f"{kind.value}.yml").is_file(), f"{cloud}/{kind.value}.yml"
    assert executor.playbook_for(driver, Action(0, ActionKind.RESIZE)).name == "resize.yml"


def test_a_cloud_without_playbooks_is_unsupported(executor, driver, tmp_path: Path) -> None:
    executor.conf.set_override("playbook_dir", str(tmp_path), group="ansible")
    with pytest.raises(Unsupported, match="no playbook for resize on simulated"):
        executor.playbook_for(driver, Action(0, ActionKind.RESIZE))


def test_variables_name_the_vm_and_host_and_translate_sizes(executor, driver) -> None:
    inventory = driver.get_inventory()
    vm = inventory.vms[sorted(inventory.vms)[0]]
    host = next(h for h in sorted(inventory.hosts) if h != vm.host_id)
    per_vcpu = vm.size.cpu / vm.vcpus
    action = Action(0, ActionKind.RESIZE, vm_id=vm.id, size=Resources(cpu=2.5 * per_vcpu, memory=2048))
    variables = executor.step_vars(driver, action)
    assert variables["vm_name"] == vm.name
    assert variables["vcpus"] == 3  # rounded up: never less than planned
    assert variables["size"]["memory"] == 2048

    move = Action(1, ActionKind.LIVE_MIGRATE, vm_id=vm.id, target_host_id=host)
    assert executor.step_vars(driver, move)["target_host_name"] == inventory.hosts[host].name


def test_allocation_variables_carry_vsphere_share_counts_and_unlimited_as_minus_one(executor, driver) -> None:
    inventory = driver.get_inventory()
    vm = inventory.vms[sorted(inventory.vms)[0]]
    allocation = Allocation(
        reservation=Resources(cpu=500, memory=256), limit=Resources(cpu=4000, memory=math.inf), shares=2000
    )
    action = Action(0, ActionKind.SET_ALLOCATION, vm_id=vm.id, allocation=allocation)
    alloc = executor.step_vars(driver, action)["allocation"]
    assert alloc["shares"] == 2000
    assert alloc["cpu_shares"] == 2 * 1000 * vm.vcpus  # weight 2000 = twice vSphere's normal
    assert alloc["mem_shares"] == round(2 * 10 * vm.size.memory)
    assert (alloc["cpu_reservation"], alloc["mem_reservation"]) == (500, 256)
    assert (alloc["cpu_limit"], alloc["mem_limit"]) == (4000, -1)


def test_the_extravars_file_is_merged_under_the_step_and_a_broken_one_is_a_clear_error(
    executor, driver, tmp_path
) -> None:
    good = tmp_path / "vars.yml"
    good.write_text("vcenter_hostname: vc.example\nvcenter_port: 8443\nvm_name: from-the-file\n")
    executor.conf.set_override("extravars_file", str(good), group="ansible")
    vm_id = sorted(driver.get_inventory().vms)[0]
    step = executor.step_vars(driver, Action(0, ActionKind.RESIZE, vm_id=vm_id, size=Resources(cpu=1)))
    variables = playbook_vars(executor.file_vars(), step)
    assert (variables["vcenter_hostname"], variables["vcenter_port"]) == ("vc.example", 8443)
    assert variables["vm_name"] == {"__ansible_unsafe": step["vm_name"]}

    bad = tmp_path / "bad.yml"
    bad.write_text("vcenter_hostname: [unclosed\n")
    executor.conf.set_override("extravars_file", str(bad), group="ansible")
    with pytest.raises(ConfigurationError, match="bad.yml"):
        executor.file_vars()


def test_secrets_are_masked_wherever_they_appear() -> None:
    assert _redact("login as admin with s3cr3t failed (s3cr3t)", ["s3cr3t"]) == (
        "login as admin with ******** failed (********)"
    )


def test_ansible_state_stays_in_the_run_folder_and_a_ca_bundle_is_exported(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    env = _ansible_env(tmp_path / "run", str(ca))
    assert env["ANSIBLE_HOME"].startswith(str(tmp_path / "run"))
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == str(ca)
    assert "SSL_CERT_FILE" not in _ansible_env(tmp_path / "run")
    first = Path(env["ANSIBLE_COLLECTIONS_PATH"].split(":")[0])
    assert (first / "ansible_collections" / "cotenancy" / "cloud" / "galaxy.yml").is_file()


def test_an_in_memory_simulated_cloud_is_refused_before_any_step_runs(executor, driver) -> None:
    """Each step runs in other processes: they would act on clouds of their own and report success."""
    from cotenancy.model import ActionPlan, StepStatus

    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.SET_MAINTENANCE, host_id=sorted(driver.get_inventory().hosts)[0], maintenance=True)
    with pytest.raises(ConfigurationError, match=r"\[simulated\] state_file"):
        executor.execute(plan, driver)
    assert plan.actions[0].status is StepStatus.PENDING


def test_an_extravars_file_that_is_not_a_mapping_is_refused(executor, tmp_path: Path) -> None:
    listed = tmp_path / "list.yml"
    listed.write_text("- vcenter_hostname\n")
    executor.conf.set_override("extravars_file", str(listed), group="ansible")
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        executor.file_vars()


@pytest.mark.parametrize(
    "size",
    [Resources(cpu=-2000.0, memory=512.0), Resources(cpu=1000.0, memory=math.nan)],
    ids=["negative-cpu", "nan-memory"],
)
def test_a_size_no_cloud_could_take_fails_before_any_playbook_runs(executor, driver, size) -> None:
    """The vSphere playbook would have rounded -2000 MHz up to one vCPU and reported success."""
    vm_id = sorted(driver.get_inventory().vms)[0]
    action = Action(0, ActionKind.RESIZE, vm_id=vm_id, size=size)

    def no_playbook(*_args, **_kwargs):
        raise AssertionError("a playbook was looked up for a step that should have been refused")

    executor.playbook_for = no_playbook
    with pytest.raises(ActionFailed, match="asks for a size"):
        executor.run_step(ActionPlan(strategy="test"), action, driver, timeout=60)


def test_strings_from_the_cloud_reach_ansible_marked_unsafe_and_the_operators_are_left_alone() -> None:
    step = {"vm_name": "web{{ lookup('pipe', 'id') }}", "size": {"cpu": 2.0}, "tags": ["a"], "n": None}
    assert _untrusted(step) == {
        "vm_name": {"__ansible_unsafe": "web{{ lookup('pipe', 'id') }}"},
        "size": {"cpu": 2.0},
        "tags": [{"__ansible_unsafe": "a"}],
        "n": None,
    }
