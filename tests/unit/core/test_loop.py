"""The control loop: what a round collects, hands to the strategy, stores and carries out."""

from __future__ import annotations

from cotenancy.drivers.base import Driver
from cotenancy.engine.loop import ControlLoop
from cotenancy.model import (
    VM,
    ActionKind,
    ActionPlan,
    ClusterState,
    Event,
    EventKind,
    Host,
    Inventory,
    MetricSample,
    Resources,
    StepStatus,
)
from cotenancy.store import HistoryStore
from cotenancy.strategies.base import Strategy


class TwoHostCloud(Driver):
    """Two hosts, two VMs on h1; VM ``hot`` uses its whole CPU. Time (aligned to the 300 s grid)
    advances only by wait()."""

    name = "two-hosts"

    def __init__(self, conf) -> None:
        super().__init__(conf)
        self.clock = 1_699_999_800.0
        self.placement = {"hot": "h1", "calm": "h1"}
        self.migrations: list[tuple[str, str]] = []

    def now(self) -> float:
        return self.clock

    def wait(self, seconds: float) -> None:
        self.clock += seconds

    def get_inventory(self) -> Inventory:
        size = Resources(cpu=2000, memory=1024)
        return Inventory(
            hosts={h: Host(id=h, name=h, capacity=Resources(cpu=4000, memory=8192)) for h in ("h1", "h2")},
            vms={v: VM(id=v, name=v, host_id=h, size=size) for v, h in self.placement.items()},
        )

    def get_metrics(self, start, end, vm_ids=None):
        samples = []
        t = start
        while t < end:
            samples.append(MetricSample("hot", t, "cpu", 2000.0))
            samples.append(MetricSample("calm", t, "cpu", 100.0))
            t += 300.0
        return samples

    def get_events(self, start, end):
        return [Event(timestamp=start, kind=EventKind.DEGRADATION, vm_ids=("calm",), host_id="h1")]

    def live_migrate(self, vm_id, target_host_id, timeout=None):
        self.migrations.append((vm_id, target_host_id))
        self.placement[vm_id] = target_host_id

    def resize(self, vm_id, size, timeout=None):
        raise AssertionError("not expected")

    def set_host_maintenance(self, host_id, enabled, timeout=None):
        raise AssertionError("not expected")


class MoveHottestOffH1(Strategy):
    """Moves the VM with the highest latest CPU off h1, once; records what it saw."""

    name = "move-hottest"

    def __init__(self, conf) -> None:
        super().__init__(conf)
        self.seen: list[ClusterState] = []

    def plan(self, state: ClusterState) -> ActionPlan:
        self.seen.append(state)
        plan = ActionPlan(strategy=self.name)
        cpu = state.telemetry.latest("cpu")
        hottest = state.telemetry.vm_ids[int(cpu.argmax())]
        if state.inventory.vms[hottest].host_id == "h1":
            plan.add(
                ActionKind.LIVE_MIGRATE,
                vm_id=hottest,
                source_host_id="h1",
                target_host_id="h2",
                reason="hottest VM on h1",
            )
        return plan


def test_a_round_feeds_the_strategy_and_carries_out_its_plan(conf, tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    driver, strategy = TwoHostCloud(conf), MoveHottestOffH1(conf)
    loop = ControlLoop(conf, driver=driver, strategy=strategy, store=store)

    result = loop.run_once()

    state = strategy.seen[0]
    assert state.telemetry.vm_ids == ["calm", "hot"]
    assert list(state.telemetry.latest("cpu")) == [100.0, 2000.0]
    assert result.plan.actions[0].status is StepStatus.SUCCEEDED
    assert driver.migrations == [("hot", "h2")]
    stored = store.get_plan(result.plan.id)
    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED]
    assert store.events(0, driver.clock + 1, kinds=[EventKind.DEGRADATION])
    assert store.samples(0, driver.clock + 1, vm_ids=["hot"])


def test_dry_run_stores_the_plan_but_changes_nothing(conf, tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    driver = TwoHostCloud(conf)
    loop = ControlLoop(conf, driver=driver, strategy=MoveHottestOffH1(conf), store=store, dry_run=True)

    result = loop.run_once()

    assert driver.migrations == []
    assert store.get_plan(result.plan.id).actions[0].status is StepStatus.PENDING


def test_rounds_wait_one_interval_and_collect_only_new_samples(conf):
    driver = TwoHostCloud(conf)
    loop = ControlLoop(conf, driver=driver, strategy=MoveHottestOffH1(conf))
    results = loop.run(rounds=3)
    assert driver.clock == 1_699_999_800.0 + 2 * conf.interval
    assert [r.samples for r in results] == [2 * conf.history_window, 2, 2]
    assert driver.migrations == [("hot", "h2")]
