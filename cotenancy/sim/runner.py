"""Running a strategy on a simulated cloud through the product's control loop.

``run_simulation`` is the API the ``simulate`` command, the benchmarks and the predictors' training
use: it builds the cloud, wraps it in the ``simulated`` driver and drives the strategy with
:class:`cotenancy.engine.loop.ControlLoop`, round after round. The only shortcut is telemetry: the
loop takes each step's metrics as one array frame from the driver instead of one record per
sample (samples are still built for the history store when one is given).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cotenancy import loading
from cotenancy.model import Event, MetricSample
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.setups import build_setup, load_trace
from cotenancy.sim.workload import Workload

if TYPE_CHECKING:
    from oslo_config import cfg

    from cotenancy.store import HistoryStore
    from cotenancy.strategies.base import Strategy

METRIC_KEYS = ("energy_kwh", "slatah", "pdm", "slav", "esv", "migrations", "conflict_minutes", "wall_seconds")

#: units of the result keys (documented in docs/simulator.md)
UNITS = {
    "energy_kwh": "kWh",
    "slatah": "% of active host time with allocated < requested CPU",
    "pdm": "% of requested CPU lost to migrations",
    "slav": "% (SLATAH x PDM)",
    "esv": "kWh (energy x SLAV as a fraction)",
    "migrations": "count",
    "conflict_minutes": "VM-minutes with < 90 % of the request delivered",
    "wall_seconds": "s",
}


@dataclass(slots=True)
class SimulationResult:
    """Headline metrics and per-step time series of one run."""

    metrics: dict[str, float]
    series: dict[str, list[float]]
    setup: str
    strategy: str
    workload: str
    n_vms: int
    n_hosts: int
    steps: int
    failed_actions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "units": UNITS,
            "setup": self.setup,
            "strategy": self.strategy,
            "workload": self.workload,
            "vms": self.n_vms,
            "hosts": self.n_hosts,
            "steps": self.steps,
            "failed_actions": self.failed_actions,
            "anomalies_flagged": len(self.extra.get("anomalies", [])),
        }


def make_workload(trace: str | Path | None, days: float = 1.0, n_vms: int = 200, seed: int = 0) -> Workload:
    """The trace at ``trace`` (format detected) or the embedded synthetic workload, cut to ``days``."""
    if trace:
        workload = load_trace(trace)
    else:
        from cotenancy.sim.synthetic import generate_synthetic

        workload = generate_synthetic(n_vms, days, step_seconds=300.0, seed=seed)
    steps = max(2, int(round(days * 86400.0 / workload.step_seconds)))
    if steps < workload.n_steps:
        workload = workload.slice_steps(0, steps)
    return workload


def make_cloud(
    workload: Workload,
    setup: str = "cloudsim",
    seed: int = 0,
    interference: bool = True,
    headroom: float = 1.25,
) -> SimulatedCloud:
    model = None
    if interference:
        from cotenancy.sim.interference import InterferenceModel

        model = InterferenceModel()
    return SimulatedCloud(workload, build_setup(workload, setup, headroom), interference=model, seed=seed)


def _default_conf() -> cfg.ConfigOpts:
    from cotenancy.conf import make_conf

    return make_conf([], config_files=[])


def _simulation_loop_class() -> type:
    from cotenancy.engine.loop import ControlLoop

    class SimulationLoop(ControlLoop):
        """ControlLoop whose collection takes array frames straight from the simulated driver, and
        writes a history store as ControlLoop does (``_store``: the round's time bounds the samples,
        retention is respected), so a simulation records what ``cotenancy run`` would."""

        def collect(self, now: float) -> tuple[int, list[Event]]:
            start = (
                self._last_collected
                if self._last_collected is not None
                else now - self.interval * self.window_steps
            )
            frames = self.driver.metric_frames(start, now)
            count = 0
            for stamp, ids, values in frames:
                self.telemetry.add_frame(stamp, ids, values)
                count += len(ids) * len(values)
            events = self.driver.get_events(start, now)
            if self.written_store is not None:
                samples = [
                    MetricSample(vm_id, stamp, metric, value)
                    for stamp, ids, values in frames
                    for metric, column in values.items()
                    for vm_id, value in zip(ids, column.tolist(), strict=True)
                    if value == value
                ]
                self._store(self.written_store, samples, events, start, now)
            self._last_collected = now
            return count, events

    return SimulationLoop


def run_simulation(
    workload: Workload,
    setup: str = "cloudsim",
    strategy: Strategy | str = "lr-mmt",
    conf: cfg.ConfigOpts | None = None,
    store: HistoryStore | None = None,
    progress: bool = False,
    seed: int = 0,
    interference: bool = True,
) -> SimulationResult:
    """Run ``strategy`` on ``workload`` in ``setup`` for the workload's whole span."""
    conf = conf if conf is not None else _default_conf()
    started = time.perf_counter()
    cloud = make_cloud(workload, setup, seed=seed, interference=interference)
    return run_cloud(cloud, strategy, conf, store=store, progress=progress, started=started)


def run_cloud(
    cloud: SimulatedCloud,
    strategy: Strategy | str,
    conf: cfg.ConfigOpts,
    store: HistoryStore | None = None,
    progress: bool = False,
    started: float | None = None,
) -> SimulationResult:
    from cotenancy.drivers.simulated.driver import SimulatedDriver

    started = time.perf_counter() if started is None else started
    if isinstance(strategy, str):
        strategy = loading.load_plugin(loading.STRATEGIES, strategy, conf)
    driver = SimulatedDriver(conf, cloud=cloud)
    conf.set_override("interval", int(round(cloud.step_seconds)))
    loop = _simulation_loop_class()(conf, driver, strategy, store=store, dry_run=False)
    first_step = cloud.step
    rounds = cloud.last_step - first_step + 1
    results = loop.run(rounds, progress=progress)
    metrics = cloud.metrics()
    metrics["wall_seconds"] = time.perf_counter() - started
    failed = sum(r.failed_steps for r in results)
    anomalies = [
        {
            "time": event.timestamp,
            "vms": list(event.vm_ids),
            "host": event.host_id,
            "resource": event.resource,
            "message": event.message,
        }
        for r in results
        for event in r.anomalies
    ]
    return SimulationResult(
        metrics=metrics,
        series={k: list(v) for k, v in cloud.series.items()},
        setup=cloud.setup.name,
        strategy=strategy.name,
        workload=cloud.workload.source or "synthetic",
        n_vms=cloud.n_vms,
        n_hosts=cloud.n_hosts,
        steps=len(results),
        failed_actions=failed,
        extra={
            "migrations_completed": cloud.acc.migrations_completed,
            "host_power_models": sorted(set(cloud.hosts.power_models)),
            "plan_seconds": [r.plan_seconds for r in results],
            "planner_seconds": [float(r.plan.stats.get("wall_seconds", 0.0)) for r in results],
            # the planner's time split: building the candidate model, and CP-SAT's search
            "planner_build_seconds": [float(r.plan.stats.get("build_seconds", 0.0)) for r in results],
            "planner_solve_seconds": [float(r.plan.stats.get("solve_seconds", 0.0)) for r in results],
            # when each round ran, in trace time, so a slow round can be matched to the workload
            "round_trace_seconds": [(first_step + i) * cloud.step_seconds for i in range(len(results))],
            # usage far above its forecast, as the loop flagged it ([predict] detect_anomalies)
            "anomalies": anomalies,
        },
    )


def summary_rows(result: SimulationResult) -> list[tuple[str, str]]:
    m = result.metrics
    return [
        ("energy", f"{m['energy_kwh']:.2f} kWh"),
        ("migrations", f"{int(m['migrations']):,}"),
        ("SLATAH", f"{m['slatah']:.2f} %"),
        ("PDM", f"{m['pdm']:.4f} %"),
        ("SLAV", f"{m['slav']:.5f} %"),
        ("ESV", f"{m['esv']:.5f}"),
        ("conflict minutes", f"{m['conflict_minutes']:,.0f}"),
        ("retired VMs", f"{int(m.get('retired_vms', 0))}"),
        ("anomalies flagged", f"{len(result.extra.get('anomalies', [])):,}"),
        ("wall time", f"{m['wall_seconds']:.1f} s"),
    ]


__all__ = ["METRIC_KEYS", "SimulationResult", "make_cloud", "make_workload", "run_simulation"]
