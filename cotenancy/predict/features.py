"""Feature definitions shared by training and serving (one code path, so they cannot drift apart).

Inputs are telemetry windows (``(n_vms, T)`` arrays, last column = now). Every function is vectorised
over VMs so that serving 10,000 VMs costs a few numpy passes.

Invalid samples: a NaN, an infinity or a negative value is *not* a measurement. :func:`clean` turns
them all into NaN; the features below are NaN-aware (statistics over the valid samples only) and a
feature with no valid input is NaN, which XGBoost treats as "missing" and routes down the learned
default branch. Training rows whose *target* is invalid are dropped, never imputed.

Bump :data:`FORECAST_SCHEMA` / :data:`PAIR_SCHEMA` whenever a definition changes: serving refuses a
model trained on another schema.
"""

from __future__ import annotations

import numpy as np

FORECAST_SCHEMA = "forecast-v1"
PAIR_SCHEMA = "pair-v1"

DAY = 86400.0
WEEK = 7 * DAY


def clean(values: np.ndarray) -> np.ndarray:
    """Float copy with every non-finite or negative sample replaced by NaN."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.isfinite(out) | (out < 0)] = np.nan
    return out


def _tail(values: np.ndarray, k: int) -> np.ndarray:
    return values[:, max(values.shape[1] - k, 0) :]


def _nanmean(a: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(a)
    count = valid.sum(axis=1)
    total = np.where(valid, a, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmax(a: np.ndarray) -> np.ndarray:
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    filled = np.where(np.isnan(a), -np.inf, a).max(axis=1)
    return np.where(np.isinf(filled), np.nan, filled)


def _nanmin(a: np.ndarray) -> np.ndarray:
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    filled = np.where(np.isnan(a), np.inf, a).min(axis=1)
    return np.where(np.isinf(filled), np.nan, filled)


def _nanstd(a: np.ndarray) -> np.ndarray:
    mean = _nanmean(a)
    dev = a - mean[:, None]
    return np.sqrt(_nanmean(dev * dev))


def nanquantiles(a: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``(n, len(qs))`` lower-order-statistic quantiles over the valid samples of each row (fast)."""
    ordered = np.sort(a, axis=1)  # NaN sorts last
    count = (~np.isnan(a)).sum(axis=1)
    out = np.full((a.shape[0], len(qs)), np.nan)
    rows = np.arange(a.shape[0])
    for j, q in enumerate(qs):
        idx = np.floor(q * np.maximum(count - 1, 0)).astype(int)
        out[:, j] = np.where(count > 0, ordered[rows, np.minimum(idx, max(a.shape[1] - 1, 0))], np.nan)
    return out


def last_valid(values: np.ndarray, within: int = 3) -> np.ndarray:
    """Most recent valid sample among the last ``within`` steps (NaN if none)."""
    tail = _tail(values, within)
    out = np.full(values.shape[0], np.nan)
    for j in range(tail.shape[1]):
        col = tail[:, j]
        out = np.where(np.isnan(col), out, col)
    return out


def _column(values: np.ndarray, offset_from_end: int) -> np.ndarray:
    """Column ``T-1-offset_from_end`` (NaN when out of the window)."""
    idx = values.shape[1] - 1 - offset_from_end
    if idx < 0 or idx >= values.shape[1]:
        return np.full(values.shape[0], np.nan)
    return values[:, idx]


def robust_scale(values: np.ndarray) -> np.ndarray:
    """Per-VM scale that keeps normalised features O(1) and never divides by ~0."""
    day = _tail(values, 288)
    mean = _nanmean(day)
    peak = _nanmax(day)
    scale = np.fmax(mean, 0.05 * peak)
    return np.where(np.isfinite(scale) & (scale > 1e-3), scale, 1e-3)


FORECAST_FEATURES = (
    "last",
    "mean_3",
    "mean_12",
    "mean_36",
    "mean_288",
    "max_6",
    "max_36",
    "max_288",
    "min_12",
    "std_12",
    "std_36",
    "std_288",
    "q50_288",
    "q90_288",
    "q99_288",
    "trend_3_12",
    "trend_12_36",
    "yday_target",
    "yday_target_max3",
    "yday_now",
    "yday_change",
    "missing_12",
    "hod_sin",
    "hod_cos",
    "dow",
    "horizon",
    "log_scale",
    "log_size",
)


def forecast_features(
    values: np.ndarray,
    origin: float | np.ndarray,
    horizon: int,
    step_seconds: float,
    size: np.ndarray | None = None,
    steps_per_day: int = 288,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features for forecasting ``horizon`` steps after the last column of ``values``.

    Returns ``(X, anchor, scale)``: ``X`` is ``(n, len(FORECAST_FEATURES))`` float32 normalised by
    ``scale``; a forecast in normalised units ``z`` maps back to ``anchor + z * scale`` (a monotone
    map, so quantiles survive it). ``anchor`` is the last valid sample, else the recent mean.
    ``origin`` may be a per-row array when rows stack windows of several origins.
    """
    values = clean(values)
    n = values.shape[0]
    scale = robust_scale(values)
    last = last_valid(values)
    mean3 = _nanmean(_tail(values, 3))
    mean12 = _nanmean(_tail(values, 12))
    mean36 = _nanmean(_tail(values, 36))
    mean288 = _nanmean(_tail(values, steps_per_day))
    anchor = np.where(np.isnan(last), np.where(np.isnan(mean288), 0.0, mean288), last)
    q = nanquantiles(_tail(values, steps_per_day), (0.5, 0.9, 0.99))
    yday_offset = steps_per_day - horizon
    yday_target = _column(values, yday_offset) if yday_offset >= 0 else np.full(n, np.nan)
    near = [_column(values, yday_offset + d) for d in (-1, 0, 1)] if yday_offset >= 1 else []
    yday_target_max3 = _nanmax(np.stack(near, axis=1)) if near else np.full(n, np.nan)
    yday_now = _column(values, steps_per_day)
    target_time = np.broadcast_to(np.asarray(origin, dtype=np.float64) + horizon * step_seconds, (n,))
    phase = 2 * np.pi * (target_time % DAY) / DAY
    raw = [
        last,
        mean3,
        mean12,
        mean36,
        mean288,
        _nanmax(_tail(values, 6)),
        _nanmax(_tail(values, 36)),
        _nanmax(_tail(values, steps_per_day)),
        _nanmin(_tail(values, 12)),
        _nanstd(_tail(values, 12)),
        _nanstd(_tail(values, 36)),
        _nanstd(_tail(values, steps_per_day)),
        q[:, 0],
        q[:, 1],
        q[:, 2],
        mean3 - mean12,
        mean12 - mean36,
        yday_target,
        yday_target_max3,
        yday_now,
        yday_target - yday_now,
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = [r / scale for r in raw]
    extra = [
        np.isnan(_tail(values, 12)).mean(axis=1) if values.shape[1] else np.ones(n),
        np.sin(phase),
        np.cos(phase),
        (target_time // DAY + 3) % 7,
        np.full(n, float(horizon)),
        np.log10(scale),
        np.log10(size) if size is not None else np.full(n, np.nan),
    ]
    features = np.column_stack(normalised + extra).astype(np.float32)
    return features, anchor, scale
