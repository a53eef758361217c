"""The control loop: collect, predict, plan, apply, every interval.

One round reads what happened since the last round from the driver (metrics, events) into the
telemetry buffer and, when configured, the durable history store; takes a fresh inventory; hands a
:class:`ClusterState` to the strategy (which predicts and plans, including its proactive trigger);
stores the plan; and, unless in dry-run mode, gives it to the executor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oslo_config import cfg

from cotenancy import loading
from cotenancy.engine.executor import DriverExecutor, Executor
from cotenancy.model import ActionPlan, ClusterState, Event, Inventory, StepStatus, VMState

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver
    from cotenancy.engine.datasource import Datasource
    from cotenancy.store import HistoryStore, TelemetryBuffer
    from cotenancy.strategies.base import Strategy

LOG = logging.getLogger(__name__)


@dataclass(slots=True)
class RoundResult:
    """What one round saw and did."""

    now: float
    plan: ActionPlan
    samples: int
    events: list[Event] = field(default_factory=list)
    executed: bool = False
    wall_seconds: float = 0.0
    #: the strategy's share of the round: forecasting, scoring risks and planning
    plan_seconds: float = 0.0

    @property
    def failed_steps(self) -> int:
        return sum(a.status is StepStatus.FAILED for a in self.plan.actions)


class ControlLoop:
    """Runs a strategy against a driver, round after round."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        driver: Driver,
        strategy: Strategy,
        executor: Executor | None = None,
        store: HistoryStore | None = None,
        telemetry: TelemetryBuffer | None = None,
        datasource: Datasource | None = None,
        dry_run: bool | None = None,
    ) -> None:
        from cotenancy.store import TelemetryBuffer

        self.conf = conf
        self.driver = driver
        self.strategy = strategy
        self.store = store
        self.executor = executor or DriverExecutor(conf, store=store)
        self.datasource = datasource or loading.load_plugin(
            loading.DATASOURCES, conf.datasource, conf, driver
        )
        self.interval = float(conf.interval)
        self.history_window = int(conf.history_window)
        self.telemetry = telemetry or TelemetryBuffer(
            step_seconds=self.interval, capacity_steps=max(self.history_window * 4, 48)
        )
        self.dry_run = conf.dry_run if dry_run is None else dry_run
        self._last_collected: float | None = None

    def collect(self, now: float) -> tuple[int, list[Event]]:
        """Pull metrics and events since the last round into the buffer and the store."""
        start = (
            self._last_collected
            if self._last_collected is not None
            else now - self.interval * self.history_window
        )
        samples = self.datasource.get_metrics(start, now)
        future_before = self.telemetry.rejected["future"]
        self.telemetry.add(samples, not_after=now)
        if future := self.telemetry.rejected["future"] - future_before:
            LOG.warning("%d samples stamped after the round's time (%.0f) were not used", future, now)
        events = self.driver.get_events(start, now)
        if self.store is not None:
            report = self.store.add_samples(samples)
            if report.rejected:
                LOG.warning("rejected %d malformed samples: %s", report.rejected, report.reasons)
            self.store.add_events(events)
        self._last_collected = now
        return len(samples), events

    def observe(self, now: float, events: list[Event]) -> ClusterState:
        """The state the strategy decides on."""
        inventory = self.driver.get_inventory()
        if self.store is not None:
            self.store.upsert_inventory(inventory, now)
            inventory = self._apply_operator_requests(inventory)
        window = self.telemetry.window(now, self.history_window, vm_ids=sorted(inventory.vms))
        migrating = frozenset(v.id for v in inventory.vms.values() if v.state is VMState.MIGRATING)
        return ClusterState(
            now=now,
            inventory=inventory,
            telemetry=window,
            events=events,
            migrating=migrating,
            interval_seconds=self.interval,
        )

    def _apply_operator_requests(self, inventory: Inventory) -> Inventory:
        """Rules, drains, critical marks and hints that other programs set through the API.

        Their expiry times are wall-clock times, whatever clock the cloud keeps.
        """
        from cotenancy.store.requests import apply_requests, forecaster_calendar

        wall_now = time.time()
        inventory = apply_requests(self.store, inventory, wall_now)
        forecaster = getattr(self.strategy, "forecaster", None)
        if forecaster is not None and hasattr(forecaster, "hints"):
            forecaster.hints = forecaster_calendar(self.conf, self.store, wall_now)
        return inventory

    def run_once(self) -> RoundResult:
        started = time.perf_counter()
        now = self.driver.now()
        n_samples, events = self.collect(now)
        state = self.observe(now, events)
        planning = time.perf_counter()
        plan = self.strategy.plan(state)
        plan_seconds = time.perf_counter() - planning
        plan.strategy = plan.strategy or self.strategy.name
        if self.store is not None:
            self.store.save_plan(plan)
        executed = False
        if plan.actions and not self.dry_run:
            self.executor.execute(plan, self.driver)
            executed = True
        return RoundResult(
            now=now,
            plan=plan,
            samples=n_samples,
            events=events,
            executed=executed,
            wall_seconds=time.perf_counter() - started,
            plan_seconds=plan_seconds,
        )

    def run(self, rounds: int | None = None, progress: bool = False) -> list[RoundResult]:
        """Run ``rounds`` rounds, waiting one interval between them.

        With ``rounds=None`` it runs until interrupted and keeps only the latest result, so a
        long-running service does not grow.
        """
        from tqdm import tqdm

        results: list[RoundResult] = []
        bar = tqdm(total=rounds, unit="round", disable=not progress, desc=self.strategy.name)
        try:
            count = 0
            while rounds is None or count < rounds:
                result = self.run_once()
                if rounds is None:
                    results[:] = [result]
                else:
                    results.append(result)
                bar.update(1)
                bar.set_postfix(steps=len(result.plan.actions), failed=result.failed_steps)
                count += 1
                if rounds is None or count < rounds:
                    self.driver.wait(self.interval)
        finally:
            bar.close()
        return results
