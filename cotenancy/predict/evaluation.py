"""Forecast evaluation on a trace given by path: the model against the usual baselines.

Protocol (nothing is tuned on the test period):

- train on the first ``train_days`` of the trace, test on the rest; every test step is a target,
  forecast ``horizon`` steps earlier from the history up to that origin;
- metrics in project units (MHz, MiB) over all (VM, target) pairs with a valid target:
  ``pinball_p95`` (mean p95 pinball loss), ``mae_p50`` and ``coverage_p95`` (share of targets at or
  below the p95);
- baselines: ``last_value`` (last valid sample), ``same_time_yesterday``, ``moving_window_max``
  (the Autopilot recommender; its window is picked among 1 h/6 h/24 h on the last three training
  days) and ``arima`` (statsmodels SARIMAX(1,0,1) with a constant, fitted per VM and resource on
  the last ``arima_fit_days`` of training, Gaussian intervals from its state-space form). Point
  baselines use their single value as both p50 and p95.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cotenancy.predict import features as feats
from cotenancy.predict.forecast import (
    HybridForecaster,
    TrainingConfig,
    stacked_windows,
    train_forecaster,
)
from cotenancy.predict.history import (
    PairDataset,
    build_pair_dataset,
    conflict_factors,
    conflict_keys_by_step,
    history_from_frames,
)
from cotenancy.predict.metrics import average_precision, pinball_losses, recall_at_precision
from cotenancy.predict.risk import RiskTrainingConfig, XGBoostRiskModel, time_split, train_risk
from cotenancy.sim.workload import Workload

LOG = logging.getLogger(__name__)

Z95 = 1.6448536269514722


def pinball(y: np.ndarray, q: np.ndarray, alpha: float) -> float:
    return float(np.mean(pinball_losses(y, q, alpha)))


def score(y: np.ndarray, p50: np.ndarray, p95: np.ndarray) -> dict[str, float]:
    return {
        "pinball_p95": pinball(y, p95, 0.95),
        "mae_p50": float(np.mean(np.abs(y - p50))),
        "coverage_p95": float(np.mean(y <= p95)),
    }


def heaviest_vms(
    target: np.ndarray,
    valid: np.ndarray,
    model_p95: np.ndarray,
    baseline_p95: np.ndarray,
    share: float = 0.01,
) -> dict[str, float]:
    """Where the margin over a baseline is won or lost: the ``share`` of VMs (at least one) on which
    the baseline loses most p95 pinball, against the rest. Arrays are ``(vms, targets)``; only
    ``valid`` targets count."""

    def per_vm(p95: np.ndarray) -> np.ndarray:
        return np.where(valid, pinball_losses(target, p95, 0.95), 0.0).sum(axis=1)

    model, baseline = per_vm(model_p95), per_vm(baseline_p95)
    k = max(1, int(np.ceil(share * len(baseline))))
    heavy = np.zeros(len(baseline), dtype=bool)
    heavy[np.argsort(baseline)[::-1][:k]] = True

    def reduction(rows: np.ndarray) -> float:
        base = baseline[rows].sum()
        return float(1.0 - model[rows].sum() / base) if base > 0 else 0.0

    return {
        "vms": float(k),
        "baseline_loss_share": float(baseline[heavy].sum() / max(baseline.sum(), 1e-12)),
        "model_loss_share": float(model[heavy].sum() / max(model.sum(), 1e-12)),
        "reduction_on_heaviest": reduction(heavy),
        "reduction_on_rest": reduction(~heavy),
    }


def _ffill(values: np.ndarray) -> np.ndarray:
    return pd.DataFrame(values.T).ffill().to_numpy().T


def _rolling_max(values: np.ndarray, window: int) -> np.ndarray:
    return pd.DataFrame(values.T).rolling(window, min_periods=1).max().to_numpy().T


def arima_forecasts(
    series: np.ndarray, fit_slice: slice, horizon: int, origins: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and standard deviation of the ``horizon``-step SARIMAX(1,0,1)+c forecast made at each
    origin, using parameters fitted on ``fit_slice`` only. ``None`` when the fit fails."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    train = series[fit_slice]
    if np.sum(np.isfinite(train)) < 30 or np.nanstd(train) < 1e-9:
        return None
    level = float(np.nanmean(train))
    spread = float(np.nanstd(train)) or 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitted = SARIMAX((train - level) / spread, order=(1, 0, 1), trend="c").fit(disp=False, maxiter=50)
            applied = fitted.apply((series - level) / spread)
        except (ValueError, np.linalg.LinAlgError):
            return None
    fr = applied.filter_results
    t_mat = fr.transition[:, :, 0]
    c_vec = fr.state_intercept[:, 0]
    z_vec = fr.design[0, :, 0]
    d = float(fr.obs_intercept[0, 0])
    rqr = fr.selection[:, :, 0] @ fr.state_cov[:, :, 0] @ fr.selection[:, :, 0].T
    a = fr.filtered_state[:, origins]
    p = np.moveaxis(fr.filtered_state_cov[:, :, origins], 2, 0)
    for _ in range(horizon):
        a = t_mat @ a + c_vec[:, None]
        p = t_mat @ p @ t_mat.T + rqr
    mean = z_vec @ a + d
    var = np.einsum("i,nij,j->n", z_vec, p, z_vec) + float(fr.obs_cov[0, 0, 0])
    return mean * spread + level, np.sqrt(np.maximum(var, 0.0)) * spread


def evaluate_forecast(
    workload: Workload,
    resources: tuple[str, ...] = ("cpu", "memory"),
    train_days: float = 21.0,
    horizon_seconds: float = 1800.0,
    arima_fit_days: float = 2.0,
    config: TrainingConfig | None = None,
    model_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
    config_changes: dict | None = None,
) -> dict:
    """The JSON document of ``cotenancy evaluate forecast`` (see the module docstring).
    ``config_changes``: :class:`TrainingConfig` fields to change, to compare training settings."""
    say = progress or (lambda _msg: None)
    step = workload.step_seconds
    steps_per_day = feats.steps_in_a_day(step)
    horizon = max(1, int(round(horizon_seconds / step)))
    train_end = int(round(train_days * steps_per_day))
    total = workload.n_steps
    if train_end >= total - horizon:
        raise ValueError(f"the trace has {total * step / 86400:.1f} days; nothing left to test")
    timestamps = workload.start + step * np.arange(total)
    values = {r: workload.demand(r) for r in resources}
    sizes = {r: np.array([s[r] for s in workload.sizes]) for r in resources} if workload.sizes else None
    config = config or TrainingConfig(horizons=(horizon,), steps_per_day=steps_per_day)
    config = dataclasses.replace(config, **(config_changes or {}))
    started = time.perf_counter()
    say(f"training on {train_days:g} days x {workload.n_vms} VMs")
    model = train_forecaster(
        {r: v[:, :train_end] for r, v in values.items()},
        timestamps[:train_end],
        step,
        {r: s for r, s in sizes.items()} if sizes else None,
        workload.vm_names,
        None,
        config,
    )
    train_seconds = time.perf_counter() - started
    forecaster = HybridForecaster(model_path=model_path or Path("/nonexistent/forecast.json"))
    forecaster.pin(model)
    origins = np.arange(train_end - horizon, total - horizon)
    methods: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, float] = {"train_seconds": train_seconds}
    counts: dict[str, int] = {}
    summary: dict[str, dict] = {}
    for resource in resources:
        clean = feats.clean(values[resource])
        target = clean[:, origins + horizon]
        predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        say(f"{resource}: model forecasts")
        began = time.perf_counter()
        p50 = np.empty_like(target)
        p95 = np.empty_like(target)
        batch = max(1, 20_000 // workload.n_vms)
        for b in range(0, len(origins), batch):
            chunk = origins[b : b + batch]
            windows, origin_col = stacked_windows(clean, chunk, config.window_steps)
            size = None if sizes is None else np.tile(sizes[resource], len(chunk))
            fc = forecaster.forecast_arrays(
                {resource: windows},
                timestamps[origin_col],
                step,
                (horizon,),
                (0.5, 0.95),
                sizes={resource: size} if size is not None else None,
            )
            cube = fc.values[resource][:, 0, :].reshape(len(chunk), workload.n_vms, 2)
            p50[:, b : b + len(chunk)] = cube[:, :, 0].T
            p95[:, b : b + len(chunk)] = cube[:, :, 1].T
        timings[f"{resource}_model_forecast_seconds"] = time.perf_counter() - began
        predictions["model"] = (p50, p95)
        filled = _ffill(clean)
        last = filled[:, origins]
        predictions["last_value"] = (last, last)
        yday_cols = origins + horizon - steps_per_day
        yday = np.where(np.isnan(clean[:, yday_cols]), filled[:, yday_cols], clean[:, yday_cols])
        predictions["same_time_yesterday"] = (yday, yday)
        window = _pick_max_window(clean, filled, train_end, horizon, steps_per_day)
        rolling = _rolling_max(clean, window)[:, origins]
        rolling = np.where(np.isnan(rolling), last, rolling)
        predictions["moving_window_max"] = (rolling, rolling)
        say(f"{resource}: ARIMA per VM")
        began = time.perf_counter()
        mean = last.copy()
        upper = last.copy()
        failed = 0
        fit_slice = slice(max(0, train_end - int(arima_fit_days * steps_per_day)), train_end)
        for i in range(workload.n_vms):
            got = arima_forecasts(clean[i], fit_slice, horizon, origins)
            if got is None:
                failed += 1
                continue
            mean[i] = np.maximum(got[0], 0.0)
            upper[i] = np.maximum(got[0] + Z95 * got[1], 0.0)
        predictions["arima"] = (mean, upper)
        timings[f"{resource}_arima_seconds"] = time.perf_counter() - began
        # one common set of targets: valid, and every method has a value (a VM's first samples
        # have no last value yet)
        valid = ~np.isnan(target)
        for low, high in predictions.values():
            valid &= np.isfinite(low) & np.isfinite(high)
        y = target[valid]
        for name, (low, high) in predictions.items():
            methods.setdefault(name, {})[resource] = score(y, low[valid], high[valid])
        methods["moving_window_max"][resource]["window_steps"] = float(window)
        methods["arima"][resource]["fallback_to_last_value_vms"] = float(failed)
        counts[resource] = int(valid.sum())
        best = min(
            (m for m in predictions if m != "model"), key=lambda m: methods[m][resource]["pinball_p95"]
        )
        summary[resource] = {
            "best_baseline": best,
            "pinball_p95_reduction_vs_best": 1.0
            - methods["model"][resource]["pinball_p95"] / methods[best][resource]["pinball_p95"],
            "heaviest_vms_of_best": heaviest_vms(
                target, valid, predictions["model"][1], predictions[best][1]
            ),
        }
    return {
        "trace": workload.source,
        "vms": workload.n_vms,
        "train_days": train_days,
        "horizon_minutes": horizon * step / 60.0,
        "test_origins": int(len(origins)),
        "test_points": counts,
        "units": {"cpu": "MHz", "memory": "MiB"},
        "methods": methods,
        "summary": summary,
        "model_validation": model.metadata.get("validation", {}),
        "config_changes": dict(config_changes or {}),
        "timings": timings,
    }


def _pick_max_window(clean, filled, train_end, horizon, steps_per_day) -> int:
    """The moving-max window (1 h, 6 h or 24 h) with the lowest p95 pinball on the last three
    training days: the baseline gets its best shot without looking at the test period."""
    origins = np.arange(max(train_end - 3 * steps_per_day, steps_per_day), train_end - horizon)
    target = clean[:, origins + horizon]
    valid = ~np.isnan(target)
    best, best_loss = 12, np.inf
    for window in (12, 72, 288):
        rolling = _rolling_max(clean[:, :train_end], window)[:, origins]
        rolling = np.where(np.isnan(rolling), filled[:, origins], rolling)
        ok = valid & ~np.isnan(rolling)
        loss = pinball(target[ok], rolling[ok], 0.95)
        if loss < best_loss:
            best, best_loss = window, loss
    return best


def format_table(result: dict) -> str:
    """A plain-text table of the methods x resources."""
    lines = [f"{'method':<22}{'resource':<9}{'pinball_p95':>13}{'mae_p50':>12}{'coverage_p95':>14}"]
    for method, per_resource in result["methods"].items():
        for resource, m in per_resource.items():
            lines.append(
                f"{method:<22}{resource:<9}{m['pinball_p95']:>13.3f}{m['mae_p50']:>12.3f}"
                f"{m['coverage_p95']:>14.3f}"
            )
    for resource, s in result.get("summary", {}).items():
        lines.append(
            f"{resource}: model p95 pinball {100 * s['pinball_p95_reduction_vs_best']:.1f} % below "
            f"the best baseline ({s['best_baseline']})"
        )
        heavy = s.get("heaviest_vms_of_best")
        if heavy:
            lines.append(
                f"  on the {heavy['vms']:.0f} VM(s) where {s['best_baseline']} loses most "
                f"({100 * heavy['baseline_loss_share']:.1f} % of its loss, "
                f"{100 * heavy['model_loss_share']:.1f} % of the model's): "
                f"{100 * heavy['reduction_on_heaviest']:.1f} % below; on the rest "
                f"{100 * heavy['reduction_on_rest']:.1f} % below"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ conflicts


def simulate_history(trace: str | Path, setup: str = "cloudsim", strategy: str = "lr-mmt", seed: int = 0):
    """Replay one trace day in the simulator and return its :class:`History`."""
    from cotenancy.sim.runner import _default_conf, make_cloud, run_cloud
    from cotenancy.sim.setups import load_trace

    cloud = make_cloud(load_trace(trace), setup, seed=seed)
    run_cloud(cloud, strategy, _default_conf())
    return history_from_frames(cloud)


def lead_minutes(data, score: np.ndarray, threshold: float, history, lookback_steps: int = 24) -> dict:
    """For each conflict onset of a pair (a step where it is in conflict and was not the step
    before), how long before it the score first crossed ``threshold`` and stayed above it:
    ``leads`` (minutes) of the onsets that were warned, and how many ``onsets`` there were (an
    infinite threshold, where a method never reaches the precision asked, warns of none)."""
    conflicts = conflict_keys_by_step(history)
    lookup = {(int(k), int(s)): float(v) for k, s, v in zip(data.keys, data.step, score, strict=True)}
    leads = []
    onsets = 0
    step_minutes = history.step_seconds / 60.0
    for s in range(1, len(conflicts)):
        for key in conflicts[s] - conflicts[s - 1]:
            if (key, s - 1) not in lookup:
                continue
            onsets += 1
            t = s - 1
            while t >= s - lookback_steps and lookup.get((key, t), -np.inf) >= threshold:
                t -= 1
            if t < s - 1:
                leads.append((s - 1 - t) * step_minutes)
    return {"leads": leads, "onsets": onsets}


def conflict_scores(risk_model, data) -> dict[str, np.ndarray]:
    return {
        "model": risk_model.score_features(data.x),
        "reactive": np.nan_to_num(data.host_used, nan=0.0),
        "lr_mmt": np.nan_to_num(data.host_lr, nan=0.0),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class ConflictExperiment:
    """Which simulated days a conflict model learns from (``train``) and is judged on (``test``),
    in which cloud, and what counts as a conflict: one value shared by training, evaluation and the
    diagnostics, so they run the same experiment. Days are paths; lists or paths given are kept as
    tuples of strings, so the value stays hashable and prints as its JSON says it."""

    train: tuple[str, ...]
    test: tuple[str, ...] = ()
    setup: str = "cloudsim"
    strategy: str = "lr-mmt"
    label_from_minutes: float = 15.0
    horizon_minutes: float = 30.0
    window_steps: int = 12
    #: ``(path, setup, strategy) -> history``; the simulator by default
    simulate: Callable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", tuple(str(p) for p in self.train))
        object.__setattr__(self, "test", tuple(str(p) for p in self.test))

    def steps(self, step_seconds: float) -> tuple[int, int]:
        """The label window ``[from, horizon]`` in steps of ``step_seconds``."""
        return (
            int(round(self.label_from_minutes * 60 / step_seconds)),
            int(round(self.horizon_minutes * 60 / step_seconds)),
        )

    def replayer(self, say: Callable[[str], None], timings: dict[str, float]):
        """``path -> (history, labelled pair dataset)``: one trace day replayed in the simulator, timed."""

        def replay(path):
            began = time.perf_counter()
            say(f"simulating {path}")
            history = (self.simulate or simulate_history)(path, self.setup, self.strategy)
            label_from, horizon = self.steps(history.step_seconds)
            data = build_pair_dataset(
                history, horizon_steps=horizon, label_from_steps=label_from, window_steps=self.window_steps
            )
            timings[f"simulate_and_features:{Path(path).name}"] = time.perf_counter() - began
            return history, data

        return replay

    def described(self) -> dict:
        """What a conflict result was computed on, as its JSON says it."""
        return {
            "setup": self.setup,
            "strategy": self.strategy,
            "train": list(self.train),
            "test": list(self.test),
            "label": f"conflict involving both VMs within [+{self.label_from_minutes:g}, "
            f"+{self.horizon_minutes:g}] min",
        }


def _combine(parts: list):
    """Several days' pair datasets as one, in their order: later days' origin steps come after
    earlier ones, so the held-out slices of :func:`~cotenancy.predict.risk.train_risk` are the
    most recent."""
    return PairDataset(
        np.vstack([d.x for d in parts]),
        np.concatenate([d.y for d in parts]),
        np.concatenate([d.step + 10_000 * i for i, d in enumerate(parts)]),
        np.concatenate([d.keys for d in parts]),
        np.concatenate([d.host_used for d in parts]),
        np.concatenate([d.host_lr for d in parts]),
        parts[0].telemetry if parts else {},
    )


def _fit(
    combined,
    say: Callable[[str], None],
    timings: dict[str, float],
    training: RiskTrainingConfig | None = None,
):
    """The risk model trained on a (combined) pair dataset."""
    say(f"training on {len(combined.y)} pair-steps ({int(combined.y.sum())} positive)")
    began = time.perf_counter()
    model = train_risk(combined, training)
    timings["train_seconds"] = time.perf_counter() - began
    return model


def train_conflict_model(
    experiment: ConflictExperiment,
    progress: Callable[[str], None] | None = None,
    training: RiskTrainingConfig | None = None,
):
    """A risk model trained on the experiment's simulated ``train`` days; ``training`` as for
    :func:`evaluate_conflicts`."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    replay = experiment.replayer(say, timings)
    return _fit(_combine([replay(path)[1] for path in experiment.train]), say, timings, training)


def evaluate_conflicts(
    experiment: ConflictExperiment,
    progress: Callable[[str], None] | None = None,
    save_model: Path | None = None,
    training: RiskTrainingConfig | None = None,
) -> dict:
    """Train the risk model on the experiment's ``train`` days, score every co-located pair of every
    step of its ``test`` days against the baselines (label: a conflict involving both VMs within
    the label window).
    ``save_model``: also write the trained model there (a ``risk.json`` the serving side loads).
    ``training``: the risk model's training settings (default :class:`RiskTrainingConfig`'s), to
    compare model capacities."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}

    dataset = experiment.replayer(say, timings)
    model = _fit(_combine([dataset(path)[1] for path in experiment.train]), say, timings, training)
    risk = XGBoostRiskModel(model_path=Path(save_model) if save_model else Path("/nonexistent/risk.json"))
    if save_model:
        say(f"risk model saved to {risk.save(model)}")
    risk.pin(model)
    per_day: dict[str, dict] = {}
    pooled: dict[str, list[np.ndarray]] = {}
    labels = []
    days = []
    for path in experiment.test:
        history, data = dataset(path)
        scores = conflict_scores(risk, data)
        labels.append(data.y)
        days.append((history, data, scores))
        for name, s in scores.items():
            pooled.setdefault(name, []).append(s)
    y_all = np.concatenate(labels)
    methods: dict[str, dict[str, float]] = {}
    for name, chunks in pooled.items():
        s_all = np.concatenate(chunks)
        recall, threshold = recall_at_precision(y_all, s_all, 0.8)
        # every onset of every test day, warned or not: the median is over the warned ones,
        # None (JSON null) when none was, as for a method that never reaches 80 % precision
        timed = [lead_minutes(d, sc[name], threshold, h) for h, d, sc in days]
        leads = [lead for x in timed for lead in x["leads"]]
        methods[name] = {
            "pr_auc": average_precision(y_all, s_all),
            "recall_at_p80": recall,
            "median_lead_minutes": float(np.median(leads)) if leads else None,
            "threshold_at_p80": threshold,
            "onsets": float(sum(x["onsets"] for x in timed)),
            "onsets_warned": float(len(leads)),
        }
    for (_history, data, scores), path in zip(days, experiment.test, strict=True):
        per_day[Path(path).name] = {
            name: {"pr_auc": average_precision(data.y, s), "recall_at_p80": recall_at_precision(data.y, s)[0]}
            for name, s in scores.items()
        }
    return {
        **experiment.described(),
        "training": dataclasses.asdict(training or RiskTrainingConfig()),
        "test_pair_steps": int(len(y_all)),
        "test_positive_rate": float(y_all.mean()) if len(y_all) else 0.0,
        "methods": methods,
        "per_day": per_day,
        "model_validation": model.metadata.get("validation", {}),
        "timings": timings,
    }


def analyse_conflict_factors(
    experiment: ConflictExperiment,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """What holds the conflict model's PR-AUC where it is: a conflict needs one of the two VMs
    *degraded* in the window and the two still *together*, so a risk model is trained for each half
    (same features, rows and :func:`~cotenancy.predict.risk.train_risk`) next to the joint one.

    Scored on the held-out end of the training days (``validation``) and on the test days, pooled:
    the joint model, the product of the two halves, each half against its own label, and two
    bounds on the conflict label (one half's model times the *true* other half): the PR-AUC a
    perfect predictor of that other half would allow."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    replay = experiment.replayer(say, timings)

    def labelled(path) -> tuple:
        history, data = replay(path)
        label_from, horizon = experiment.steps(history.step_seconds)
        degraded, together = conflict_factors(
            history, data, label_from_steps=label_from, horizon_steps=horizon
        )
        return data, degraded, together

    train_days = [labelled(path) for path in experiment.train]
    combined = _combine([d for d, _, _ in train_days])
    halves = {
        "degraded": np.concatenate([deg for _, deg, _ in train_days]),
        "together": np.concatenate([tog for _, _, tog in train_days]),
    }
    models = {"conflict": _fit(combined, say, timings)}
    for label, y in halves.items():
        models[label] = _fit(dataclasses.replace(combined, y=y), say, timings)
    hold = time_split(combined.step, RiskTrainingConfig().calibration_fraction)[2]
    test_days = [labelled(path) for path in experiment.test]
    tested = _combine([d for d, _, _ in test_days])
    sets = {
        "validation": (
            combined.x[hold],
            combined.y[hold],
            halves["degraded"][hold],
            halves["together"][hold],
        ),
        "test": (
            tested.x,
            tested.y,
            np.concatenate([deg for _, deg, _ in test_days]),
            np.concatenate([tog for _, _, tog in test_days]),
        ),
    }
    result: dict[str, dict] = {}
    for name, (x, y, degraded, together) in sets.items():
        p = {label: model.probability(x) for label, model in models.items()}
        result[name] = {
            "rows": int(len(y)),
            "positive_rate": {
                "conflict": float(y.mean()),
                "degraded": float(degraded.mean()),
                "together": float(together.mean()),
                "together_among_conflicts": float(together[y].mean()),
            },
            "pr_auc": {
                "joint_model": average_precision(y, p["conflict"]),
                "degraded_x_together_models": average_precision(y, p["degraded"] * p["together"]),
                "degraded_model_on_degraded": average_precision(degraded, p["degraded"]),
                "together_model_on_together": average_precision(together, p["together"]),
                "degraded_model_x_true_together": average_precision(y, p["degraded"] * together),
                "true_degraded_x_together_model": average_precision(y, degraded * p["together"]),
            },
        }
    return {
        **experiment.described(),
        "sets": result,
        "timings": timings,
    }


def format_factor_table(result: dict) -> str:
    names = list(next(iter(result["sets"].values()))["pr_auc"])
    lines = [f"{'PR-AUC':<40}" + "".join(f"{s:>12}" for s in result["sets"])]
    for name in names:
        lines.append(f"{name:<40}" + "".join(f"{v['pr_auc'][name]:>12.3f}" for v in result["sets"].values()))
    for label in ("conflict", "degraded", "together", "together_among_conflicts"):
        lines.append(
            f"{'positive rate, ' + label:<40}"
            + "".join(f"{v['positive_rate'][label]:>12.3f}" for v in result["sets"].values())
        )
    return "\n".join(lines)


def _minutes(value: float | None) -> str:
    """A lead time for a table; a dash where no onset was warned of."""
    return "-" if value is None else f"{value:.1f}"


def format_conflict_table(result: dict) -> str:
    lines = [f"{'method':<12}{'pr_auc':>9}{'recall_at_p80':>15}{'median_lead_min':>17}{'warned/onsets':>16}"]
    for name, m in result["methods"].items():
        lines.append(
            f"{name:<12}{m['pr_auc']:>9.3f}{m['recall_at_p80']:>15.3f}{_minutes(m['median_lead_minutes']):>17}"
            f"{int(m['onsets_warned']):>9}/{int(m['onsets'])}"
        )
    return "\n".join(lines)
