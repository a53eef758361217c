"""The ansible executor with the simulated cloud: every step kind runs as a playbook in its own
processes (``cotenancy.cloud.step``) and lands in the shared, persistent cloud; a step the cloud
refuses is a failed step with the module's message."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from ansible_helpers import REPO, TEST_DRIVER, SimCloud, trace_cloud

from cotenancy.model import ActionKind, ActionPlan, Allocation, Resources, StepStatus
from cotenancy.plugins.ansible.executor import AnsibleExecutor


def configure_executor(cloud: SimCloud, ansible_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Configuration for the executor: step playbooks load the test-only persistent driver
    (``cotenancy_driver``) with the same configuration file as the in-process driver."""
    for name in ("ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP", "PYTHONPATH"):
        monkeypatch.setenv(name, ansible_env[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    extravars = tmp_path / "extravars.yml"
    extravars.write_text(
        yaml.safe_dump({"cotenancy_driver": TEST_DRIVER, "cotenancy_config_files": [str(cloud.config_file)]})
    )
    conf = cloud.conf()
    AnsibleExecutor(conf)
    conf.set_override("extravars_file", str(extravars), group="ansible")
    conf.set_override("step_timeout", 120.0)
    return conf


@pytest.fixture
def executor_conf(sim_cloud: SimCloud, ansible_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    return configure_executor(sim_cloud, ansible_env, tmp_path, monkeypatch)


def test_each_step_kind_changes_the_shared_cloud(sim_cloud: SimCloud, executor_conf) -> None:
    driver = sim_cloud.driver()
    inventory = driver.get_inventory()
    vm = inventory.vms[sorted(inventory.vms)[0]]
    target = next(h for h in sorted(inventory.hosts) if h != vm.host_id)
    spare = next(h for h in sorted(inventory.hosts) if h not in (vm.host_id, target))
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.SET_MAINTENANCE, host_id=spare, maintenance=True)
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm.id, target_host_id=target)
    plan.add(ActionKind.RESIZE, vm_id=vm.id, size=Resources(cpu=vm.size.cpu / 2, memory=vm.size.memory / 2))
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm.id, allocation=Allocation(shares=3000))
    store = sim_cloud.store()
    store.save_plan(plan)
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    AnsibleExecutor(executor_conf, store=store).execute(plan, driver)

    # Ctrl-C and systemctl stop still reach cotenancy after its playbooks ran
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    stored = store.get_plan(plan.id)
    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * 4, [
        a.message for a in stored.actions
    ]
    fresh = sim_cloud.driver()  # as a later process sees it
    fresh.wait(900)  # the migration completes in cloud time
    after = fresh.get_inventory()
    assert after.hosts[spare].maintenance is True
    assert after.vms[vm.id].host_id == target
    assert (after.vms[vm.id].size.cpu, after.vms[vm.id].size.memory) == (vm.size.cpu / 2, vm.size.memory / 2)
    assert after.vms[vm.id].allocation.shares == 3000


def test_a_migration_to_an_unknown_host_fails_with_the_modules_message(
    sim_cloud: SimCloud, executor_conf
) -> None:
    driver = sim_cloud.driver()
    vm_ids = sorted(driver.get_inventory().vms)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm_ids[0], target_host_id="host-that-is-not-there")
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm_ids[0], allocation=Allocation(shares=500), depends_on=(0,))
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm_ids[1], allocation=Allocation(shares=500))
    store = sim_cloud.store()
    store.save_plan(plan)

    AnsibleExecutor(executor_conf, store=store).execute(plan, driver)

    failed, dependent, independent = store.get_plan(plan.id).actions
    assert failed.status is StepStatus.FAILED
    assert "host-that-is-not-there" in failed.message and "NotFound" in failed.message
    assert dependent.status is StepStatus.SKIPPED
    assert independent.status is StepStatus.SUCCEEDED
    assert sim_cloud.driver().get_inventory().vms[vm_ids[0]].allocation.shares == 1000


def test_a_step_playbook_in_check_mode_changes_nothing(sim_cloud: SimCloud, ansible_env) -> None:
    vm = sorted(sim_cloud.driver().get_inventory().vms)[0]
    before = sim_cloud.state_file.read_bytes()
    variables = {
        "cotenancy_driver": TEST_DRIVER,
        "cotenancy_config_files": [str(sim_cloud.config_file)],
        "vm_id": vm,
        "size": {"cpu": 100.0, "memory": 128.0},
        "maintenance": None,
    }
    result = subprocess.run(
        [
            "ansible-playbook",
            "--check",
            "-e",
            yaml.safe_dump(variables, default_flow_style=True),
            "resize.yml",
        ],
        cwd=REPO / "playbooks" / "simulated",
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=1" in result.stdout  # it would resize ...
    assert sim_cloud.state_file.read_bytes() == before  # ... and did not


def test_a_simulated_cloud_without_a_state_file_is_refused_by_the_modules(
    tmp_path: Path, ansible_env
) -> None:
    """Without ``[simulated] state_file`` each task would act on a cloud of its own and report
    success: the module refuses instead, saying what to set."""
    config = tmp_path / "in-memory.conf"
    config.write_text("[simulator]\nsynthetic_vms = 4\ndays = 0.02\n")
    variables = {
        "cotenancy_driver": TEST_DRIVER,
        "cotenancy_config_files": [str(config)],
        "target_host_id": "host-0000",
        "maintenance": True,
    }
    result = subprocess.run(
        ["ansible-playbook", "-e", yaml.safe_dump(variables, default_flow_style=True), "set_maintenance.yml"],
        cwd=REPO / "playbooks" / "simulated",
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode != 0
    assert "set [simulated] state_file" in result.stdout


HOSTILE_NAME = "web{{ lookup('pipe', 'id -un') }}"


@pytest.fixture
def hostile_cloud(tmp_path: Path, shared_dir: Path) -> SimCloud:
    """A cloud whose first VM a tenant named with a Jinja template (VMs are named after the trace
    files, linked here from the shared PlanetLab day, not copied)."""
    trace = tmp_path / "trace"
    trace.mkdir()
    day = sorted((shared_dir / "traces" / "planetlab" / "20110303").iterdir())
    for name, source in zip((HOSTILE_NAME, "vm-1", "vm-2"), day, strict=False):
        (trace / name).symlink_to(source)
    cloud = trace_cloud(tmp_path, trace)
    assert HOSTILE_NAME in cloud.driver().get_inventory().vms
    return cloud


def test_a_vm_named_with_a_template_reaches_the_playbook_as_text_and_runs_nothing(
    hostile_cloud: SimCloud, ansible_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = configure_executor(hostile_cloud, ansible_env, tmp_path, monkeypatch)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.SET_ALLOCATION, vm_id=HOSTILE_NAME, allocation=Allocation(shares=500))
    store = hostile_cloud.store()
    store.save_plan(plan)
    messages: list[str] = []

    class Recording(AnsibleExecutor):
        def record(self, plan, action, status, message=""):
            messages.append(message)
            super().record(plan, action, status, message)

    Recording(conf, store=store).execute(plan, hostile_cloud.driver())

    (step,) = store.get_plan(plan.id).actions
    assert step.status is StepStatus.SUCCEEDED, step.message
    assert hostile_cloud.driver().get_inventory().vms[HOSTILE_NAME].allocation.shares == 500
    assert f"task: set_allocation {HOSTILE_NAME}" in messages


def test_secrets_and_step_variables_stay_off_the_command_line(
    sim_cloud: SimCloud, executor_conf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any local user can read a process's command line; the variables go in a private file."""
    import ansible_runner

    secret = "Sup3r-Secret-vCenter-Pw"
    extravars = Path(executor_conf.ansible.extravars_file)
    variables = yaml.safe_load(extravars.read_text()) | {"vcenter_password": secret}
    extravars.write_text(yaml.safe_dump(variables))
    commands: list[list[str]] = []
    real_run = ansible_runner.run

    def observed_run(**kwargs):
        runner = real_run(**kwargs)
        commands.append(list(runner.config.command))
        return runner

    monkeypatch.setattr(ansible_runner, "run", observed_run)
    driver = sim_cloud.driver()
    vm_id = sorted(driver.get_inventory().vms)[0]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm_id, allocation=Allocation(shares=700))
    store = sim_cloud.store()
    store.save_plan(plan)

    AnsibleExecutor(executor_conf, store=store).execute(plan, driver)

    assert store.get_plan(plan.id).actions[0].status is StepStatus.SUCCEEDED
    assert sim_cloud.driver().get_inventory().vms[vm_id].allocation.shares == 700
    (command,) = commands
    assert not any(secret in part or vm_id in part for part in command), command
    assert any(part.startswith("@") and part.endswith("env/extravars") for part in command), command
