"""How the anomaly detector does on a real trace (``benchmarks/bench_anomaly.py``).

Real traces carry no labels of attacks or runaway programs, so two things are measured:

- **flags on the trace as recorded**: every anomaly the detector raises where nothing was
  injected, per 1,000 VM-hours. Some may be real; an operator pays attention to each;
- **injected anomalies caught**: copies of the trace get, at random VMs and times, an
  *exfiltration* (the VM's network traffic plus 100 Mbit/s for 30 min) or a *runaway process* (its
  CPU pinned at its whole size for an hour). One counts as caught when its VM and resource are
  flagged at its first step or the two after it.

The detector runs as the control loop runs it (:meth:`AnomalyDetector.assess` on one
:class:`ClusterState` per step, through the forecaster's plugin interface); the thresholds are
applied afterwards, so one pass over the trace judges many settings.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cotenancy.model import VM, ClusterState, Host, Inventory, Resource, Resources, TelemetryWindow
from cotenancy.predict import features as feats
from cotenancy.predict.anomaly import AnomalyDetector, AnomalySettings, Assessment
from cotenancy.predict.forecast import HybridForecaster, TrainingConfig, train_forecaster
from cotenancy.sim.workload import Workload

#: 100 Mbit/s in KiB/s: a copy out of the cloud at an ordinary uplink's pace
EXFILTRATION_KIB_S = 12_500.0
#: kind -> (resource, steps it lasts)
KINDS: dict[str, tuple[str, int]] = {"exfiltration": ("network", 6), "runaway": ("cpu", 12)}
#: a caught anomaly is flagged at its first step or this many after it
CATCH_STEPS = 3
#: steps after an injection during which its VM's flags are neither false nor counted
AFTERMATH_STEPS = 6


#: what :func:`assess_period` keeps of each step's assessment (the size does not change)
FIELDS = ("observed", "p95", "p99", "window_max", "scale", "enough_history")


@dataclass(frozen=True, slots=True)
class Injection:
    kind: str
    vm: int
    onset: int

    @property
    def resource(self) -> str:
        return KINDS[self.kind][0]

    @property
    def steps(self) -> int:
        return KINDS[self.kind][1]


def inject(
    demand: dict[str, np.ndarray],
    sizes: dict[str, np.ndarray],
    begin: int,
    end: int,
    count: int,
    seed: int,
) -> tuple[dict[str, np.ndarray], list[Injection]]:
    """Copies of ``demand`` with ``count`` anomalies (kinds alternating) on distinct VMs, each
    starting in ``[begin, end)`` and over before ``end``."""
    rng = np.random.default_rng(seed)
    n_vms = next(iter(demand.values())).shape[0]
    if count > n_vms:
        raise ValueError(f"{count} injections need {count} VMs; the trace has {n_vms}")
    out = {r: v.copy() for r, v in demand.items()}
    injections = []
    kinds = itertools.cycle(KINDS)
    for vm in rng.choice(n_vms, size=count, replace=False):
        kind = next(kinds)
        resource, steps = KINDS[kind]
        if end - steps - AFTERMATH_STEPS <= begin:
            raise ValueError("the evaluated period is too short for an injection")
        onset = int(rng.integers(begin, end - steps - AFTERMATH_STEPS))
        span = slice(onset, onset + steps)
        if kind == "exfiltration":
            out[resource][vm, span] = np.nan_to_num(out[resource][vm, span], nan=0.0) + EXFILTRATION_KIB_S
        else:
            out[resource][vm, span] = sizes[resource][vm]
        injections.append(Injection(kind, int(vm), onset))
    return out, injections


def assess_period(
    detector: AnomalyDetector,
    workload_names: Sequence[str],
    demand: dict[str, np.ndarray],
    sizes: dict[str, np.ndarray],
    timestamps: np.ndarray,
    step: float,
    begin: int,
    end: int,
    window_steps: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Assessment]:
    """The detector's assessment of every VM at every step of ``[begin, end)``: each array of the
    returned assessments has shape ``(n_vms, end - begin)`` (and the samples' axis after it)."""
    host = Host("h", "h", Resources(cpu=1e12, memory=1e12))
    inventory = Inventory(
        hosts={"h": host},
        vms={
            name: VM(name, name, "h", Resources(**{r: float(sizes[r][i]) for r in sizes}))
            for i, name in enumerate(workload_names)
        },
    )
    names = list(workload_names)
    columns: dict[str, dict[str, list[np.ndarray]]] = {}
    for t in range(begin, end):
        lo = max(0, t - window_steps + 1)
        telemetry = TelemetryWindow(
            vm_ids=names,
            timestamps=timestamps[lo : t + 1],
            values={r: v[:, lo : t + 1] for r, v in demand.items()},
            step_seconds=step,
        )
        state = ClusterState(
            now=float(timestamps[t]) + step, inventory=inventory, telemetry=telemetry, interval_seconds=step
        )
        assessments, _ = detector.assess(state)
        for resource, a in assessments.items():
            slot = columns.setdefault(resource, {f: [] for f in FIELDS})
            for name in FIELDS:
                value = getattr(a, name)
                slot[name].append(value if value.dtype == bool else value.astype(np.float32))
        if progress is not None:
            progress(1)
    return {
        r: Assessment(
            **{name: np.stack(c[name], axis=1) for name in FIELDS},
            size=np.repeat(sizes[r][:, None], len(c["observed"]), axis=1),
            persistence=detector.settings.persistence,
        )
        for r, c in columns.items()
    }


def score_settings(
    assessed: dict[str, Assessment],
    injections: Sequence[Injection],
    begin: int,
    step: float,
    settings: AnomalySettings,
) -> dict:
    """Flags on the trace as recorded (per 1,000 VM-hours, in total and per resource) and the
    share of each kind of injection caught, under ``settings``."""
    first = next(iter(assessed.values()))
    n_vms, n_steps = first.scale.shape
    excluded = np.zeros((n_vms, n_steps), dtype=bool)
    for inj in injections:
        excluded[inj.vm, inj.onset - begin : inj.onset - begin + inj.steps + AFTERMATH_STEPS] = True
    observed_any = np.zeros((n_vms, n_steps), dtype=bool)
    flags: dict[str, np.ndarray] = {}
    for resource, a in assessed.items():
        flags[resource] = a.flagged(settings)
        observed_any |= ~np.isnan(a.observed[..., -1])
    counted = observed_any & ~excluded
    vm_hours = float(counted.sum()) * step / 3600.0
    per_resource = {
        r: 1000.0 * float((f & counted).sum()) / vm_hours if vm_hours else float("nan")
        for r, f in flags.items()
    }
    caught: dict[str, list[bool]] = {kind: [] for kind in KINDS}
    for inj in injections:
        where = flags.get(inj.resource)
        span = slice(inj.onset - begin, inj.onset - begin + CATCH_STEPS)
        caught[inj.kind].append(bool(where is not None and where[inj.vm, span].any()))
    everything = [hit for hits in caught.values() for hit in hits]
    return {
        "reference": settings.reference,
        "persistence": settings.persistence,
        "threshold": settings.threshold,
        "min_ratio": settings.min_ratio,
        "min_share": settings.min_share,
        "flags_per_1000_vm_hours": sum(per_resource.values()),
        "flags_per_1000_vm_hours_by_resource": per_resource,
        "recall": float(np.mean(everything)) if everything else float("nan"),
        "recall_by_kind": {k: float(np.mean(v)) if v else float("nan") for k, v in caught.items()},
        "injections": {k: len(v) for k, v in caught.items()},
    }


def settings_grid(
    references: Iterable[str],
    thresholds: Iterable[float],
    min_ratios: Iterable[float],
    min_shares: Iterable[float],
    persistences: Iterable[int] = (1,),
) -> list[AnomalySettings]:
    return [
        AnomalySettings(threshold=t, min_ratio=r, min_share=s, reference=ref, persistence=n)
        for n, ref, t, r, s in itertools.product(persistences, references, thresholds, min_ratios, min_shares)
    ]


def choose(rows: Sequence[dict], budget_per_1000_vm_hours: float) -> dict | None:
    """The row with the highest recall among those within the flag budget; ties go to fewer
    flags, then the larger threshold, ratio and share. ``None``: none fits."""
    fitting = [r for r in rows if r["flags_per_1000_vm_hours"] <= budget_per_1000_vm_hours]
    if not fitting:
        return None
    return max(
        fitting,
        key=lambda r: (
            r["recall"],
            -r["flags_per_1000_vm_hours"],
            r["threshold"],
            r["min_ratio"],
            r["min_share"],
        ),
    )


def evaluate_anomalies(
    workload: Workload,
    train_days: float,
    evaluate_days: float | None = None,
    injections: int = 200,
    seed: int = 0,
    settings: Sequence[AnomalySettings] = (AnomalySettings(),),
    resources: Sequence[str] = ("cpu", "memory", "disk_io", "network"),
    config: TrainingConfig | None = None,
    progress: Callable[[str], None] | None = None,
    step_progress: Callable[[int], None] | None = None,
) -> dict:
    """Train the forecaster on the first ``train_days``, then judge the detector on the
    ``evaluate_days`` after them (default: the rest of the trace) under each of ``settings``."""
    say = progress or (lambda _msg: None)
    if workload.sizes is None:
        raise ValueError(f"workload {workload.source!r} has no VM sizes")
    step = workload.step_seconds
    steps_per_day = feats.steps_in_a_day(step)
    begin = int(round(train_days * steps_per_day))
    end = workload.n_steps if evaluate_days is None else begin + int(round(evaluate_days * steps_per_day))
    if not 0 < begin < end <= workload.n_steps:
        raise ValueError(
            f"the trace has {workload.n_steps} steps: cannot train on {begin} and judge up to {end}"
        )
    timestamps = workload.start + step * np.arange(workload.n_steps)
    demand = {r: workload.demand(Resource(r)) for r in resources}
    sizes = {r: np.array([s[r] for s in workload.sizes], dtype=float) for r in resources}
    config = config or TrainingConfig(steps_per_day=steps_per_day)
    say(f"training the forecaster on {train_days:g} days x {workload.n_vms} VMs ({', '.join(resources)})")
    started = time.perf_counter()
    model = train_forecaster(
        {r: v[:, :begin] for r, v in demand.items()},
        timestamps[:begin],
        step,
        {r: s for r, s in sizes.items()},
        workload.vm_names,
        None,
        config,
    )
    train_seconds = time.perf_counter() - started
    forecaster = HybridForecaster(model_path=Path("/nonexistent/forecast.json"))
    forecaster.pin(model)
    injected, placed = inject(demand, sizes, begin, end, injections, seed)
    rows: list[dict] = []
    assess_seconds = 0.0
    for persistence in sorted({s.persistence for s in settings}):
        say(
            f"assessing {end - begin} steps x {workload.n_vms} VMs, {persistence} sample(s) in a row "
            f"({len(placed)} injected anomalies)"
        )
        started = time.perf_counter()
        assessed = assess_period(
            AnomalyDetector(forecaster, AnomalySettings(persistence=persistence)),
            workload.vm_names,
            injected,
            sizes,
            timestamps,
            step,
            begin,
            end,
            config.window_steps,
            step_progress,
        )
        assess_seconds += time.perf_counter() - started
        rows.extend(
            score_settings(assessed, placed, begin, step, s) for s in settings if s.persistence == persistence
        )
    return {
        "trace": workload.source,
        "vms": workload.n_vms,
        "train_days": train_days,
        "evaluated_days": (end - begin) / steps_per_day,
        "seed": seed,
        "injection": {
            "exfiltration_kib_s": EXFILTRATION_KIB_S,
            "kinds": {k: {"resource": r, "steps": s} for k, (r, s) in KINDS.items()},
            "caught_within_steps": CATCH_STEPS,
        },
        "rows": rows,
        "timings": {"train_seconds": train_seconds, "assess_seconds": assess_seconds},
    }
