"""Fixtures for the Ansible path: real ansible-playbook / ansible-runner runs against real targets.

- ``ansible_env``: environment for Ansible subprocesses that keeps Ansible's state in a temporary
  folder and makes the test-only ``simulated_persistent`` driver entry point visible to module
  processes (a ``.dist-info`` folder on ``PYTHONPATH``), so setup.cfg need not change for tests.
- ``sim_cloud``: a small persistent simulated cloud (state file + cotenancy configuration file).
- ``vcsim``: the vCenter simulator (tests/harness/vcsim), one per session.
- ``nova``: the Nova harness (tests/harness/nova), one per session.
  (The WS-Management server for the Hyper-V test is started by that test module.)

A missing harness fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyVmomi import vim

HARNESSES = Path(__file__).resolve().parents[2] / "harness"
sys.path.insert(0, str(HARNESSES / "vcsim"))
sys.path.insert(0, str(HARNESSES / "nova"))

import nova_harness  # noqa: E402
import vcsim_harness  # noqa: E402
from ansible_helpers import REPO, TEST_DRIVER, SimCloud  # noqa: E402
from vcsim_admin import admin_connection  # noqa: E402


@pytest.fixture(scope="session")
def test_entry_points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a distribution that registers ``simulated_persistent`` in
    ``cotenancy.drivers``; on ``sys.path``/``PYTHONPATH`` it is found like an installed plugin."""
    root = tmp_path_factory.mktemp("entry-points")
    info = root / "cotenancy_ansible_tests-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cotenancy-ansible-tests\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        f"[cotenancy.drivers]\n{TEST_DRIVER} = "
        "cotenancy.drivers.simulated.persistent:PersistentSimulatedDriver\n"
    )
    return root


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory, test_entry_points: Path) -> dict[str, str]:
    home = tmp_path_factory.mktemp("ansible-home")
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(test_entry_points), os.environ.get("PYTHONPATH")])),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "plugins" / "ansible" / "collection"),
    )
    return env


@pytest.fixture
def in_process_entry_points(test_entry_points: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only driver entry point, for code loading drivers in this process (stevedore
    keeps the entry points it has listed per namespace: start it from an empty list)."""
    from stevedore.extension import ExtensionManager

    monkeypatch.syspath_prepend(str(test_entry_points))
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})


@pytest.fixture
def sim_cloud(tmp_path: Path) -> SimCloud:
    """Eight synthetic VMs for about an hour of simulated time, saved in a state file."""
    state = tmp_path / "cloud.pickle"
    store_url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    config = tmp_path / "cotenancy.conf"
    config.write_text(
        "[DEFAULT]\n"
        f"state_path = {tmp_path}\n"
        "[simulator]\n"
        "synthetic_vms = 8\n"
        "days = 0.05\n"
        "[simulated]\n"
        f"state_file = {state}\n"
        "[store]\n"
        f"connection = {store_url}\n"
    )
    cloud = SimCloud(state_file=state, config_file=config, store_url=store_url)
    cloud.driver()  # builds the cloud and writes the state file
    return cloud


# ---------------------------------------------------------------------------------------- vCenter


@pytest.fixture(scope="session")
def vcsim() -> Iterator[vcsim_harness.VCSim]:
    """One cluster of three hosts with two VMs."""
    with vcsim_harness.VCSim.start(clusters=1, hosts_per_cluster=3, vms_per_pool=2) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _no_leftover_vcsim_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "vcsim" in request.fixturenames:
        request.getfixturevalue("vcsim").clear_faults()


@pytest.fixture(scope="session")
def vcenter(vcsim: vcsim_harness.VCSim) -> Iterator[vim.ServiceInstanceContent]:
    """The tests' own pyVmomi connection, to arrange and to check what the playbooks did."""
    with admin_connection(vcsim) as content:
        yield content


# ------------------------------------------------------------------------------------------- Nova


@pytest.fixture(scope="session")
def nova(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nova_harness.NovaHarness]:
    with nova_harness.running(2, tmp_path_factory.mktemp("nova-harness")) as harness:
        yield harness


@pytest.fixture(scope="session")
def nova_clouds_yaml(nova: nova_harness.NovaHarness, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nova.write_clouds_yaml(tmp_path_factory.mktemp("clouds") / "clouds.yaml")


@pytest.fixture(scope="session")
def nova_admin(nova_clouds_yaml: Path):
    """The tests' own openstacksdk connection, to arrange and to check."""
    return nova_harness.admin_connection(nova_clouds_yaml)


@pytest.fixture
def nova_server(nova_admin, nova: nova_harness.NovaHarness) -> Iterator:
    """Boots servers pinned to a host; deletes them after the test."""
    with nova_harness.pinned_servers(nova_admin, nova.image_id) as boot:
        yield boot
        nova.clear_faults()
