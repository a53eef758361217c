"""The simulated driver behaves like a cloud: inventory, telemetry, events and the four verbs."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy import loading
from cotenancy.drivers.base import Driver
from cotenancy.drivers.simulated.driver import SimulatedDriver
from cotenancy.engine.loop import ControlLoop
from cotenancy.exceptions import ActionFailed, ConfigurationError, NotFound, TraceEnded
from cotenancy.model import Allocation, EventKind, Resource, Resources, VMState
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.setups import default_setup
from cotenancy.strategies.noop import NoopStrategy


class Crowding:
    """Stand-in interference: every VM loses 15 % per co-located VM (test only)."""

    def draw_traits(self, n_vms, rng):
        return np.ones(n_vms)

    def slowdown(self, traits, host_index, activity, n_hosts):
        counts = np.bincount(host_index[host_index >= 0], minlength=n_hosts)
        return np.where(host_index >= 0, 0.15 * (counts[np.maximum(host_index, 0)] - 1), 0.0)


@pytest.fixture
def driver(conf, make_planetlab):
    workload = make_planetlab(np.full((6, 8), 30), start=1_000_000.0)
    setup = default_setup(workload, headroom=4.0)
    assert setup.hosts.n_hosts == 4
    setup.placement[:] = [0, 0, 0, 1, 1, 1]
    cloud = SimulatedCloud(workload, setup, interference=Crowding())
    return SimulatedDriver(conf, cloud=cloud)


def test_is_loaded_by_name_as_a_driver(conf):
    """The entry point is the simulated cloud that can also persist its state between processes."""
    cls = loading.plugin_class(loading.DRIVERS, "simulated")
    assert issubclass(cls, SimulatedDriver) and issubclass(cls, Driver)


def test_inventory_lists_every_host_and_vm_with_placement(driver):
    inventory = driver.get_inventory()
    assert len(inventory.hosts) == driver.cloud.n_hosts
    assert len(inventory.vms) == 6
    assert {vm.host_id for vm in inventory.vms.values()} == {"host-0000", "host-0001"}
    assert all(vm.state is VMState.ACTIVE for vm in inventory.vms.values())


def test_wait_advances_simulated_time_and_metrics_describe_past_intervals(driver):
    start = driver.now()
    driver.wait(600.0)
    assert driver.now() == start + 600.0
    samples = driver.get_metrics(start - 300.0, driver.now())
    metrics = {s.metric for s in samples}
    assert {"cpu", "cpu_demand", "cpu_ready", "memory"} <= metrics
    assert {s.timestamp for s in samples} == {start - 300.0, start, start + 300.0}
    demand = [s.value for s in samples if s.metric == "cpu_demand" and s.vm_id == "vm-000"]
    assert demand == pytest.approx([0.3 * driver.cloud.vm_cpu[0]] * 3)


@pytest.mark.parametrize("seconds", [60.0, 450.0, -300.0])
def test_a_wait_of_no_whole_number_of_steps_is_refused_not_a_clock_that_never_moves(driver, seconds):
    start = driver.now()
    with pytest.raises(ConfigurationError, match=r"\[DEFAULT\] interval to a multiple of 300"):
        driver.wait(seconds)
    assert driver.now() == start


def test_a_control_loop_polling_faster_than_the_trace_stops_at_once_saying_why(conf):
    conf.set_override("synthetic_vms", 6, group="simulator")
    conf.set_override("interval", 60)
    loop = ControlLoop(conf, driver=SimulatedDriver(conf), strategy=NoopStrategy(conf))
    with pytest.raises(ConfigurationError, match="multiple of 300"):
        loop.run(rounds=3)
    assert loop.rounds_run == 1


def test_a_cloud_that_replayed_its_whole_trace_refuses_to_wait_saying_when_it_ended(driver):
    while not driver.cloud.finished:
        driver.wait(300.0)
    end = driver.now()
    assert end == 1_000_000.0 + 7 * 300.0
    with pytest.raises(TraceEnded, match=r"trace ended at 1970-01-12T14:21\+00:00"):
        driver.wait(300.0)
    driver.wait(0.0)
    assert driver.now() == end


def test_a_control_loop_stops_when_its_simulated_trace_ends_instead_of_planning_on_a_frozen_clock(conf):
    conf.set_override("synthetic_vms", 6, group="simulator")
    conf.set_override("days", 0.03, group="simulator")
    driver = SimulatedDriver(conf)
    loop = ControlLoop(conf, driver=driver, strategy=NoopStrategy(conf))
    results = loop.run(rounds=50)
    assert loop.trace_ended and driver.cloud.finished
    assert loop.rounds_run == len(results) == 9
    assert len({r.now for r in results}) == len(results)


def test_interference_raises_degradation_events_naming_neighbours(driver):
    driver.wait(300.0)
    events = [e for e in driver.get_events(0, driver.now() + 1) if e.kind is EventKind.DEGRADATION]
    assert events
    event = events[0]
    assert event.resource == "interference"
    assert event.severity == pytest.approx(0.3)
    assert set(event.details["neighbours"].split(",")) == set(event.vm_ids)
    ready = [s.value for s in driver.get_metrics(0, driver.now()) if s.metric == "cpu_ready"]
    assert max(ready) == pytest.approx(0.3)
    assert driver.cloud.metrics()["conflict_minutes"] > 0


def test_live_migration_takes_time_then_moves_the_vm(driver):
    driver.live_migrate("vm-000", "host-0002")
    assert driver.get_inventory().vms["vm-000"].state is VMState.MIGRATING
    with pytest.raises(ActionFailed):
        driver.live_migrate("vm-000", "host-0003")
    driver.wait(300.0)
    vm = driver.get_inventory().vms["vm-000"]
    assert (vm.host_id, vm.state) == ("host-0002", VMState.ACTIVE)
    moved = [e for e in driver.get_events(0, driver.now() + 1) if e.kind is EventKind.MIGRATION]
    assert moved[0].details == {"from": "host-0000", "to": "host-0002"}


def test_verbs_fail_with_typed_errors(driver):
    with pytest.raises(NotFound):
        driver.live_migrate("nope", "host-0001")
    with pytest.raises(NotFound):
        driver.set_host_maintenance("nope", True)
    driver.set_host_maintenance("host-0002", True)
    assert driver.get_inventory().hosts["host-0002"].maintenance
    with pytest.raises(ActionFailed):
        driver.live_migrate("vm-000", "host-0002")
    with pytest.raises(ActionFailed):
        driver.live_migrate("vm-000", "host-0000")


def _last(driver, metric: str) -> dict[str, float]:
    samples = driver.get_metrics(driver.now() - 300.0, driver.now())
    return {s.vm_id: s.value for s in samples if s.metric == metric}


@pytest.fixture
def quiet(conf, make_planetlab) -> SimulatedDriver:
    """Three VMs at 30 % on roomy hosts, without interference: what a VM gets is what it asks,
    up to its size."""
    workload = make_planetlab(np.full((3, 8), 30), start=1_000_000.0)
    workload.utilisation[Resource.MEMORY] = np.full((3, 8), 0.5)
    return SimulatedDriver(conf, cloud=SimulatedCloud(workload, default_setup(workload, headroom=4.0)))


def test_a_resize_changes_what_a_vm_may_get_not_what_its_workload_asks_for(quiet):
    """The trace is a fraction of the size the VM had when it was measured: a bigger VM does not
    make its guest busier, and a VM shrunk below its demand is starved (and says so)."""
    big, small = (quiet.get_inventory().vms[v] for v in ("vm-000", "vm-001"))
    quiet.resize("vm-000", Resources(cpu=2 * big.size.cpu, memory=big.size.memory))
    quiet.resize("vm-001", Resources(cpu=0.2 * small.size.cpu, memory=small.size.memory))
    quiet.wait(300.0)

    inventory = quiet.get_inventory()
    assert inventory.vms["vm-000"].size.cpu == 2 * big.size.cpu
    assert inventory.vms["vm-000"].vcpus == 2 * big.vcpus
    assert inventory.vms["vm-001"].vcpus == 1
    demand, cpu = _last(quiet, "cpu_demand"), _last(quiet, "cpu")
    assert demand["vm-000"] == cpu["vm-000"] == pytest.approx(0.3 * big.size.cpu)
    assert demand["vm-001"] == pytest.approx(0.3 * small.size.cpu)
    assert cpu["vm-001"] == pytest.approx(0.2 * small.size.cpu)
    starved = [e for e in quiet.get_events(quiet.now() - 300.0, quiet.now()) if "vm-001" in e.vm_ids]
    assert starved and starved[-1].resource == "cpu"
    assert not [e for e in quiet.get_events(quiet.now() - 300.0, quiet.now()) if "vm-000" in e.vm_ids]


def test_a_cpu_limit_caps_what_a_vm_gets(driver):
    driver.set_allocation("vm-002", Allocation(limit=Resources(cpu=100.0), shares=500))
    driver.wait(300.0)
    assert driver.get_inventory().vms["vm-002"].allocation.limit.cpu == 100.0
    assert driver.cloud.cpu_state(driver.cloud.time).allocated[2] == pytest.approx(100.0)


def test_a_vm_resized_below_the_memory_it_uses_is_degraded(quiet):
    size = quiet.get_inventory().vms["vm-000"].size
    quiet.resize("vm-000", Resources(cpu=size.cpu, memory=0.25 * size.memory))
    quiet.wait(300.0)
    assert _last(quiet, "memory")["vm-000"] == pytest.approx(0.25 * size.memory)
    degraded = [e for e in quiet.get_events(quiet.now() - 300.0, quiet.now()) if "vm-000" in e.vm_ids]
    assert degraded and degraded[-1].resource == "memory"


@pytest.mark.parametrize(
    "size", [Resources(cpu=500.0, memory=-2048.0), Resources(cpu=float("nan"), memory=1024.0)]
)
def test_a_negative_or_unknown_size_is_refused_and_changes_nothing(driver, size):
    before = driver.get_inventory().vms["vm-001"].size
    with pytest.raises(ActionFailed, match="finite and not negative"):
        driver.resize("vm-001", size)
    assert driver.get_inventory().vms["vm-001"].size == before


def test_loaded_from_configuration_alone_replays_the_synthetic_workload(conf):
    conf.set_override("synthetic_vms", 12, group="simulator")
    conf.set_override("days", 0.05, group="simulator")
    driver = loading.load_plugin(loading.DRIVERS, "simulated", conf)
    inventory = driver.get_inventory()
    assert len(inventory.vms) == 12
    assert all(vm.host_id in inventory.hosts for vm in inventory.vms.values())
    before = driver.now()
    driver.wait(300.0)
    assert driver.now() == before + 300.0
