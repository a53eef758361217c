"""Strategies side by side on several trace days: one table per day and the mean.

This is how an operator judges a strategy against its peers before trusting it with a cloud: the
same days, the same simulated cloud, every strategy through the product's control loop. The
``predictive`` strategy's forecaster is trained on the *other* days only (leave one day out), so
no strategy sees the day it is judged on; its risk model is the plugin's heuristic, which has no
training data to leak.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from oslo_config import cfg

from cotenancy.exceptions import ConfigurationError
from cotenancy.sim.runner import SimulationResult, make_cloud, make_workload, run_cloud

#: metric key, column title, format: the columns of CloudSim's reports plus conflict-minutes
COLUMNS = [
    ("energy_kwh", "energy kWh", "{:.2f}"),
    ("slatah", "SLATAH %", "{:.3f}"),
    ("pdm", "PDM %", "{:.4f}"),
    ("slav", "SLAV %", "{:.6f}"),
    ("esv", "ESV", "{:.6f}"),
    ("migrations", "migrations", "{:.0f}"),
    ("conflict_minutes", "conflict-min", "{:.0f}"),
]


def trace_days(path: str | Path) -> list[Path]:
    """The day folders under ``path`` (a PlanetLab trace root), or ``path`` itself if it is one day
    (or one trace file)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigurationError(f"no such trace file or folder: {root}")
    days = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return days or [root]


def train_forecaster_excluding(test_day: Path, days: Sequence[Path], setup: str = "cloudsim"):
    """A forecaster trained on the VMs of every day in ``days`` but ``test_day`` (stacked as rows)."""
    from cotenancy.model import Resource
    from cotenancy.predict.forecast import train_forecaster
    from cotenancy.sim.setups import build_setup

    rows, sizes, names = [], [], []
    for day in days:
        if day == test_day:
            continue
        workload = make_workload(day)
        built = build_setup(workload, setup)
        utilisation = np.nan_to_num(workload.utilisation[Resource.CPU], nan=0.0)
        rows.append(utilisation * built.vm_cpu[:, None])
        sizes.append(built.vm_cpu)
        names += [f"{day.name}/{v}" for v in workload.vm_names]
    if not rows:
        raise ConfigurationError(f"no day other than {test_day.name} to train the forecaster on")
    steps = min(r.shape[1] for r in rows)
    matrix = np.vstack([r[:, :steps] for r in rows])
    return train_forecaster(
        {"cpu": matrix},
        np.arange(steps) * 300.0,
        300.0,
        sizes={"cpu": np.concatenate(sizes)},
        vm_ids=names,
        config=_training_config(),
    )


def _training_config():
    from cotenancy.predict.forecast import TrainingConfig

    return TrainingConfig(nthread=1, rounds=60, max_rows=150_000)


def forecaster_file_name(test_day: str) -> str:
    """Where :func:`forecaster_without` keeps the model trained without ``test_day``: the name
    carries the feature schema and a digest of the training settings, so a model trained by other
    code is retrained, not served."""
    from cotenancy.predict.features import FORECAST_SCHEMA

    return _kept_model_name(FORECAST_SCHEMA, dataclasses.asdict(_training_config()), test_day)


def _kept_model_name(schema: str, settings: object, test_day: str) -> str:
    """``{schema}-{digest of settings}-without-{test_day}.json``: one naming rule for every model a
    comparison keeps between runs."""
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:10]
    return f"{schema}-{digest}-without-{test_day}.json"


def risk_file_name(test_day: str) -> str:
    """What a risk model trained without ``test_day`` is kept as (the closed-loop benchmark's cache):
    the name carries the pair feature schema and a digest of the training settings (the booster's,
    :class:`RiskTrainingConfig`'s defaults and the label window), so a model trained by other code
    is retrained, not served."""
    from cotenancy.predict.evaluation import ConflictExperiment
    from cotenancy.predict.features import PAIR_SCHEMA
    from cotenancy.predict.risk import BOOSTER_PARAMS, RiskTrainingConfig

    label = dataclasses.asdict(ConflictExperiment(train=()))
    settings = (
        BOOSTER_PARAMS,
        RiskTrainingConfig(),
        {k: label[k] for k in sorted(label) if k not in ("train", "test")},
    )
    return "risk-" + _kept_model_name(PAIR_SCHEMA, settings, test_day)


def forecaster_without(test_day: Path, days: Sequence[Path], conf: cfg.ConfigOpts, model_dir: Path):
    """The default forecaster serving a model trained on every day but ``test_day``, trained once and
    kept in ``model_dir`` (:func:`forecaster_file_name`); with no other day, the untrained
    forecaster (nothing may leak)."""
    from cotenancy.predict.forecast import HybridForecaster

    if not [d for d in days if d != test_day]:
        return HybridForecaster(conf, model_path=model_dir / "no-forecast.json")
    path = model_dir / forecaster_file_name(test_day.name)
    forecaster = HybridForecaster(conf, model_path=path)
    if not path.exists():
        forecaster.save(train_forecaster_excluding(test_day, days))
    return forecaster


def predictive_without(test_day: Path, days: Sequence[Path], conf: cfg.ConfigOpts, model_dir: Path):
    """The ``predictive`` strategy for ``test_day``: :func:`forecaster_without`, heuristic risk model."""
    from cotenancy.predict.risk import XGBoostRiskModel
    from cotenancy.strategies.predictive import PredictiveStrategy

    risk = XGBoostRiskModel(conf, model_path=model_dir / "no-risk-model.json")
    forecaster = forecaster_without(test_day, days, conf, model_dir)
    return PredictiveStrategy(conf, risk_model=risk, forecaster=forecaster)


def compare(
    days: Sequence[Path],
    strategies: Sequence[str],
    conf: cfg.ConfigOpts,
    model_dir: Path,
    setup: str = "cloudsim",
    seed: int = 0,
    days_span: float = 1.0,
    interference: bool = True,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[tuple[str, str], SimulationResult]:
    """Run every strategy on every day; results keyed by (day folder name, strategy)."""
    from cotenancy import loading

    results: dict[tuple[str, str], SimulationResult] = {}
    for day in days:
        workload = make_workload(day, days=days_span)
        for name in strategies:
            say(f"{day.name}: {name}")
            if name == "predictive":
                strategy = predictive_without(day, days, conf, model_dir)
            else:
                strategy = loading.load_plugin(loading.STRATEGIES, name, conf)
            cloud = make_cloud(workload, setup, seed=seed, interference=interference)
            results[(day.name, name)] = run_cloud(cloud, strategy, conf, progress=progress)
    return results


def table(title: str, rows: dict[str, dict[str, float] | str]) -> str:
    """One table: a row of metrics per strategy (or the reason it has none)."""
    header = f"{'strategy':20}" + "".join(f"{name:>14}" for _, name, _ in COLUMNS)
    lines = [title, header, "-" * len(header)]
    for strategy, metrics in rows.items():
        if isinstance(metrics, str):
            lines.append(f"{strategy:20}  {metrics}")
            continue
        cells = "".join(f"{fmt.format(metrics[key]):>14}" for key, _, fmt in COLUMNS)
        lines.append(f"{strategy:20}{cells}")
    return "\n".join(lines)


def means(
    metrics: dict[tuple[str, str], dict[str, float]], days: Sequence[str], strategies: Sequence[str]
) -> dict[str, dict[str, float] | str]:
    """Each strategy's mean over ``days``; a strategy missing on any day gets the reason instead."""
    result: dict[str, dict[str, float] | str] = {}
    for s in strategies:
        ok = [metrics[(d, s)] for d in days if (d, s) in metrics]
        result[s] = (
            {key: float(np.mean([m[key] for m in ok])) for key, _, _ in COLUMNS}
            if len(ok) == len(days)
            else f"unavailable on {len(days) - len(ok)} of {len(days)} days"
        )
    return result
