"""The control loop: collect, predict, plan, apply, every interval.

One round reads what happened since the last round from the driver (metrics, events) into the
telemetry buffer and, when configured, the durable history store; takes a fresh inventory; flags
anomalous usage (``[predict] detect_anomalies``); hands a :class:`ClusterState` to the strategy
(which predicts and plans, including its proactive trigger); stores the plan; and, unless in
dry-run mode, gives it to the executor (a round without steps lets the executor follow up the
plans of earlier rounds whose steps run later, such as vCenter scheduled tasks).

The store receives each sample and event once, although a new loop (a restarted service, every
``cotenancy plan``) reads the whole history window again to warm its buffer up: the store's keys
leave out what it holds. A round that fails does not end :meth:`ControlLoop.run`: the next one
starts an interval later, up to ``[DEFAULT] max_failed_rounds`` failures in a row.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from oslo_config import cfg

from cotenancy import loading
from cotenancy.conf.predict import telemetry_window_steps
from cotenancy.engine.executor import DriverExecutor, Executor
from cotenancy.exceptions import ConfigurationError, CotenancyError, SchemaMismatch, TraceEnded
from cotenancy.model import (
    ActionPlan,
    ClusterState,
    Event,
    Inventory,
    MetricSample,
    StepStatus,
    VMState,
)

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver
    from cotenancy.engine.datasource import Datasource
    from cotenancy.predict.anomaly import AnomalyDetector
    from cotenancy.store import HistoryStore, TelemetryBuffer
    from cotenancy.strategies.base import Strategy

LOG = logging.getLogger(__name__)

#: errors that another round cannot fix: :meth:`ControlLoop.run` stops on the first one (among
#: them :class:`~cotenancy.exceptions.AuthenticationFailed`: credentials or a certificate rejected)
FATAL_ERRORS: tuple[type[Exception], ...] = (ConfigurationError, SchemaMismatch)


class _StopRequested(Exception):
    """Raised into the wait between two rounds when a stop is requested (never escapes :meth:`run`)."""


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
    #: usage far above its forecast this round (``EventKind.ANOMALY`` events, also stored)
    anomalies: list[Event] = field(default_factory=list)

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
        anomaly_detector: AnomalyDetector | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only``: read history and the requests other programs made through the API from
        ``store`` but write nothing to it (a preview such as Ansible's check mode, whose plan must
        be the one a real run would make)."""
        from cotenancy.store import TelemetryBuffer

        self.conf = conf
        self.driver = driver
        self.strategy = strategy
        self.store = store
        #: where samples, events, inventory and plans are written: None in a read-only loop
        self.written_store = None if read_only else store
        self.executor = executor or DriverExecutor(conf, store=self.written_store)
        self.datasource = datasource or loading.load_plugin(
            loading.DATASOURCES, conf.datasource, conf, driver
        )
        self.interval = float(conf.interval)
        self.history_window = int(conf.history_window)
        #: intervals of telemetry the strategy is handed, as the API's: the predictors' whole window
        #: (a day and "the same time yesterday"), even where ``history_window`` is short
        self.window_steps = telemetry_window_steps(conf)
        self.telemetry = telemetry or TelemetryBuffer(
            step_seconds=self.interval, capacity_steps=self.window_steps + max(self.history_window, 12)
        )
        self.dry_run = conf.dry_run if dry_run is None else dry_run
        self.max_failed_rounds = int(conf.max_failed_rounds)
        self.raw_retention_seconds = 3600.0 * float(conf.store.raw_retention_hours)
        self.downsample_step = float(conf.store.downsample_step)
        self._retention_ran_at: float | None = None
        #: rounds of the latest :meth:`run` that failed
        self.failed_rounds = 0
        #: rounds the latest :meth:`run` ran (failed ones too), and the steps their plans held and
        #: that failed: a run without a number of rounds keeps only its latest result
        self.rounds_run = 0
        self.steps_planned = 0
        self.steps_failed = 0
        #: whether the latest :meth:`run` stopped because a simulated cloud replayed its whole trace
        self.trace_ended = False
        self._last_collected: float | None = None
        self._stop_requested = False
        self._waiting = False
        if anomaly_detector is None:
            from cotenancy.predict.anomaly import configured_detector

            anomaly_detector = configured_detector(conf, strategy)
        self.anomaly_detector = anomaly_detector

    def collect(self, now: float) -> tuple[int, list[Event]]:
        """Pull metrics and events since the last round into the buffer and the store.

        A loop's first round reads the history window from the driver, and what the predictors
        look back over before it from the history store (:meth:`_warm_up`), so a restarted
        service forecasts from the same day of history at once; the store keeps only what it does
        not hold yet (:meth:`_store`).
        """
        warm_events: list[Event] = []
        if self._last_collected is not None:
            start = self._last_collected
        else:
            start = now - self.interval * self.history_window
            warm_events = self._warm_up(now - self.interval * self.window_steps, start)
        samples = self.datasource.get_metrics(start, now)
        future_before = self.telemetry.rejected["future"]
        self.telemetry.add(samples, not_after=now)
        if future := self.telemetry.rejected["future"] - future_before:
            LOG.warning("%d samples stamped after the round's time (%.0f) were not used", future, now)
        events = self.driver.get_events(start, now)
        if self.written_store is not None:
            self._store(self.written_store, samples, events, start, now)
        self._last_collected = now
        return len(samples), warm_events + events

    def _warm_up(self, start: float, end: float) -> list[Event]:
        """Load ``[start, end)`` from the history store into the buffer, on the buffer's bucket
        grid so each stored mean fills one bucket; return the period's events (the risk model's
        memory of past conflicts starts from them). Nothing without a store."""
        step = self.interval
        start, end = math.floor(start / step) * step, math.floor(end / step) * step
        if self.store is None or end <= start:
            return []
        stored = self.store.series(start, end, step)
        for metric, values in stored.values.items():
            for column, stamp in enumerate(stored.timestamps.tolist()):
                present = np.flatnonzero(~np.isnan(values[:, column]))
                if present.size:
                    ids = [stored.vm_ids[i] for i in present]
                    self.telemetry.add_frame(stamp, ids, {metric: values[present, column]})
        return self.store.events(start, end)

    def _store(
        self, store: HistoryStore, samples: list[MetricSample], events: list[Event], start: float, now: float
    ) -> None:
        """Store the samples and events of ``[start, now)``.

        The period read overlaps what is stored when the loop restarts, when a round that failed
        half-way is read again, or when another process (``cotenancy plan``) writes to the same
        store; the store's keys leave out the samples and events it holds. Except for raw samples
        in buckets that retention has replaced by means: the key cannot see those, so when the
        period reaches back past ``raw_retention_hours`` the loop leaves them out itself.
        """
        if self.raw_retention_seconds > 0 and start < now - self.raw_retention_seconds:
            means = store.downsampled_until(start, now, self.downsample_step)
            kept = [s for s in samples if not _in_a_mean(s, means)] if means else samples
            if left_out := len(samples) - len(kept):
                LOG.debug("%d samples already downsampled in the history store were left out", left_out)
            samples = kept
        report = store.add_samples(samples, not_after=now)
        if report.rejected:
            LOG.warning("rejected %d malformed samples: %s", report.rejected, report.reasons)
        if report.duplicates:
            LOG.debug("%d samples already in the history store were not stored again", report.duplicates)
        if events:
            store.add_events(events)

    def apply_retention(self, now: float) -> None:
        """Raw samples older than ``[store] raw_retention_hours`` become ``downsample_step``
        means, at most once a ``downsample_step``; ``raw_retention_hours = 0`` keeps them all."""
        if self.written_store is None or self.raw_retention_seconds <= 0:
            return
        if self._retention_ran_at is not None and now - self._retention_ran_at < self.downsample_step:
            return
        removed = self.written_store.downsample(now - self.raw_retention_seconds, self.downsample_step)
        self._retention_ran_at = now
        if removed:
            LOG.info(
                "retention: %d raw samples older than %g h replaced by %g s means",
                removed,
                self.raw_retention_seconds / 3600.0,
                self.downsample_step,
            )

    def observe(self, now: float, events: list[Event]) -> ClusterState:
        """The state the strategy decides on."""
        inventory = self.driver.get_inventory()
        if self.written_store is not None:
            self.written_store.upsert_inventory(inventory, now)
        if self.store is not None:
            inventory = self._apply_operator_requests(inventory)
        window = self.telemetry.window(now, self.window_steps, vm_ids=sorted(inventory.vms))
        migrating = frozenset(v.id for v in inventory.vms.values() if v.state is VMState.MIGRATING)
        return ClusterState(
            now=now,
            inventory=inventory,
            telemetry=window,
            events=events,
            migrating=migrating,
            interval_seconds=self.interval,
        )

    def detect_anomalies(self, state: ClusterState) -> list[Event]:
        """Usage far above its forecast: logged as WARNINGs and kept in the history store.

        Detection serves the operator, not the plan, so a detector that fails is logged at ERROR
        and the round plans on: a strategy that does not forecast (``lr-mmt``) must not stop over
        a forecaster model trained for other telemetry, which the predictive strategy, sharing the
        model, reports itself. A traceback comes only with errors the project did not raise on
        purpose (likely bugs).
        """
        if self.anomaly_detector is None:
            return []
        try:
            found = self.anomaly_detector.detect(state)
        except Exception as exc:
            LOG.error(
                "anomaly detection failed this round, the round plans on without it: %s: %s",
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, CotenancyError),
            )
            return []
        from cotenancy.predict.anomaly import affected

        for event in found:
            LOG.warning("anomaly on %s: %s", affected(event), event.message)
        if found and self.written_store is not None:
            self.written_store.add_events(found)
        return found

    def _apply_operator_requests(self, inventory: Inventory) -> Inventory:
        """Rules, drains, critical marks and hints that other programs set through the API.

        Their expiry times are wall-clock times, whatever clock the cloud keeps.
        """
        from cotenancy.store.requests import apply_operator_requests

        detector = self.anomaly_detector
        # the detector usually shares the strategy's forecaster: each one gets the calendar once
        forecasters = (getattr(self.strategy, "forecaster", None), detector and detector.forecaster)
        return apply_operator_requests(self.conf, self.store, inventory, forecasters, time.time())

    def run_once(self) -> RoundResult:
        started = time.perf_counter()
        now = self.driver.now()
        n_samples, events = self.collect(now)
        self.apply_retention(now)
        state = self.observe(now, events)
        anomalies = self.detect_anomalies(state)
        planning = time.perf_counter()
        plan = self.strategy.plan(state)
        plan_seconds = time.perf_counter() - planning
        plan.strategy = plan.strategy or self.strategy.name
        if self.written_store is not None:
            self.written_store.save_plan(plan)
        executed = False
        if plan.actions and not self.dry_run:
            self.executor.execute(plan, self.driver)
            executed = True
        elif not self.dry_run:
            self.executor.follow_up(self.driver)
        return RoundResult(
            now=now,
            plan=plan,
            samples=n_samples,
            events=events,
            executed=executed,
            wall_seconds=time.perf_counter() - started,
            plan_seconds=plan_seconds,
            anomalies=anomalies,
        )

    def run(self, rounds: int | None = None, progress: bool = False) -> list[RoundResult]:
        """Run ``rounds`` rounds, waiting one interval between them.

        With ``rounds=None`` it runs until interrupted and keeps only the latest result, so a
        long-running service does not grow.

        A failed round (a cloud API timing out, the history store unreachable, a bug) is logged,
        counted in :attr:`failed_rounds` and, with a finite ``rounds``, counts as one of them
        without a result; the next round starts one interval later, so one transient fault does
        not stop the service. After ``max_failed_rounds`` failures in a row the last error is
        raised. Errors that waiting cannot fix (:data:`FATAL_ERRORS`, such as rejected credentials)
        are raised at once, and :class:`KeyboardInterrupt` always stops the loop. After
        :meth:`request_stop` it returns the results so far once the round in progress has ended,
        and so it does when a simulated cloud has replayed its whole trace (:attr:`trace_ended`).
        """
        from tqdm import tqdm

        results: list[RoundResult] = []
        self.failed_rounds = self.rounds_run = self.steps_planned = self.steps_failed = 0
        self.trace_ended = False
        failed_in_a_row = 0
        bar = tqdm(total=rounds, unit="round", disable=not progress, desc=self.strategy.name)
        self._stop_requested = False
        try:
            while (rounds is None or self.rounds_run < rounds) and not self._stop_requested:
                try:
                    result = self.run_once()
                except FATAL_ERRORS:
                    raise
                except Exception as exc:
                    self.failed_rounds += 1
                    failed_in_a_row += 1
                    giving_up = failed_in_a_row >= self.max_failed_rounds
                    last = rounds is not None and self.rounds_run + 1 >= rounds
                    self._log_failed_round(exc, failed_in_a_row, giving_up or last)
                    if giving_up:
                        raise
                    bar.set_postfix(failed_rounds=self.failed_rounds)
                else:
                    failed_in_a_row = 0
                    self.steps_planned += len(result.plan.actions)
                    self.steps_failed += result.failed_steps
                    if rounds is None:
                        results[:] = [result]
                    else:
                        results.append(result)
                    bar.set_postfix(steps=len(result.plan.actions), failed=result.failed_steps)
                bar.update(1)
                self.rounds_run += 1
                if (rounds is None or self.rounds_run < rounds) and not self._stop_requested:
                    self._wait_for_next_round()
        except _StopRequested:
            pass
        finally:
            self._waiting = False
            bar.close()
        if self._stop_requested and not self.trace_ended:
            LOG.info("stopped on request after %d rounds", self.rounds_run)
        return results

    def request_stop(self) -> None:
        """Stop :meth:`run` without cutting a round short: a plan half carried out leaves VMs
        between hosts and steps without an outcome. Between rounds it stops at once. Safe to call
        from a signal handler (``cotenancy run`` calls it on SIGTERM, what ``systemctl stop``
        sends)."""
        self._stop_requested = True
        if self._waiting:
            raise _StopRequested

    def _wait_for_next_round(self) -> None:
        self._waiting = True
        try:
            self.driver.wait(self.interval)
        except TraceEnded as exc:
            LOG.warning("%s: stopping the control loop after %d rounds", exc, self.rounds_run)
            self.trace_ended = True
            self._stop_requested = True
        finally:
            self._waiting = False

    def _log_failed_round(self, exc: Exception, failed_in_a_row: int, stopping: bool) -> None:
        """One ERROR line per failed round; a traceback only for errors the project did not raise
        on purpose (likely bugs), whose message alone would not say where they came from."""
        outcome = "stopping the control loop" if stopping else f"next round in {self.interval:g} s"
        LOG.error(
            "control-loop round failed (%d of at most %d in a row): %s: %s; %s",
            failed_in_a_row,
            self.max_failed_rounds,
            type(exc).__name__,
            exc,
            outcome,
            exc_info=not isinstance(exc, CotenancyError),
        )


def _in_a_mean(sample: MetricSample, means: Mapping[tuple[str, str], float]) -> bool:
    """Whether ``sample`` falls before where its series is held only as downsampled means.

    A sample whose VM, metric or time cannot be read is never left out, so it still reaches the
    store's rejection log.
    """
    try:
        until = means.get((sample.vm_id, str(sample.metric)))
        return until is not None and float(sample.timestamp) < until
    except (TypeError, ValueError):
        return False
