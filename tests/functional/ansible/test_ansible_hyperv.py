"""The ansible executor with the hyperv driver: the hyperv step playbooks (``cotenancy.cloud.step``
in Ansible's module processes) reach the loopback WS-Management server through real pywinrm over
HTTPS; the responder's state shows the migration and resize, and the account's password (kept
in a configuration file) shows up in no stored message."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ansible_helpers import REPO

from cotenancy.conf import make_conf
from cotenancy.drivers.hyperv.driver import HyperVDriver
from cotenancy.model import ActionKind, ActionPlan, Resources, StepStatus
from cotenancy.plugins.ansible.executor import AnsibleExecutor
from cotenancy.store import HistoryStore

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness.wsman import certs  # noqa: E402
from tests.harness.wsman.hyperv import HyperVResponder  # noqa: E402
from tests.harness.wsman.server import WSManServer  # noqa: E402

USER = "administrator"
PASSWORD = "Hv;pa$$'word\"x"
MIB = 1024**2


@pytest.fixture(scope="module")
def wsman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WSManServer, certs.CertificateFiles]]:
    certificates = certs.generate(tmp_path_factory.mktemp("wsman-tls"))
    with WSManServer(users={USER: PASSWORD}, certificates=certificates) as server:
        yield server, certificates


@pytest.fixture
def site(wsman) -> HyperVResponder:
    responder = HyperVResponder()
    for host in ("HV01", "HV02"):
        responder.add_host(host, logical_processors=8, clock_mhz=2500, memory_bytes=32 * 1024**3)
    responder.add_vm("web01", "HV01", processor_count=2, startup_bytes=4096 * MIB, cpu_demand_mhz=1500)
    wsman[0].responder = responder
    return responder


@pytest.fixture
def setup(wsman, site, tmp_path: Path, ansible_env, monkeypatch: pytest.MonkeyPatch):
    server, certificates = wsman
    for name in ("ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP"):
        monkeypatch.setenv(name, ansible_env[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = tmp_path / "cotenancy.conf"
    config.write_text(
        "[hyperv]\n"
        f"endpoint = {server.endpoint}\n"
        f"username = {USER}\n"
        f"password = {PASSWORD.replace('$', '$$')}\n"  # oslo.config reads $name as a substitution
        f"ca_file = {certificates.ca_file}\n"
        "hosts = HV01,HV02\n"
        "operation_timeout = 2\n"
    )
    config.chmod(0o600)
    extravars = tmp_path / "extravars.yml"
    extravars.write_text(yaml.safe_dump({"cotenancy_config_files": [str(config)]}))
    conf = make_conf([], config_files=[str(config)])
    AnsibleExecutor(conf)
    conf.set_override("extravars_file", str(extravars), group="ansible")
    conf.set_override("step_timeout", 120.0)
    driver = HyperVDriver(conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    yield conf, driver, store
    driver.close()
    store.close()


def test_migration_and_resize_reach_the_hyperv_site(setup, site: HyperVResponder) -> None:
    conf, driver, store = setup
    web = next(vm for vm in site.vms.values() if vm.name == "web01")
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=web.id, target_host_id="HV02")
    plan.add(ActionKind.RESIZE, vm_id=web.id, size=Resources(cpu=2 * 2500, memory=6000), depends_on=(0,))
    store.save_plan(plan)

    AnsibleExecutor(conf, store=store).execute(plan, driver)

    stored = store.get_plan(plan.id)
    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * 2, [
        a.message for a in stored.actions
    ]
    assert web.host == "HV02"
    assert web.startup_bytes == 6000 * MIB
    assert "Move-VM" in site.calls


def test_a_vm_that_vanished_fails_its_step_and_the_password_stays_secret(setup, site) -> None:
    conf, driver, store = setup
    web = next(vm for vm in site.vms.values() if vm.name == "web01")
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=web.id, target_host_id="HV02")
    store.save_plan(plan)
    del site.vms[web.id]  # deleted between planning and acting

    AnsibleExecutor(conf, store=store).execute(plan, driver)

    (step,) = store.get_plan(plan.id).actions
    assert step.status is StepStatus.FAILED
    assert step.message.startswith("ActionFailed: failed: live_migrate")  # Ansible's task ...
    assert f"VM '{web.id}' not found on hyperv" in step.message  # ... and the module's message
    assert PASSWORD not in step.message
