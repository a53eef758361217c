"""Watcher strategies, unmodified, driving the simulated cloud.

Each round: the simulated cloud's inventory becomes a Watcher compute model, its telemetry a
Watcher datasource (:class:`SimulatorSource`); a strategy is loaded by name through Watcher's
``DefaultStrategyLoader`` and executed; the actions of its solution are carried out on the
simulated cloud the way Watcher's applier would carry them out on Nova (live migrations,
compute-service state, resizes to a flavor); then five minutes of simulated time pass.

Run from the Watcher venv (it imports Watcher). Every strategy sees the same cloud, the same
metrics and the same units, so their figures compare.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from watcher.common import utils
from watcher.decision_engine.loading import default as de_loading
from watcher.decision_engine.model import element

from cotenancy.drivers.simulated.driver import SimulatedDriver
from cotenancy.exceptions import DriverError
from cotenancy.model import Resources
from cotenancy.plugins.watcher import cloud_model, datasource, translate

#: one Watcher vCPU of the simulated cloud, in MHz: fine enough for 500 MHz VMs on 1860 MHz cores
SIM_MHZ_PER_VCPU = 100.0
#: metrics kept for Watcher's strategies (the longest default period among them is 2 h)
HISTORY_SECONDS = 7200.0
#: CloudSim's reference setup: 800 hosts for the 1052 VMs of PlanetLab 20110303
REFERENCE_HOSTS_PER_VM = 800 / 1052


def reference_cloud(
    planetlab_day: Path, vms: int | None = None, seed: int = 0, interference: bool = True
) -> SimulatedDriver:
    """A PlanetLab day on CloudSim's reference setup, scaled to ``vms`` VMs with hosts in the
    reference ratio; co-located VMs interfere as in ``cotenancy.sim.runner.make_cloud``."""
    from cotenancy.conf import make_conf
    from cotenancy.sim.cloud import SimulatedCloud
    from cotenancy.sim.cloudsim import cloudsim_setup
    from cotenancy.sim.interference import InterferenceModel
    from cotenancy.sim.traces import load_planetlab

    workload = load_planetlab(planetlab_day, limit=vms)
    n_hosts = max(2, round(workload.n_vms * REFERENCE_HOSTS_PER_VM))
    cloud = SimulatedCloud(
        workload,
        cloudsim_setup(workload, n_hosts=n_hosts),
        interference=InterferenceModel() if interference else None,
        seed=seed,
    )
    return SimulatedDriver(make_conf([], config_files=[]), cloud=cloud)


class SimulatorSource(datasource.MetricSource):
    """What a Gnocchi would have recorded about the simulated cloud, in Watcher's units.

    Instance CPU is what the VM got (the ``cpu`` metric), in percent of its vCPUs; instance
    memory is its memory use, or its size when the setup does not model memory use. Samples are
    stamped with the start of the step they describe, as Gnocchi stamps its aggregates, so the
    newest one is ``now - step`` and covers the last step.
    """

    def __init__(self, view: cloud_model.WatcherView, driver: SimulatedDriver, history: float) -> None:
        super().__init__(view.model)
        self._now = driver.now()
        self.step = driver.cloud.step_seconds
        frames = driver.metric_frames(self._now - history, self._now + 1e-6)
        self.times = np.array([stamp for stamp, _, _ in frames], dtype=float)
        uuid_of = view.uuid_of_vm()
        inventory_sizes = {
            u: (inst.vcpus * view.mhz_per_vcpu, float(inst.memory))
            for u, inst in view.model.get_all_instances().items()
        }
        self.cpu: dict[str, np.ndarray] = {}
        self.ram: dict[str, np.ndarray] = {}
        for column, (_, ids, values) in enumerate(frames):
            cpu = values.get("cpu")
            memory = values.get("memory")
            for position, vm_id in enumerate(ids):
                watcher_id = uuid_of.get(vm_id)
                if watcher_id is None:
                    continue
                cpu_size, mem_size = inventory_sizes[watcher_id]
                if watcher_id not in self.cpu:
                    self.cpu[watcher_id] = np.full(len(frames), np.nan)
                    self.ram[watcher_id] = np.full(len(frames), np.nan)
                if cpu is not None:
                    self.cpu[watcher_id][column] = 100.0 * float(cpu[position]) / max(cpu_size, 1e-9)
                self.ram[watcher_id][column] = float(memory[position]) if memory is not None else mem_size

    def now(self) -> float:
        return self._now

    def sample_times(self, start: float, end: float) -> list[float]:
        """The steps the simulation has recorded in ``[start, end)``."""
        return self.times[(self.times >= start) & (self.times < end)].tolist()

    def instance_usage(self, uuid: str, meter: str, start: float, end: float) -> dict[float, float]:
        series = (self.cpu if meter == "instance_cpu_usage" else self.ram).get(uuid)
        if series is None:
            return {}
        keep = (self.times >= start) & (self.times < end) & np.isfinite(series)
        return dict(zip(self.times[keep].tolist(), series[keep].tolist(), strict=True))


def sim_flavors(driver: SimulatedDriver) -> list[translate.Flavor]:
    """The simulated cloud's VM types as Nova flavors (vCPUs counted in SIM_MHZ_PER_VCPU)."""
    cloud = driver.cloud
    seen: dict[str, translate.Flavor] = {}
    for name, cpu, memory in zip(
        cloud.setup.vm_flavors, cloud.setup.vm_cpu, cloud.setup.vm_memory, strict=False
    ):
        if name and name not in seen:
            seen[name] = translate.Flavor(
                name=name, vcpus=int(round(cpu / SIM_MHZ_PER_VCPU)), ram=int(memory), disk=10
            )
    return sorted(seen.values(), key=lambda f: (f.vcpus, f.ram))


@dataclass(slots=True)
class RoundResult:
    """What one strategy did in one round."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    #: what a balancing strategy's trigger saw this round (see :func:`balancing_evidence`)
    evidence: dict[str, float] = field(default_factory=dict)


def _default(strategy: Any, name: str) -> Any:
    return strategy.input_parameters.get(name, strategy.get_schema()["properties"][name]["default"])


def balancing_evidence(strategy: Any) -> dict[str, float]:
    """The figures that decide whether Watcher's balancing strategies move a VM, read through the
    strategy's own datasource backend and parameters before it runs (so they are the very values
    it then reads from the backend's cache).

    ``workload_stabilization`` acts only when the standard deviation of its hosts' CPU load
    (``host_cpu_usage`` / 100 over ``periods.compute_node``, hosts without samples left out)
    exceeds ``thresholds.instance_cpu_usage``. ``workload_balance`` acts only when a host's CPU
    load (its instances' ``instance_cpu_usage`` x vCPUs over ``period``) reaches ``threshold`` %
    *and* that host has an instance whose removal leaves the host at or above the average load of
    all hosts (``choose_instance_to_migrate``): a host holding one VM never qualifies.
    """
    model = strategy.compute_model
    backend = strategy.datasource_backend
    nodes = [
        n
        for n in model.get_all_compute_nodes().values()
        if n.state == element.ServiceState.ONLINE.value and n.status == element.ServiceState.ENABLED.value
    ]
    granularity = _default(strategy, "granularity")
    if strategy.get_name() == "workload_stabilization":
        metric = "instance_cpu_usage"
        if metric not in _default(strategy, "metrics"):
            return {}
        period = _default(strategy, "periods")["compute_node"]
        aggregate = _default(strategy, "aggregation_method")["compute_node"]
        loads = []
        for node in nodes:
            value = backend.statistic_aggregation(
                node, "compute_node", "host_cpu_usage", period, aggregate, granularity
            )
            if value is not None:
                loads.append(value / 100.0)
        return {
            "host_cpu_sd": float(np.std(loads)) if loads else 0.0,
            "threshold": float(_default(strategy, "thresholds")[metric]),
            "max_host_cpu": 100.0 * max(loads, default=0.0),
        }
    if strategy.get_name() == "workload_balance":
        if _default(strategy, "metrics") != "instance_cpu_usage":
            return {}
        period = _default(strategy, "period")
        threshold = float(_default(strategy, "threshold"))
        per_node = []
        for node in nodes:
            workloads = []
            for instance in model.get_node_instances(node):
                util = backend.statistic_aggregation(
                    instance, "instance", "instance_cpu_usage", period, "mean", granularity
                )
                if util is not None:
                    workloads.append(util * instance.vcpus / 100.0)
            per_node.append((node, sum(workloads), workloads))
        average = sum(w for _, w, _ in per_node) / len(per_node) if per_node else 0.0
        over = [(n, w, ws) for n, w, ws in per_node if w / n.vcpus * 100.0 >= threshold]
        movable = [ws for _, w, ws in over if any((w - average) - x >= 0 for x in ws)]
        return {
            "hosts_over": float(len(over)),
            "hosts_over_with_a_movable_vm": float(len(movable)),
            "threshold": threshold,
            "max_host_cpu": max((w / n.vcpus * 100.0 for n, w, _ in per_node), default=0.0),
        }
    return {}


@dataclass(slots=True)
class WatcherOnSimulator:
    """Runs one Watcher strategy against one simulated cloud, round after round."""

    strategy_name: str
    driver: SimulatedDriver
    input_parameters: dict[str, Any] = field(default_factory=dict)
    history: float = HISTORY_SECONDS
    rounds: list[RoundResult] = field(default_factory=list)
    #: record :func:`balancing_evidence` every round (Watcher's balancing strategies only)
    explain: bool = False

    def parameters(self, strategy: Any) -> utils.Struct:
        params = utils.Struct(dict(self.input_parameters))
        utils.StrictDefaultValidatingDraft4Validator(strategy.get_schema()).validate(params)
        return params

    def run_round(self) -> RoundResult:
        """Plan with the strategy on the cloud as it is now and carry the plan out."""
        started = time.perf_counter()
        result = RoundResult()
        inventory = self.driver.get_inventory()
        view = cloud_model.compute_model_from_inventory(inventory, SIM_MHZ_PER_VCPU)
        strategy = de_loading.DefaultStrategyLoader().load(self.strategy_name)
        strategy._compute_model = view.model
        strategy._datasource_backend = datasource.CotenancyDatasource(
            SimulatorSource(view, self.driver, self.history)
        )
        if hasattr(strategy, "migrations_in_flight"):
            # the moves under way as Nova's records would list them (there is no Nova to ask)
            strategy.migrations_in_flight = lambda: cloud_model.migration_records(inventory)
        strategy.input_parameters = self.parameters(strategy)
        try:
            if self.explain:
                result.evidence = balancing_evidence(strategy)
            solution = strategy.execute()
        except Exception as exc:  # a Watcher strategy that fails a round does nothing that round
            result.error = f"{type(exc).__name__}: {exc}"
            result.seconds = time.perf_counter() - started
            self.rounds.append(result)
            return result
        result.actions = [dict(a) for a in solution.actions]
        self.apply(view, result.actions, result)
        result.seconds = time.perf_counter() - started
        self.rounds.append(result)
        return result

    def apply(
        self, view: cloud_model.WatcherView, actions: Iterable[dict[str, Any]], result: RoundResult
    ) -> None:
        """Do what Watcher's applier would: service state first, then migrations, then resizes
        (the weight planner's order)."""
        order = {"change_nova_service_state": 0, "migrate": 1, "resize": 2}
        flavors = {f.name: f for f in sim_flavors(self.driver)}
        for action in sorted(actions, key=lambda a: order.get(a["action_type"], 9)):
            params = action["input_parameters"]
            try:
                if action["action_type"] == "migrate":
                    vm_id = view.vm_by_uuid[params["resource_id"]]
                    target = params.get("destination_node")
                    if not target:
                        result.failed.append(f"{vm_id}: migration without destination")
                        continue
                    self.driver.live_migrate(vm_id, view.host_by_hostname[target])
                elif action["action_type"] == "change_nova_service_state":
                    host_id = view.host_by_hostname[params["resource_name"]]
                    self.driver.set_host_maintenance(host_id, params["state"] == "disabled")
                elif action["action_type"] == "resize":
                    vm_id = view.vm_by_uuid[params["resource_id"]]
                    flavor = flavors[params["flavor"]]
                    self.driver.resize(
                        vm_id, Resources(cpu=flavor.vcpus * SIM_MHZ_PER_VCPU, memory=float(flavor.ram))
                    )
                else:
                    result.failed.append(f"no simulated applier for {action['action_type']}")
                    continue
                result.applied += 1
            except (DriverError, KeyError) as exc:
                result.failed.append(f"{action['action_type']}: {exc}")
