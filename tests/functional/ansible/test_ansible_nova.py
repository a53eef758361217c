"""The ansible executor against a real Nova (the harness): the nova step playbooks
(``cotenancy.cloud.step``, configured through ``cotenancy_config_files`` and ``cotenancy_options``)
live-migrate and resize servers, and Nova's API shows the result; a live migration Nova fails is a
failed step with the module's message, and the failure policy skips what depends on it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml

from cotenancy.conf import make_conf
from cotenancy.drivers.nova.driver import NovaDriver
from cotenancy.model import ActionKind, ActionPlan, Resources, StepStatus
from cotenancy.plugins.ansible.executor import AnsibleExecutor
from cotenancy.store import HistoryStore

CLOUD = "nova-harness"


@pytest.fixture
def setup(nova, nova_clouds_yaml: Path, tmp_path: Path, ansible_env, monkeypatch: pytest.MonkeyPatch):
    """(conf, driver, store): the executor's own driver and the step playbooks' configuration
    both point at the harness."""
    for name in ("ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP"):
        monkeypatch.setenv(name, ansible_env[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = tmp_path / "cotenancy.conf"
    config.write_text(f"[nova]\ncloud = {CLOUD}\nclouds_file = {nova_clouds_yaml}\n")
    extravars = tmp_path / "extravars.yml"
    extravars.write_text(
        yaml.safe_dump(
            {
                "cotenancy_config_files": [str(config)],
                "cotenancy_options": {"nova.poll_interval": 0.1, "nova.action_timeout": 60.0},
            }
        )
    )
    conf = make_conf([], config_files=[str(config)])
    AnsibleExecutor(conf)  # registers [ansible]
    conf.set_override("extravars_file", str(extravars), group="ansible")
    conf.set_override("step_timeout", 120.0)
    driver = NovaDriver(conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    yield conf, driver, store
    driver.close()
    store.close()


def run_plan(conf, driver, store, plan: ActionPlan) -> ActionPlan:
    store.save_plan(plan)
    AnsibleExecutor(conf, store=store).execute(plan, driver)
    return store.get_plan(plan.id)


def test_live_migration_and_resize_are_carried_out(setup, nova_server, nova_admin) -> None:
    conf, driver, store = setup
    server = nova_server("ansible-mover", "host1")
    mhz = driver.options.mhz_per_vcpu
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=server.id, target_host_id="host2")
    plan.add(ActionKind.RESIZE, vm_id=server.id, size=Resources(cpu=2 * mhz, memory=4096), depends_on=(0,))

    stored = run_plan(conf, driver, store, plan)

    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * 2, [
        a.message for a in stored.actions
    ]
    after = nova_admin.compute.get_server(server.id)
    assert after.status == "ACTIVE"
    assert after.flavor["original_name"] == "m1.medium"
    assert after.compute_host in ("host1", "host2")  # a resize may land on either host
    migrations = [m for m in nova_admin.compute.migrations(instance_uuid=server.id)]
    live = [m for m in migrations if m.migration_type == "live-migration"]
    assert [(m.source_compute, m.dest_compute, m.status) for m in live] == [("host1", "host2", "completed")]


def test_a_migration_nova_fails_is_a_failed_step_and_its_dependents_are_skipped(
    setup, nova_server, nova_admin, nova
) -> None:
    conf, driver, store = setup
    server = nova_server("ansible-unlucky", "host1")
    nova.fail_next_live_migrations(1)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=server.id, target_host_id="host2")
    plan.add(ActionKind.RESIZE, vm_id=server.id, size=Resources(cpu=1, memory=2048), depends_on=(0,))

    stored = run_plan(conf, driver, store, plan)

    migrate, resize = stored.actions
    assert migrate.status is StepStatus.FAILED
    assert "ActionFailed" in migrate.message and "live migration" in migrate.message
    assert resize.status is StepStatus.SKIPPED
    after = nova_admin.compute.get_server(server.id)
    assert (after.compute_host, after.flavor["original_name"]) == ("host1", "m1.tiny")
