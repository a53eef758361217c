"""The persistent simulated cloud: one cloud shared by separate processes through a state file.

Ansible runs each task in its own process; these tests say what a plan task and an apply task
(or two operators at once) may rely on.
"""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from cotenancy.conf import make_conf
from cotenancy.drivers.simulated.persistent import PersistentSimulatedDriver
from cotenancy.exceptions import ConfigurationError, NotFound
from cotenancy.model import Allocation, Resources


def small_conf(state_file: Path | None):
    conf = make_conf([], config_files=[])
    conf.set_override("synthetic_vms", 8, group="simulator")
    conf.set_override("days", 0.05, group="simulator")
    conf.register_opts(PersistentSimulatedDriver.list_opts(), group="simulated")
    if state_file is not None:
        conf.set_override("state_file", str(state_file), group="simulated")
    return conf


def placement(driver: PersistentSimulatedDriver) -> dict[str, tuple[str | None, float, int]]:
    return {
        vm.id: (vm.host_id, vm.size.memory, vm.allocation.shares)
        for vm in driver.get_inventory().vms.values()
    }


def test_first_driver_builds_the_cloud_and_writes_it_privately(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    driver = PersistentSimulatedDriver(small_conf(state))
    assert state.is_file()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert len(driver.get_inventory().vms) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.pickle", "cloud.pickle.lock"]


def test_a_new_process_sees_the_changes_of_the_previous_one(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    first = PersistentSimulatedDriver(small_conf(state))
    inventory = first.get_inventory()
    vm = sorted(inventory.vms.values(), key=lambda v: v.id)[0]
    target = next(h for h in sorted(inventory.hosts) if h != vm.host_id)
    first.resize(vm.id, Resources(cpu=vm.size.cpu, memory=vm.size.memory / 2))
    first.set_allocation(vm.id, Allocation(shares=2000))
    first.set_host_maintenance(target, True)
    before = first.now()
    first.wait(600)

    second = PersistentSimulatedDriver(small_conf(state))
    assert second.now() == before + 600
    seen = second.get_inventory()
    assert seen.vms[vm.id].size.memory == vm.size.memory / 2
    assert seen.vms[vm.id].allocation.shares == 2000
    assert seen.hosts[target].maintenance is True


def test_an_open_driver_reads_what_another_one_saved(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    planner = PersistentSimulatedDriver(small_conf(state))
    applier = PersistentSimulatedDriver(small_conf(state))
    vm_id = sorted(planner.get_inventory().vms)[1]
    applier.set_allocation(vm_id, Allocation(shares=3000))
    assert planner.get_inventory().vms[vm_id].allocation.shares == 3000
    # and a change by the stale one builds on the newer cloud instead of overwriting it
    planner.set_allocation(sorted(planner.get_inventory().vms)[2], Allocation(shares=4000))
    fresh = placement(PersistentSimulatedDriver(small_conf(state)))
    assert fresh[vm_id][2] == 3000
    assert fresh[sorted(fresh)[2]][2] == 4000


def test_a_refused_change_is_not_saved(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    driver = PersistentSimulatedDriver(small_conf(state))
    saved = state.read_bytes()
    with pytest.raises(NotFound):
        driver.set_host_maintenance("no-such-host", True)
    assert state.read_bytes() == saved


def _set_shares(state: str, vm_ids: list[str], shares: int) -> None:
    driver = PersistentSimulatedDriver(small_conf(Path(state)))
    for vm_id in vm_ids:
        driver.set_allocation(vm_id, Allocation(shares=shares))


def test_concurrent_processes_lose_no_change(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    vm_ids = sorted(PersistentSimulatedDriver(small_conf(state)).get_inventory().vms)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_set_shares, args=(str(state), vm_ids[i::2], 1500 + i)) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    after = placement(PersistentSimulatedDriver(small_conf(state)))
    shares = {vm_id: value[2] for vm_id, value in after.items()}
    assert shares == {vm_id: 1500 + (i % 2) for i, vm_id in enumerate(vm_ids)}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cloud.pickle.")]


def test_a_damaged_state_file_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "cloud.pickle"
    state.write_bytes(b"not a pickle")
    with pytest.raises(ConfigurationError, match="cloud.pickle cannot be read"):
        PersistentSimulatedDriver(small_conf(state))
    assert state.read_bytes() == b"not a pickle"


def test_a_state_file_in_a_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        PersistentSimulatedDriver(small_conf(tmp_path / "absent" / "cloud.pickle"))


def test_without_a_state_file_the_cloud_stays_in_memory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    driver = PersistentSimulatedDriver(small_conf(None))
    driver.wait(300)
    assert list(tmp_path.iterdir()) == []


def test_a_state_file_from_another_simulator_version_is_refused_not_misread(tmp_path: Path) -> None:
    import pickle

    state = tmp_path / "cloud.pickle"
    PersistentSimulatedDriver(small_conf(state))
    saved = pickle.loads(state.read_bytes())
    saved["simulator"] = "written-by-older-code"
    state.write_bytes(pickle.dumps(saved))
    with pytest.raises(ConfigurationError, match="another version of the simulator"):
        PersistentSimulatedDriver(small_conf(state))
