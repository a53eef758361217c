"""Multi-horizon quantile demand forecasts: short-term XGBoost quantile regression with conformal
calibration, long-term collaborative-filtering weekly profiles, scheduled-event hints, and a
documented cold-start fallback.

Short term (horizon <= ``short_max_horizon`` steps): one XGBoost model per resource predicts several
quantiles at once (``reg:quantileerror``) of the normalised change ``(y[t+h] - anchor) / scale``
from the features of :mod:`cotenancy.predict.features`. A held-out slice at the end of the training
period (never the test data) then shifts each quantile so that its empirical coverage on that slice
equals its level (split-conformal calibration), because raw quantile regression can under-cover
on spiky series; the second half of that slice keeps each shift only where it lowers the
scale-weighted pinball loss (a shift fitted on little data is often noise).

Long term (longer horizons): the VM's weekly profile from :mod:`cotenancy.predict.profile`, scaled by
its recent mean, times the spread of its recent usage around that profile.

Cold start (no trained model file): the *recent-change* model — ``anchor + q-quantile of the
h-step changes seen in the window`` — which is robust (order statistics only) and horizon-aware.
Every :class:`Forecast` says which of ``trained`` / ``fallback`` produced each resource.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import xgboost as xgb
from oslo_config import cfg

from cotenancy.exceptions import SchemaMismatch
from cotenancy.model import ClusterState
from cotenancy.predict import features as feats
from cotenancy.predict.base import Forecast, Forecaster
from cotenancy.predict.hints import Hint, apply_hints, hints_from_conf
from cotenancy.predict.metrics import pinball_losses
from cotenancy.predict.profile import HOURS_PER_WEEK, WeeklyProfiles, hour_of_week, hourly_matrix
from cotenancy.predict.registry import (
    ModelBundle,
    ReloadingModel,
    load_bundle,
    model_dir,
    save_bundle,
    trained_when,
)

LOG = logging.getLogger(__name__)

KIND = "forecast"
DEFAULT_RESOURCES = ("cpu", "memory", "disk_io", "network", "gpu")
DEFAULT_ALPHAS = (0.5, 0.9, 0.95, 0.99)
DEFAULT_HORIZONS = (1, 3, 6, 12, 24, 36)
MIN_VALID = 6

Progress = Callable[[int], None]


@dataclass(slots=True)
class TrainingConfig:
    """Knobs of one training run (defaults are the documented ones; nothing is tuned on test data)."""

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    window_steps: int = 312
    #: set by :func:`train_forecaster` from the telemetry step ("yesterday" is a day of steps)
    steps_per_day: int = 288
    calibration_fraction: float = 0.15
    max_rows: int = 400_000
    rounds: int = 150
    incremental_rounds: int = 50
    max_depth: int = 6
    #: the least total row weight in a leaf (rows weigh 1 on average): a quantile leaf's value is a
    #: quantile of its rows' targets, steadier the more rows it has (200 lowered the mean p95 pinball
    #: over three seeds on held-out days inside the Bitbrains training period, against 50; 1000 did
    #: not, nor did 100 once three trees a round were averaged)
    min_child_weight: float = 200.0
    learning_rate: float = 0.1
    nthread: int = 2
    profile_rank: int = 4
    seed: int = 0
    #: rows weigh scale**weight_power: 1 trains exactly for pinball in project units, 0 treats every
    #: VM alike; 0.5 did better than 1 on held-out days *inside* the Bitbrains training period (a few
    #: huge, spiky VMs otherwise dominate the trees)
    weight_power: float = 0.5
    #: normalised targets are clipped to +-this many scales for training only: a VM waking from ~0
    #: to thousands makes z ~ 1e5, and one such row would otherwise become a whole leaf's p95
    z_clip: float = 30.0
    #: rows weigh 0.5 ** (age in days / this) as well, age counted back from the end of the fitted
    #: period, so the trees lean on recent behaviour (7 lowered both resources' p95 pinball on held-out
    #: days inside the Bitbrains training period, 14 only CPU's); 0 weighs every day alike
    recency_half_life_days: float = 7.0
    #: trees fitted per boosting round on different row and column samples and averaged (XGBoost's
    #: ``num_parallel_tree``): less variance from the sampling, at that many times the trees to fit
    #: and serve (3 lowered the mean p95 pinball over three seeds on held-out days inside the
    #: Bitbrains training period for both resources, against 1)
    parallel_trees: int = 3
    #: share of the features each tree may split on (0.5, with three trees a round, did worse on
    #: held-out days inside the Bitbrains training period)
    colsample_bytree: float = 0.8
    #: share of the rows each tree is fitted on (0.5, with three trees a round, did worse on held-out
    #: days inside the Bitbrains training period)
    subsample: float = 0.8
    #: give each VM its own phase within the stride between training origins, so the same number
    #: of rows covers that many times more instants (without it every VM is sampled at the same
    #: ~130 instants of the Bitbrains training period); it raised the mean p95 pinball over three
    #: seeds on held-out days inside that period for both resources, so it stays off
    stagger_origins: bool = False


@dataclass(slots=True)
class TrainedForecaster:
    """A trained forecaster in memory (what a model file holds)."""

    boosters: dict[str, xgb.Booster]
    alphas: tuple[float, ...]
    horizons: tuple[int, ...]
    offsets: dict[str, np.ndarray]  # resource -> (len(horizons), len(alphas)), normalised units
    profiles: dict[str, WeeklyProfiles] = field(default_factory=dict)
    known_users: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # resource -> vm -> u
    window_steps: int = 312
    steps_per_day: int = 288
    metadata: dict = field(default_factory=dict)

    def to_bundle(self) -> ModelBundle:
        arrays: dict[str, np.ndarray] = {}
        class_names: dict[str, list[str]] = {}
        user_ids: dict[str, list[str]] = {}
        for resource, offsets in self.offsets.items():
            arrays[f"offsets/{resource}"] = offsets
        for resource, profile in self.profiles.items():
            class_names[resource] = sorted(profile.class_factors)
            for key, value in profile.to_arrays().items():
                arrays[f"profile/{resource}/{key}"] = value
            users = self.known_users.get(resource, {})
            user_ids[resource] = sorted(users)
            if users:
                arrays[f"users/{resource}"] = np.array([users[v] for v in user_ids[resource]])
        metadata = dict(self.metadata)
        metadata.update(
            alphas=list(self.alphas),
            horizons=list(self.horizons),
            window_steps=self.window_steps,
            steps_per_day=self.steps_per_day,
            profile_classes=class_names,
            profile_users=user_ids,
            feature_names=list(feats.FORECAST_FEATURES),
        )
        return ModelBundle(KIND, feats.FORECAST_SCHEMA, metadata, dict(self.boosters), arrays)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> TrainedForecaster:
        """Check every part serving uses here, so a malformed file raises one
        :class:`~cotenancy.exceptions.ModelFileError` naming it, not an untyped error mid-forecast."""
        bundle.require(metadata=("alphas", "horizons", "window_steps", "steps_per_day"))
        meta = bundle.metadata
        alphas = bundle.numbers("alphas")
        if not all(0.0 < a < 1.0 for a in alphas) or list(alphas) != sorted(set(alphas)):
            raise bundle.problem(f"metadata 'alphas' must be increasing levels in (0, 1), not {list(alphas)}")
        horizons = bundle.numbers("horizons")
        if not all(h >= 1 and h == int(h) for h in horizons):
            raise bundle.problem(f"metadata 'horizons' must be positive integers, not {list(horizons)}")
        window_steps, steps_per_day = bundle.count("window_steps"), bundle.count("steps_per_day")
        step = meta.get("step_seconds")
        if step is not None and (
            isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf
        ):
            raise bundle.problem(f"metadata 'step_seconds' must be a positive number, not {step!r}")
        offsets: dict[str, np.ndarray] = {}
        for resource, booster in bundle.boosters.items():
            if booster.num_features() != len(feats.FORECAST_FEATURES):
                raise bundle.problem(
                    f"booster {resource!r} takes {booster.num_features()} features, "
                    f"the schema has {len(feats.FORECAST_FEATURES)}"
                )
            offsets[resource] = bundle.array(f"offsets/{resource}", (len(horizons), len(alphas)))
        profiles: dict[str, WeeklyProfiles] = {}
        users: dict[str, dict[str, np.ndarray]] = {}
        profile_users = bundle.mapping("profile_users")
        for resource, names in bundle.mapping("profile_classes").items():
            ids = profile_users.get(resource, [])
            if not isinstance(names, list) or not isinstance(ids, list):
                raise bundle.problem(f"metadata of the {resource!r} profile must list classes and users")
            prefix = f"profile/{resource}/"
            items = bundle.array(prefix + "items", (HOURS_PER_WEEK, None))
            rank = items.shape[1]
            arrays = {
                "items": items,
                "global": bundle.array(prefix + "global", (rank,)),
                "classes": bundle.array(prefix + "classes", (len(names), rank)),
                "ridge": bundle.array(prefix + "ridge", (1,)),
            }
            profiles[resource] = WeeklyProfiles.from_arrays(arrays, [str(n) for n in names])
            if ids:
                table = bundle.array(f"users/{resource}", (len(ids), rank))
                users[resource] = dict(zip((str(i) for i in ids), table, strict=True))
        return cls(
            boosters=dict(bundle.boosters),
            alphas=alphas,
            horizons=tuple(int(h) for h in horizons),
            offsets=offsets,
            profiles=profiles,
            known_users=users,
            window_steps=window_steps,
            steps_per_day=steps_per_day,
            metadata=meta,
        )


def fallback_quantiles(values: np.ndarray, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
    """Cold-start forecast ``(n, len(quantiles))``: anchor + quantiles of the ``horizon``-step changes
    in the window; when the window is too short for that, the quantiles of the window's values."""
    values = feats.clean(values)
    n, width = values.shape
    anchor = feats.last_valid(values)
    level = feats.nanquantiles(values, tuple(quantiles)) if width else np.full((n, len(quantiles)), np.nan)
    out = level
    if 0 < horizon < width // 2:
        changes = values[:, horizon:] - values[:, :-horizon]
        enough = (~np.isnan(changes)).sum(axis=1) >= MIN_VALID
        by_change = anchor[:, None] + feats.nanquantiles(changes, tuple(quantiles))
        use = enough & ~np.isnan(anchor)
        out = np.where(use[:, None], by_change, level)
    return np.maximum(np.nan_to_num(out, nan=0.0), 0.0)


def _interpolate_quantiles(z: np.ndarray, alphas: Sequence[float], wanted: Sequence[float]) -> np.ndarray:
    """Linear interpolation along the quantile axis; outside the trained range the nearest one."""
    if tuple(alphas) == tuple(wanted):
        return z
    out = np.empty((z.shape[0], len(wanted)))
    a = np.asarray(alphas)
    for j, q in enumerate(wanted):
        k = int(np.searchsorted(a, q))
        if k < len(a) and math.isclose(a[k], q):
            out[:, j] = z[:, k]
        elif k == 0:
            out[:, j] = z[:, 0]
        elif k == len(a):
            out[:, j] = z[:, -1]
        else:
            w = (q - a[k - 1]) / (a[k] - a[k - 1])
            out[:, j] = (1 - w) * z[:, k - 1] + w * z[:, k]
    return out


def _booster_params(config: TrainingConfig) -> dict:
    return {
        "objective": "reg:quantileerror",
        "quantile_alpha": np.asarray(config.alphas),
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "min_child_weight": config.min_child_weight,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "max_bin": 128,
        "num_parallel_tree": config.parallel_trees,
        "nthread": config.nthread,
        "seed": config.seed,
    }


def predict_normalised(booster: xgb.Booster, x: np.ndarray, n_alphas: int) -> np.ndarray:
    if x.shape[0] == 0:
        return np.zeros((0, n_alphas))
    z = booster.inplace_predict(x, missing=np.nan)
    return np.asarray(z, dtype=np.float64).reshape(x.shape[0], n_alphas)


def stacked_windows(
    clean: np.ndarray, origins: Sequence[int], window_steps: int, phases: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at each origin, stacked origin-major: ``(len(origins) * n, window_steps)``
    (NaN before the first sample), and the origin index of each row. ``phases`` (one per VM) moves
    each VM's origins that many steps later, up to the last sample."""
    n, total = clean.shape
    padded = np.concatenate([np.full((n, window_steps - 1), np.nan), clean], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(padded, window_steps, axis=1)
    idx = np.asarray(origins, dtype=int)
    if phases is None:
        stacked = np.ascontiguousarray(view[:, idx].transpose(1, 0, 2)).reshape(len(idx) * n, window_steps)
        return stacked, np.repeat(idx, n)
    cols = np.minimum(idx[:, None] + np.asarray(phases, dtype=int)[None, :], total - 1)
    stacked = view[np.arange(n)[None, :], cols].reshape(len(idx) * n, window_steps)
    return stacked, cols.reshape(-1)


def build_rows(
    values: np.ndarray,
    timestamps: np.ndarray,
    step_seconds: float,
    origins: Sequence[int],
    horizons: Sequence[int],
    window_steps: int,
    steps_per_day: int,
    size: np.ndarray | None,
    batch_rows: int = 20_000,
    phases: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows: features at each origin, normalised target, and the target's column index.

    Rows whose target is invalid, or whose VM had no valid sample in the last 12 steps, are dropped.
    ``phases`` staggers the VMs' origins (see :func:`stacked_windows`).
    """
    xs, zs, cols = [], [], []
    clean = feats.clean(values)
    n, total = clean.shape
    per_batch = max(1, batch_rows // max(n, 1))
    origins = list(origins)
    for b in range(0, len(origins), per_batch):
        batch = origins[b : b + per_batch]
        windows, origin_of_row = stacked_windows(clean, batch, window_steps, phases)
        vm_of_row = np.tile(np.arange(n), len(batch))
        row_size = None if size is None else size[vm_of_row]
        recent = (~np.isnan(windows[:, -12:])).sum(axis=1) > 0
        for h in horizons:
            target_col = origin_of_row + h
            inside = target_col < total
            y = np.full(len(target_col), np.nan)
            y[inside] = clean[vm_of_row[inside], target_col[inside]]
            keep = ~np.isnan(y) & recent
            if not keep.any():
                continue
            x, anchor, scale = feats.forecast_features(
                windows[keep],
                timestamps[origin_of_row[keep]],
                h,
                step_seconds,
                None if row_size is None else row_size[keep],
                steps_per_day,
            )
            xs.append(x)
            zs.append((y[keep] - anchor) / scale)
            cols.append(target_col[keep])
    if not xs:
        return np.zeros((0, len(feats.FORECAST_FEATURES)), np.float32), np.zeros(0), np.zeros(0, int)
    return np.vstack(xs), np.concatenate(zs), np.concatenate(cols)


def row_weights(log_scale: np.ndarray, age_days: np.ndarray, config: TrainingConfig) -> np.ndarray:
    """Training weights, mean 1: (a power of) each row's scale, since pinball in project units is
    scale x pinball in normalised units, times a recency decay by the age of the row's target."""
    weight = np.power(10.0, config.weight_power * log_scale)
    if config.recency_half_life_days > 0:
        weight = weight * np.power(0.5, age_days / config.recency_half_life_days)
    return weight / weight.mean()


def _conformal_offsets(z: np.ndarray, pred: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Shift per quantile so the held-out share of ``z <= pred + shift`` equals its level."""
    m = len(z)
    out = np.zeros(len(alphas))
    if m < 20:
        return out
    for j, a in enumerate(alphas):
        level = min(1.0, math.ceil((m + 1) * a) / m)
        out[j] = float(np.quantile(z - pred[:, j], level, method="higher"))
    return out


def _shift_helps(
    z: np.ndarray, pred: np.ndarray, scale: np.ndarray, shifts: np.ndarray, alphas: Sequence[float]
) -> np.ndarray:
    """Per quantile: does the conformal shift lower the pinball loss in project units (normalised
    loss x scale) on the second held-out half? On spiky traces a shift fitted on one day and a half
    is often noise; this keeps it only where it is not, a choice made on training data alone."""
    out = np.zeros(len(alphas), dtype=bool)
    if len(z) < 20:
        return out
    for j, a in enumerate(alphas):
        raw = pinball_losses(z, pred[:, j], a)
        shifted = pinball_losses(z - pred[:, j] - shifts[j], 0.0, a)
        out[j] = float(np.sum(shifted * scale)) < float(np.sum(raw * scale))
    return out


def train_forecaster(
    values: Mapping[str, np.ndarray],
    timestamps: np.ndarray,
    step_seconds: float,
    sizes: Mapping[str, np.ndarray] | None = None,
    vm_ids: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    config: TrainingConfig | None = None,
    previous: TrainedForecaster | None = None,
    progress: Progress | None = None,
) -> TrainedForecaster:
    """Train on ``values[resource]`` ``(n_vms, T)`` in project units on a regular grid.

    The last ``calibration_fraction`` of the period is held out: its first half fits the conformal
    shifts, its second half measures the validation metrics stored with the model. ``previous``
    continues boosting its trees on this (newer) data instead of starting afresh; its horizons and
    "yesterday" count steps, so history of another step is refused (``ValueError``), as are other
    quantile levels (its trees have one output per level).
    """
    config = replace(config or TrainingConfig(), steps_per_day=feats.steps_in_a_day(step_seconds))
    before = previous.metadata.get("step_seconds") if previous is not None else None
    if before is not None and not math.isclose(float(before), float(step_seconds)):
        raise ValueError(
            f"the model to continue was trained on {float(before):g} s telemetry steps and the new "
            f"history has {float(step_seconds):g} s steps: train afresh (without --incremental)"
        )
    if previous is not None and tuple(previous.alphas) != tuple(config.alphas):
        raise ValueError(
            f"the model to continue learnt the quantiles {', '.join(map(str, previous.alphas))} and "
            f"training asks for {', '.join(map(str, config.alphas))}: train afresh (without --incremental)"
        )
    timestamps = np.asarray(timestamps, dtype=np.float64)
    total = len(timestamps)
    start_origin = min(config.steps_per_day, max(total // 3, 1))
    horizons = tuple(sorted(set(config.horizons)))
    calib_start = start_origin + int((1 - config.calibration_fraction) * (total - start_origin))
    calib_mid = calib_start + (total - calib_start) // 2
    boosters, offsets, profiles, users, metrics = {}, {}, {}, {}, {}
    for resource, matrix in values.items():
        matrix = np.asarray(matrix, dtype=np.float64)
        if not np.isfinite(matrix).any():
            continue
        size = None if sizes is None or resource not in sizes else np.asarray(sizes[resource], float)
        n_vms = matrix.shape[0]
        per_origin = max(n_vms * len(horizons), 1)
        stride = max(1, math.ceil((total - start_origin) * per_origin / config.max_rows))
        origins = list(range(start_origin, total - 1, stride))
        phases = (
            np.random.default_rng(config.seed).integers(0, stride, n_vms) if config.stagger_origins else None
        )
        x, z, target_col = build_rows(
            matrix,
            timestamps,
            step_seconds,
            origins,
            horizons,
            config.window_steps,
            config.steps_per_day,
            size,
            phases=phases,
        )
        if progress:
            progress(1)
        fit = target_col < calib_start
        if fit.sum() < 50:
            LOG.warning("too little valid history to train %s forecasts (%d rows)", resource, fit.sum())
            continue
        log_scale = x[fit, feats.FORECAST_FEATURES.index("log_scale")].astype(np.float64)
        weight = row_weights(log_scale, (calib_start - target_col[fit]) * step_seconds / feats.DAY, config)
        dtrain = xgb.DMatrix(
            x[fit],
            label=np.clip(z[fit], -config.z_clip, config.z_clip),
            missing=np.nan,
            weight=weight,
            feature_names=list(feats.FORECAST_FEATURES),
        )
        prior = previous.boosters.get(resource) if previous is not None else None
        booster = xgb.train(
            _booster_params(config),
            dtrain,
            num_boost_round=config.incremental_rounds if prior is not None else config.rounds,
            xgb_model=prior,
        )
        booster.set_param({"nthread": config.nthread})
        calib = (target_col >= calib_start) & (target_col < calib_mid)
        hold = target_col >= calib_mid
        horizon_of_row = x[:, feats.FORECAST_FEATURES.index("horizon")].astype(int)
        table = np.zeros((len(horizons), len(config.alphas)))
        pred_all = predict_normalised(booster, x[calib | hold], len(config.alphas))
        pred = np.zeros((len(z), len(config.alphas)))
        pred[calib | hold] = pred_all
        row_scale = np.power(10.0, x[:, feats.FORECAST_FEATURES.index("log_scale")].astype(np.float64))
        kept = np.zeros_like(table, dtype=bool)
        for i, h in enumerate(horizons):
            rows = calib & (horizon_of_row == h)
            table[i] = _conformal_offsets(z[rows], pred[rows], config.alphas)
            checks = hold & (horizon_of_row == h)
            kept[i] = _shift_helps(z[checks], pred[checks], row_scale[checks], table[i], config.alphas)
            table[i] = np.where(kept[i], table[i], 0.0)
        offsets[resource] = table
        boosters[resource] = booster
        metrics[resource] = _validation_metrics(z, pred, hold, horizon_of_row, horizons, table, config.alphas)
        metrics[resource]["conformal_shifts_kept"] = float(kept.mean())
        profile, user_map = _fit_profiles(
            matrix[:, :calib_start], timestamps[:calib_start], vm_ids, classes, config
        )
        if profile is not None:
            profiles[resource] = profile
            users[resource] = user_map
        if progress:
            progress(1)
    return TrainedForecaster(
        boosters=boosters,
        alphas=tuple(config.alphas),
        horizons=horizons,
        offsets=offsets,
        profiles=profiles,
        known_users=users,
        window_steps=config.window_steps,
        steps_per_day=config.steps_per_day,
        metadata={
            "training_window": [float(timestamps[0]), float(timestamps[-1])] if total else [],
            "calibration_window": [float(timestamps[min(calib_start, total - 1)]), float(timestamps[-1])]
            if total
            else [],
            "validation": metrics,
            "step_seconds": step_seconds,
            "incremental": previous is not None,
            "rounds": int(next(iter(boosters.values())).num_boosted_rounds()) if boosters else 0,
            "trained_at": time.time(),
        },
    )


def _validation_metrics(z, pred, hold, horizon_of_row, horizons, table, alphas) -> dict[str, float]:
    """Metrics on the last half of the held-out slice, after calibration (normalised units)."""
    if not hold.any():
        return {}
    shifted = pred.copy()
    for i, h in enumerate(horizons):
        rows = horizon_of_row == h
        shifted[rows] += table[i]
    shifted = np.maximum.accumulate(shifted, axis=1)
    out: dict[str, float] = {"rows": float(hold.sum())}
    for j, a in enumerate(alphas):
        out[f"coverage_p{round(a * 100)}"] = float(np.mean(z[hold] <= shifted[hold, j]))
        out[f"pinball_p{round(a * 100)}"] = float(np.mean(pinball_losses(z[hold], shifted[hold, j], a)))
    if 0.5 in alphas:
        out["mae_p50"] = float(np.mean(np.abs(z[hold] - shifted[hold, list(alphas).index(0.5)])))
    return out


def _fit_profiles(matrix, timestamps, vm_ids, classes, config) -> tuple[WeeklyProfiles | None, dict]:
    if len(timestamps) < 24 * 3600 / max(
        float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 1.0, 1.0
    ):
        return None, {}
    hourly, _ = hourly_matrix(feats.clean(matrix), timestamps)
    if np.isnan(hourly).all():
        return None, {}
    profile = WeeklyProfiles.fit(
        hourly, list(classes) if classes is not None else None, rank=config.profile_rank, seed=config.seed
    )
    users = {}
    if vm_ids is not None:
        for i, vm in enumerate(vm_ids):
            if not np.isnan(hourly[i]).all():
                users[vm] = profile.user_factor(hourly[i], classes[i] if classes is not None else None)
    return profile, users


class HybridForecaster(Forecaster):
    """The default forecaster plugin (``cotenancy.predictors.forecast: default``)."""

    name = "default"
    group = "forecast_default"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        training = TrainingConfig()
        return [
            cfg.StrOpt(
                "model_file",
                default="forecast.json",
                help="File name of the trained forecaster inside [predict] model_dir.",
            ),
            cfg.IntOpt(
                "short_max_horizon",
                default=36,
                min=1,
                help="Longest horizon (steps) served by the short-term model; longer ones use "
                "the weekly collaborative-filtering profiles.",
            ),
            cfg.ListOpt(
                "train_horizons",
                default=[str(h) for h in DEFAULT_HORIZONS],
                help="Horizons (steps) the short-term model is trained on.",
            ),
            cfg.ListOpt(
                "train_quantiles",
                default=[str(a) for a in DEFAULT_ALPHAS],
                help="Quantile levels the model learns; others are interpolated.",
            ),
            cfg.IntOpt("rounds", default=training.rounds, min=1, help="Boosting rounds of a fresh training."),
            cfg.IntOpt(
                "parallel_trees",
                default=training.parallel_trees,
                min=1,
                help="Trees fitted per round on different samples and averaged: steadier quantiles, "
                "at that many times the training and serving time (1 is the fastest).",
            ),
            cfg.IntOpt(
                "incremental_rounds",
                default=training.incremental_rounds,
                min=1,
                help="Rounds added by an incremental retraining.",
            ),
            cfg.IntOpt(
                "max_rows", default=training.max_rows, min=1000, help="Cap on training rows per resource."
            ),
            cfg.IntOpt(
                "nthread", default=training.nthread, min=1, help="Threads for training and prediction."
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts | None = None, model_path: str | Path | None = None) -> None:
        super().__init__(conf)
        opts = self.options
        if model_path is None:
            model_path = model_dir(conf) / (opts.model_file if opts is not None else "forecast.json")
        self.model_path = Path(model_path)
        self.short_max_horizon = opts.short_max_horizon if opts is not None else 36
        self.nthread = opts.nthread if opts is not None else 2
        self.window_steps = conf.predict.window_steps if conf is not None else 312
        self.hints: list[Hint] = hints_from_conf(conf)
        self._model = ReloadingModel(self.model_path, self._load)
        self._pinned: TrainedForecaster | None = None
        #: the telemetry step last forecast from: a file replaced by a model of another step cannot
        #: serve it, so it is refused as a damaged one is and the model loaded before keeps serving
        self._serving_step: float | None = None

    def pin(self, model: TrainedForecaster | None) -> None:
        """Serve this in-memory model instead of the file (evaluation, tests); ``None`` unpins."""
        self._pinned = model

    def _load(self, path: Path) -> TrainedForecaster:
        model = TrainedForecaster.from_bundle(load_bundle(path, KIND, feats.FORECAST_SCHEMA, self.nthread))
        if self._serving_step is not None:
            _check_step(model, self._serving_step, f"{path}: ")
        LOG.info("loaded forecaster from %s (trained %s)", path, trained_when(model.metadata))
        return model

    @property
    def model_problem(self) -> str | None:
        """Why the model file on disk is not being served (the last good model, if any, still is),
        for the API or loop to report; ``None`` when it is served or absent."""
        return self._model.problem

    @property
    def model(self) -> TrainedForecaster | None:
        return self._pinned if self._pinned is not None else self._model.get()

    @property
    def trained(self) -> bool:
        return self.model is not None

    def training_config(self) -> TrainingConfig:
        opts = self.options
        if opts is None:
            return TrainingConfig(window_steps=self.window_steps)
        return TrainingConfig(
            horizons=tuple(int(h) for h in opts.train_horizons),
            alphas=tuple(sorted(float(a) for a in opts.train_quantiles)),
            window_steps=self.window_steps,
            max_rows=opts.max_rows,
            rounds=opts.rounds,
            parallel_trees=opts.parallel_trees,
            incremental_rounds=opts.incremental_rounds,
            nthread=opts.nthread,
        )

    def save(self, model: TrainedForecaster) -> Path:
        path = save_bundle(model.to_bundle(), self.model_path)
        self._model.invalidate()
        return path

    def forecast(
        self,
        state: ClusterState,
        horizons: Sequence[int],
        quantiles: Sequence[float] = (0.5, 0.95),
    ) -> Forecast:
        tele = state.telemetry
        vms = state.inventory.vms
        resources = [r for r in DEFAULT_RESOURCES if r in tele.values]
        sizes = {
            r: np.array([vms[v].size[r] if v in vms else np.nan for v in tele.vm_ids]) for r in resources
        }
        classes = [vms[v].workload.app_type if v in vms else None for v in tele.vm_ids]
        origin = float(tele.timestamps[-1]) if len(tele.timestamps) else state.now
        forecast = self.forecast_arrays(
            {r: tele.values[r] for r in resources},
            origin,
            tele.step_seconds,
            horizons,
            quantiles,
            sizes=sizes,
            vm_ids=tele.vm_ids,
            classes=classes,
        )
        if self.hints:
            keys = [(v, vms[v].name) if v in vms else (v,) for v in tele.vm_ids]
            times = origin + np.asarray(forecast.horizons, float) * tele.step_seconds
            applied = apply_hints(forecast.values, self.hints, keys, times)
            if applied:
                forecast.source["hints"] = ",".join(applied)
        return forecast

    def forecast_arrays(
        self,
        values: Mapping[str, np.ndarray],
        origin: float,
        step_seconds: float,
        horizons: Sequence[int],
        quantiles: Sequence[float] = (0.5, 0.95),
        sizes: Mapping[str, np.ndarray] | None = None,
        vm_ids: Sequence[str] | None = None,
        classes: Sequence[str | None] | None = None,
    ) -> Forecast:
        """The array form of :meth:`forecast` (windows ``(n, T)``, last column at ``origin``).

        A trained model serves only telemetry on the step it was trained on: on another, its
        horizons and "yesterday" would silently mean other times (:class:`SchemaMismatch`)."""
        self._serving_step = float(step_seconds)
        model = self.model
        if model is not None:
            _check_step(model, step_seconds)
        quantiles = tuple(float(q) for q in quantiles)
        horizons = tuple(int(h) for h in horizons)
        out: dict[str, np.ndarray] = {}
        source: dict[str, str] = {}
        n = 0
        for resource, window in values.items():
            window = feats.clean(np.asarray(window, dtype=np.float64))
            n = window.shape[0]
            size = None if sizes is None or resource not in sizes else np.asarray(sizes[resource], float)
            cube = np.zeros((n, len(horizons), len(quantiles)))
            trained = model is not None and resource in model.boosters
            short = [h for h in horizons if trained and h <= self.short_max_horizon]
            rows = (
                dict(
                    zip(
                        short,
                        feats.forecast_features_multi(
                            window, origin, tuple(short), step_seconds, size, model.steps_per_day
                        ),
                        strict=True,
                    )
                )
                if short
                else {}
            )
            for i, h in enumerate(horizons):
                if h in rows:
                    cube[:, i] = self._short_term(model, resource, rows[h], h, quantiles)
                elif trained and resource in model.profiles:
                    cube[:, i] = self._long_term(
                        model, resource, window, origin, step_seconds, h, quantiles, vm_ids, classes
                    )
                else:
                    cube[:, i] = fallback_quantiles(window, h, quantiles)
            cube = self._no_history(cube, window, size, quantiles)
            out[resource] = cube
            source[resource] = "trained" if trained else "fallback"
        return Forecast(
            vm_ids=list(vm_ids) if vm_ids is not None else [str(i) for i in range(n)],
            origin=origin,
            step_seconds=step_seconds,
            horizons=horizons,
            quantiles=quantiles,
            values=out,
            source=source,
        )

    @staticmethod
    def _no_history(cube, window, size, quantiles) -> np.ndarray:
        """VMs without one valid sample: half their size at the median, their whole size above it
        (conservative), or 0 when the size is unknown too."""
        empty = (~np.isnan(window)).sum(axis=1) == 0
        if not empty.any():
            return cube
        guess = np.zeros((len(window), len(quantiles)))
        if size is not None:
            s = np.nan_to_num(size, nan=0.0)
            for j, q in enumerate(quantiles):
                guess[:, j] = s * (0.5 if q <= 0.5 else 1.0)
        cube[empty] = guess[empty][:, None, :]
        return cube

    def _short_term(self, model, resource, rows, h, quantiles) -> np.ndarray:
        x, anchor, scale = rows
        z = predict_normalised(model.boosters[resource], x, len(model.alphas))
        hi = int(np.argmin(np.abs(np.asarray(model.horizons) - h)))
        z = np.maximum.accumulate(z + model.offsets[resource][hi], axis=1)
        z = _interpolate_quantiles(z, model.alphas, quantiles)
        return np.maximum(anchor[:, None] + z * scale[:, None], 0.0)

    def _long_term(self, model, resource, window, origin, step, h, quantiles, vm_ids, classes):
        """Weekly profile x recent mean x recent spread around the profile."""
        profile = model.profiles[resource]
        known = model.known_users.get(resource, {})
        n, width = window.shape
        times = origin - step * np.arange(width - 1, -1, -1)
        hourly, _ = hourly_matrix(window, times) if width else (np.full((n, 168), np.nan), None)
        users = np.array(
            [
                known[vm_ids[i]]
                if vm_ids is not None and vm_ids[i] in known
                else profile.user_factor(hourly[i], classes[i] if classes is not None else None)
                for i in range(n)
            ]
        )
        items_now = profile.item_factors[hour_of_week(times)]  # (width, k)
        shape_now = np.maximum(users @ items_now.T, 1e-3)  # (n, width)
        mean = np.nan_to_num(feats.row_nanmean(window), nan=0.0)
        ratio = window / (mean[:, None] * shape_now + 1e-9)
        spread = feats.nanquantiles(ratio, quantiles)
        spread = np.where(np.isnan(spread), 1.0, spread)
        target = np.maximum(users @ profile.item_factors[hour_of_week(origin + h * step)], 0.0)
        return np.maximum(mean[:, None] * target[:, None] * spread, 0.0)


def _check_step(model: TrainedForecaster, step_seconds: float, where: str = "") -> None:
    """A model's horizons and "yesterday" count steps of the telemetry it was trained on."""
    trained_step = model.metadata.get("step_seconds")
    if trained_step is not None and not math.isclose(float(trained_step), float(step_seconds)):
        raise SchemaMismatch(
            f"{where}the forecaster was trained on {float(trained_step):g} s telemetry steps and is "
            f"asked to forecast from {float(step_seconds):g} s steps: retrain it on this telemetry"
        )


def train_and_save(
    forecaster: HybridForecaster,
    values: Mapping[str, np.ndarray],
    timestamps: np.ndarray,
    step_seconds: float,
    sizes: Mapping[str, np.ndarray] | None = None,
    vm_ids: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    incremental: bool = False,
    progress: Progress | None = None,
) -> TrainedForecaster:
    """Train (continuing the current model when ``incremental``) and atomically replace the file."""
    previous = forecaster.model if incremental else None
    model = train_forecaster(
        values,
        timestamps,
        step_seconds,
        sizes,
        vm_ids,
        classes,
        forecaster.training_config(),
        previous,
        progress,
    )
    if not model.boosters:
        return model
    forecaster.save(model)
    return model
