"""Helpers shared by the Ansible functional tests (a unique module name: every test area has a
``conftest``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cotenancy.conf import make_conf
from cotenancy.drivers.simulated.persistent import PersistentSimulatedDriver
from cotenancy.store import HistoryStore

REPO = Path(__file__).resolve().parents[3]
#: name of the test-only entry point of :class:`PersistentSimulatedDriver` (see conftest)
TEST_DRIVER = "simulated_persistent"


@dataclass
class SimCloud:
    """A persistent simulated cloud and the cotenancy configuration file that points at it."""

    state_file: Path
    config_file: Path
    store_url: str

    def driver(self) -> PersistentSimulatedDriver:
        return PersistentSimulatedDriver(self.conf())

    def conf(self):
        return make_conf([], config_files=[str(self.config_file)])

    def store(self) -> HistoryStore:
        return HistoryStore(self.store_url)

    def busy_host(self) -> str:
        """A host with at least two VMs (the synthetic placement is deterministic)."""
        inventory = self.driver().get_inventory()
        counts: dict[str, int] = {}
        for vm in inventory.vms.values():
            if vm.host_id:
                counts[vm.host_id] = counts.get(vm.host_id, 0) + 1
        return max(sorted(counts), key=lambda h: counts[h])


def trace_cloud(folder: Path, trace: Path) -> SimCloud:
    """A persistent simulated cloud of the PlanetLab-format ``trace`` (VMs named after its files),
    with its state, store and configuration in ``folder``."""
    state = folder / "cloud.pickle"
    store_url = f"sqlite:///{folder / 'history.sqlite'}"
    config = folder / "cotenancy.conf"
    config.write_text(
        f"[DEFAULT]\nstate_path = {folder}\n[simulator]\ndays = 0.05\n"
        f"[simulated]\nstate_file = {state}\ntrace = {trace}\n[store]\nconnection = {store_url}\n"
    )
    return SimCloud(state_file=state, config_file=config, store_url=store_url)
