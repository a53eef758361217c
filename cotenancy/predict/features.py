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

import math

import numpy as np

FORECAST_SCHEMA = "forecast-v2"
PAIR_SCHEMA = "pair-v2"

DAY = 86400.0
WEEK = 7 * DAY


#: above this no VM measures anything (a ZiB of memory, an EiB/s of network): a driver's garbage
#: (1e300 is finite and non-negative, so the store keeps it) would overflow squared deviations and
#: float32 features to infinity, which XGBoost refuses to train on
MAX_SAMPLE = 1e15


def clean(values: np.ndarray) -> np.ndarray:
    """Float copy with every sample that is not a measurement (non-finite, negative, above
    :data:`MAX_SAMPLE`) replaced by NaN."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.isfinite(out) | (out < 0) | (out > MAX_SAMPLE)] = np.nan
    return out


def _tail(values: np.ndarray, k: int) -> np.ndarray:
    return values[:, max(values.shape[1] - k, 0) :]


def row_nanmean(a: np.ndarray) -> np.ndarray:
    """Mean of each row's valid values; NaN for a row without one (and no numpy warning)."""
    valid = ~np.isnan(a)
    count = valid.sum(axis=1)
    total = np.where(valid, a, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def row_nanmax(a: np.ndarray) -> np.ndarray:
    """Largest of each row's valid values; NaN for a row without one (and no numpy warning)."""
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
    mean = row_nanmean(a)
    dev = a - mean[:, None]
    return np.sqrt(row_nanmean(dev * dev))


def nanquantiles(a: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``(n, len(qs))`` lower-order-statistic quantiles over the valid samples of each row (fast)."""
    out = np.full((a.shape[0], len(qs)), np.nan)
    if a.shape[1] == 0:  # no sample yet (a fresh cloud, a collector down longer than the window)
        return out
    ordered = np.sort(a, axis=1)  # NaN sorts last
    count = (~np.isnan(a)).sum(axis=1)
    rows = np.arange(a.shape[0])
    for j, q in enumerate(qs):
        idx = np.floor(q * np.maximum(count - 1, 0)).astype(int)
        out[:, j] = np.where(count > 0, ordered[rows, np.minimum(idx, a.shape[1] - 1)], np.nan)
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


def steps_in_a_day(step_seconds: float) -> int:
    """Telemetry steps in a day (at least one)."""
    if not (math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"a telemetry step must be a positive number of seconds, not {step_seconds!r}")
    return max(1, round(DAY / step_seconds))


def robust_scale(values: np.ndarray, day_steps: int = 288) -> np.ndarray:
    """Per-VM scale that keeps normalised features O(1) and never divides by ~0 (over the last
    day of ``day_steps`` samples)."""
    day = _tail(values, day_steps)
    mean = row_nanmean(day)
    peak = row_nanmax(day)
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
    "max_6_above_last",
    "max_36_above_last",
    "max_288_above_last",
    "q90_288_above_last",
    "q99_288_above_last",
    "mean_12_above_last",
    "yday_target_above_last",
    "yday_target_max3_above_last",
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
    return forecast_features_multi(values, origin, (horizon,), step_seconds, size, steps_per_day)[0]


def forecast_features_multi(
    values: np.ndarray,
    origin: float | np.ndarray,
    horizons: tuple[int, ...],
    step_seconds: float,
    size: np.ndarray | None = None,
    steps_per_day: int = 288,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`forecast_features` for several horizons; the window statistics (most of the cost)
    are computed once."""
    values = clean(values)
    n = values.shape[0]
    scale = robust_scale(values, steps_per_day)
    last = last_valid(values)
    mean3 = row_nanmean(_tail(values, 3))
    mean12 = row_nanmean(_tail(values, 12))
    mean36 = row_nanmean(_tail(values, 36))
    mean288 = row_nanmean(_tail(values, steps_per_day))
    anchor = np.where(np.isnan(last), np.where(np.isnan(mean288), 0.0, mean288), last)
    q = nanquantiles(_tail(values, steps_per_day), (0.5, 0.9, 0.99))
    yday_now = _column(values, steps_per_day)
    max6 = row_nanmax(_tail(values, 6))
    max36 = row_nanmax(_tail(values, 36))
    max288 = row_nanmax(_tail(values, steps_per_day))
    shared = [
        last,
        mean3,
        mean12,
        mean36,
        mean288,
        max6,
        max36,
        max288,
        _nanmin(_tail(values, 12)),
        _nanstd(_tail(values, 12)),
        _nanstd(_tail(values, 36)),
        _nanstd(_tail(values, steps_per_day)),
        q[:, 0],
        q[:, 1],
        q[:, 2],
        mean3 - mean12,
        mean12 - mean36,
    ]
    above_last = (max6, max36, max288, q[:, 1], q[:, 2], mean12)
    missing = np.isnan(_tail(values, 12)).mean(axis=1) if values.shape[1] else np.ones(n)
    # a size of 0 is what a cloud reports when it does not know it (and XGBoost refuses -inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_size = np.log10(np.where(size > 0, size, np.nan)) if size is not None else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        head = np.column_stack([r / scale for r in shared])
    out = []
    for horizon in horizons:
        yday_offset = steps_per_day - horizon
        yday_target = _column(values, yday_offset) if yday_offset >= 0 else np.full(n, np.nan)
        near = [_column(values, yday_offset + d) for d in (-1, 0, 1)] if yday_offset >= 1 else []
        yday_target_max3 = row_nanmax(np.stack(near, axis=1)) if near else np.full(n, np.nan)
        target_time = np.broadcast_to(np.asarray(origin, dtype=np.float64) + horizon * step_seconds, (n,))
        phase = 2 * np.pi * (target_time % DAY) / DAY
        with np.errstate(invalid="ignore", divide="ignore"):
            tail = [
                yday_target / scale,
                yday_target_max3 / scale,
                yday_now / scale,
                (yday_target - yday_now) / scale,
                missing,
                np.sin(phase),
                np.cos(phase),
                (target_time // DAY + 3) % 7,
                np.full(n, float(horizon)),
                np.log10(scale),
                log_size,
                *((stat - anchor) / scale for stat in (*above_last, yday_target, yday_target_max3)),
            ]
        features = np.empty((n, len(FORECAST_FEATURES)), dtype=np.float32)
        features[:, : head.shape[1]] = head
        features[:, head.shape[1] :] = np.column_stack(tail)
        out.append((features, anchor, scale))
    return out


# ---------------------------------------------------------------------------------------- pairs

PAIR_FEATURES = (
    "colocated_now",
    "host_used_last",
    "host_demand_last",
    "host_demand_mean",
    "host_demand_max3",
    "host_demand_lr",
    "host_demand_slope",
    "pair_demand_last",
    "pair_demand_lr",
    "pair_util_max",
    "pair_util_min",
    "pair_corr",
    "host_ready_max",
    "pair_ready_max",
    "pair_ready_min",
    "pair_ready_mean_max",
    "host_activity",
    "host_activity_others",
    "host_vms",
    "host_memory",
    "vm_conflicts_max",
    "vm_conflicts_min",
    "vm_recent_conflicts_max",
    "vm_recent_conflicts_min",
    "pair_conflicts",
    "class_conflict_rate_max",
    "priority_max",
    "same_app",
    "hod_sin",
    "hod_cos",
    "log_host_cpu",
    "pair_sensitivity_max",
    "pair_sensitivity_min",
    "pair_slowdown_now_max",
    "pair_slowdown_now_min",
    "pair_slowdown_ahead_max",
    "pair_slowdown_ahead_min",
    "host_activity_ahead",
    "vm_present_conflicts_max",
    "host_lr_mmt",
    "host_util_rank",
    "pair_size_min",
    "pair_size_max",
    "pair_migrations_max",
    "pair_since_migration_min",
    "pair_ram_min",
    "pair_has_smallest_ram",
    "pair_mmt_load_max",
    "host_active_rank",
)

LR_MMT_LENGTH = 10

# The saturating neighbour-load curve x / (x + INTERFERENCE_HALF_LOAD) of shared-cache interference
# (docs/interference-model.md): 3.5 is the mean neighbour activity on its reference host (7
# neighbours). A modelling prior for the sensitivity estimate, not a trait of any VM.
INTERFERENCE_HALF_LOAD = 3.5


def load_curve(load: np.ndarray) -> np.ndarray:
    load = np.maximum(load, 0.0)
    return load / (load + INTERFERENCE_HALF_LOAD)


def linear_stats(series: np.ndarray, ahead: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, least-squares slope per step and the line's value ``ahead`` steps after the last column.

    All three are linear in the series, so a host's stats minus a VM's equal the stats of the host
    without that VM: hypothetical placements cost no extra pass over the windows.
    """
    width = series.shape[-1]
    x = np.arange(width, dtype=np.float64) - (width - 1) / 2.0
    denom = float((x * x).sum()) or 1.0
    mean = series.mean(axis=-1)
    slope = (series * x).sum(axis=-1) / denom
    return mean, slope, mean + slope * ((width - 1) / 2.0 + ahead)


class PairContext:
    """Everything pair features need from one moment of one cloud, as arrays (built once, used for
    millions of pairs). ``host_of[i]`` indexes ``host_cpu`` (-1: not placed)."""

    def __init__(
        self,
        cpu: np.ndarray,
        demand: np.ndarray | None,
        ready: np.ndarray | None,
        memory: np.ndarray | None,
        vm_cpu_size: np.ndarray,
        host_of: np.ndarray,
        host_cpu: np.ndarray,
        host_memory: np.ndarray,
        priority: np.ndarray,
        app_code: np.ndarray,
        origin: float,
        horizon_steps: int,
        vm_conflicts: np.ndarray | None = None,
        vm_recent_conflicts: np.ndarray | None = None,
        class_conflict_rate: np.ndarray | None = None,
        pair_conflict_keys: np.ndarray | None = None,
        pair_conflict_counts: np.ndarray | None = None,
        vm_present_conflicts: np.ndarray | None = None,
        vm_migrations: np.ndarray | None = None,
        vm_since_migration: np.ndarray | None = None,
        vm_memory_size: np.ndarray | None = None,
    ) -> None:
        n = cpu.shape[0]
        self.n = n
        used = np.nan_to_num(clean(cpu), nan=0.0)
        wanted = used if demand is None else np.where(np.isnan(clean(demand)), used, clean(demand))
        self.used_last = used[:, -1] if used.shape[1] else np.zeros(n)
        self.demand = wanted
        self.demand_last = wanted[:, -1] if wanted.shape[1] else np.zeros(n)
        self.demand_tail = _tail(wanted, 3)
        self.mean, self.slope, self.lr = (
            linear_stats(wanted, horizon_steps)
            if wanted.shape[1]
            else (np.zeros(n), np.zeros(n), np.zeros(n))
        )
        centred = wanted - wanted.mean(axis=1, keepdims=True) if wanted.shape[1] else wanted
        norm = np.sqrt((centred * centred).sum(axis=1, keepdims=True))
        self.standardised = np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-9)
        ready_c = clean(ready) if ready is not None else np.full((n, 1), np.nan)
        self.ready_last = np.nan_to_num(last_valid(ready_c), nan=0.0)
        self.ready_mean = np.nan_to_num(row_nanmean(ready_c), nan=0.0)
        mem = np.nan_to_num(last_valid(clean(memory)), nan=0.0) if memory is not None else np.zeros(n)
        self.memory_last = mem
        self.size = np.where(np.asarray(vm_cpu_size, float) > 0, vm_cpu_size, np.nan)
        # activity: demand over the VM's own size, what drives cache and memory-bandwidth pressure
        self.activity = np.nan_to_num(np.clip(self.demand_last / self.size, 0.0, 1.0), nan=0.0)
        self.host_of = np.asarray(host_of, dtype=np.int64)
        self.host_cpu = np.asarray(host_cpu, dtype=np.float64)
        self.host_memory = np.asarray(host_memory, dtype=np.float64)
        n_hosts = len(self.host_cpu)
        placed = self.host_of >= 0
        h = self.host_of[placed]
        self.h_used = np.bincount(h, self.used_last[placed], n_hosts)
        self.h_demand = np.bincount(h, self.demand_last[placed], n_hosts)
        self.h_mean = np.bincount(h, self.mean[placed], n_hosts)
        self.h_slope = np.bincount(h, self.slope[placed], n_hosts)
        self.h_lr = np.bincount(h, self.lr[placed], n_hosts)
        self.h_memory = np.bincount(h, mem[placed], n_hosts)
        self.h_count = np.bincount(h, minlength=n_hosts).astype(np.float64)
        self.h_tail = np.zeros((n_hosts, self.demand_tail.shape[1]))
        np.add.at(self.h_tail, h, self.demand_tail[placed])
        self.h_activity = np.bincount(h, self.activity[placed], n_hosts)
        self._interference_estimates(wanted, ready_c, horizon_steps, n_hosts)
        self.h_ready = np.zeros(n_hosts)
        np.maximum.at(self.h_ready, h, self.ready_last[placed])
        self.priority = np.asarray(priority, dtype=np.float64)
        self.app_code = np.asarray(app_code, dtype=np.int64)
        self.vm_conflicts = np.zeros(n) if vm_conflicts is None else np.asarray(vm_conflicts, float)
        self.vm_recent = (
            np.zeros(n) if vm_recent_conflicts is None else np.asarray(vm_recent_conflicts, float)
        )
        self.class_rate = (
            np.zeros(n) if class_conflict_rate is None else np.asarray(class_conflict_rate, float)
        )
        self.vm_present = (
            np.zeros(n) if vm_present_conflicts is None else np.asarray(vm_present_conflicts, float)
        )
        # placement churn: a VM that moved recently (consolidation) is likely to move again, and a
        # pair that will be split cannot be in conflict
        self.vm_migrations = np.zeros(n) if vm_migrations is None else np.asarray(vm_migrations, float)
        # configured RAM: a minimum-migration-time consolidator moves the host's smallest VM first
        ram = np.full(n, np.nan) if vm_memory_size is None else np.asarray(vm_memory_size, float)
        self.ram = np.where(ram > 0, ram, np.nan)
        self.h_min_ram = np.full(n_hosts, np.inf)
        np.minimum.at(self.h_min_ram, h, np.where(np.isnan(self.ram[placed]), np.inf, self.ram[placed]))
        # per VM, on its current host: the host's next-step load once every VM with less RAM has
        # left (ties by index), i.e. how overloaded the host still is when a smallest-RAM-first
        # selection reaches this VM (>= 1/safety: it would be moved)
        order = np.lexsort((np.arange(n)[placed], np.nan_to_num(self.ram[placed], nan=np.inf), h))
        members, hosts_sorted = np.flatnonzero(placed)[order], h[order]
        load = self.lr_next[members]
        csum = np.cumsum(load)
        start = np.r_[0, np.flatnonzero(np.diff(hosts_sorted)) + 1]
        group_base = np.repeat(np.r_[0.0, csum][start], np.diff(np.r_[start, len(members)]))
        before = csum - load - group_base
        self.mmt_load = np.full(n, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mmt_load[members] = (self.h_lr_next[hosts_sorted] - before) / self.host_cpu[hosts_sorted]
        self.vm_since_migration = (
            np.full(n, np.nan) if vm_since_migration is None else np.asarray(vm_since_migration, float)
        )
        self._vm_table: np.ndarray | None = None
        self._host_table: np.ndarray | None = None
        self.pair_keys = np.zeros(0, np.int64) if pair_conflict_keys is None else pair_conflict_keys
        self.pair_counts = np.zeros(0) if pair_conflict_counts is None else pair_conflict_counts
        phase = 2 * np.pi * (origin % DAY) / DAY
        self.hod = (np.sin(phase), np.cos(phase))

    def _interference_estimates(
        self, wanted: np.ndarray, ready: np.ndarray, horizon_steps: int, n_hosts: int
    ) -> None:
        """Per VM: how sensitive it is to its neighbours' activity, and the activity ahead.

        Over the window (with today's placement), ``others_t`` is the summed activity of the other
        VMs on its host; the sensitivity is the least-squares ratio of its ready share to
        ``load_curve(others_t)``, i.e. the slowdown it would suffer at saturating neighbour load.
        Predicted slowdowns then need only host sums (linear), so a hypothetical host is as cheap
        as the current one."""
        n, width = wanted.shape
        placed = self.host_of >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            act = np.nan_to_num(np.clip(wanted / self.size[:, None], 0.0, 1.0), nan=0.0)
        if width:
            flat = (np.where(placed, self.host_of, 0)[:, None] * width + np.arange(width)).ravel()
            host_act = np.bincount(flat, (act * placed[:, None]).ravel(), n_hosts * width)
            host_act = host_act.reshape(n_hosts, width)
            others = np.where(placed[:, None], host_act[np.where(placed, self.host_of, 0)] - act, 0.0)
            g = load_curve(others)
            ready_w = ready[:, -width:] if ready.shape[1] >= width else np.full((n, width), np.nan)
            ok = ~np.isnan(ready_w) & (g > 1e-6)
            num = np.where(ok, ready_w * g, 0.0).sum(axis=1)
            den = np.where(ok, g * g, 0.0).sum(axis=1)
            # no ready samples at all counts as no ready time, as for the ready features (and keeps
            # NaN, XGBoost's slower missing-value path, out of clouds that do not report it); a VM
            # that never had active neighbours in the window has no estimate (NaN)
            has_ready = (~np.isnan(ready_w)).any(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.sensitivity = np.where(
                    den > 1e-9, np.clip(num / den, 0.0, 1.0), np.where(has_ready, np.nan, 0.0)
                )
            self.act_ahead = np.clip(linear_stats(act, horizon_steps)[2], 0.0, 1.0)
            self.activity_window, self.ready_window = act, ready_w
        else:
            self.activity_window = self.ready_window = np.zeros((n, 0))
            self.sensitivity = np.zeros(n)
            self.act_ahead = np.zeros(n)
        self.h_act_ahead = np.bincount(self.host_of[placed], self.act_ahead[placed], n_hosts)
        # what an LR-MMT-like consolidator running the cloud sees: its 10-step line extrapolated
        # one step (linear in the VMs), and how the host ranks among active hosts (the least
        # utilised are drained first)
        k = min(width, LR_MMT_LENGTH)
        if k >= 2:
            x = np.arange(k, dtype=np.float64)
            xc = x - x.mean()
            coef = 1.0 / k + (k - x.mean()) * xc / np.sum(xc * xc)
            self.lr_next = np.nan_to_num(wanted[:, -k:], nan=0.0) @ coef
        else:
            self.lr_next = np.nan_to_num(wanted[:, -1], nan=0.0) if width else np.zeros(n)
        self.h_lr_next = np.bincount(self.host_of[placed], self.lr_next[placed], n_hosts)
        with np.errstate(invalid="ignore", divide="ignore"):
            util = self.h_used / np.where(self.host_cpu > 0, self.host_cpu, np.nan)
        active = np.bincount(self.host_of[placed], minlength=n_hosts) > 0
        order = np.argsort(np.where(active, np.nan_to_num(util, nan=0.0), np.inf), kind="stable")
        rank = np.empty(n_hosts)
        rank[order] = np.arange(n_hosts)
        self.h_rank = np.where(active, rank / max(int(active.sum()) - 1, 1), np.nan)
        self.h_active_rank = np.where(active, rank, np.nan)

    def _log_host_cpu(self) -> np.ndarray:
        if getattr(self, "_log_cpu", None) is None:
            cpu = np.where(self.host_cpu > 0, self.host_cpu, np.nan)
            self._log_cpu = np.log10(np.maximum(cpu, 1.0)).astype(np.float32)
        return self._log_cpu

    def pair_conflicts(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(self.pair_keys) == 0:
            return np.zeros(len(a))
        keys = np.minimum(a, b).astype(np.int64) * self.n + np.maximum(a, b)
        pos = np.clip(np.searchsorted(self.pair_keys, keys), 0, len(self.pair_keys) - 1)
        return np.where(self.pair_keys[pos] == keys, self.pair_counts[pos], 0.0)

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-VM and per-host statistics as float32 tables, one contiguous row per statistic, so a
        batch of pairs is a few cache-friendly gathers (the scoring hot path)."""
        if getattr(self, "_vm_table", None) is None:
            util = self.demand_last / self.size
            vm_cols = [
                self.used_last,
                self.demand_last,
                self.mean,
                self.slope,
                self.lr,
                self.activity,
                self.memory_last,
                util,
                self.ready_last,
                self.ready_mean,
                self.vm_conflicts,
                self.vm_recent,
                self.class_rate,
                self.priority,
                self.app_code.astype(np.float64),
                self.sensitivity,
                self.act_ahead,
                self.vm_present,
                self.lr_next,
                np.log10(np.where(np.isnan(self.size), np.nan, np.maximum(self.size, 1.0))),
                self.vm_migrations,
                self.vm_since_migration,
                self.ram,
                self.mmt_load,
            ]
            self._vm_table = np.ascontiguousarray(
                np.column_stack(vm_cols + [self.demand_tail, self.standardised]).astype(np.float32).T
            )
            host_cols = [
                self.h_used,
                self.h_demand,
                self.h_mean,
                self.h_slope,
                self.h_lr,
                self.h_activity,
                self.h_memory,
                self.h_count,
                self.h_ready,
                np.where(self.host_cpu > 0, self.host_cpu, np.nan),
                np.where(self.host_memory > 0, self.host_memory, np.nan),
                self.h_act_ahead,
                self.h_lr_next,
                self.h_rank,
                self.h_min_ram,
                self.h_active_rank,
            ]
            self._host_table = np.ascontiguousarray(
                np.column_stack(host_cols + [self.h_tail]).astype(np.float32).T
            )
        return self._vm_table, self._host_table

    def features(self, pairs: np.ndarray, hosts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(X, placed)``: features of each pair on ``hosts`` (default: the host of its first VM)
        and whether the pair shares that host (a pair on two hosts, without a candidate host, has
        no shared host and is given probability 0 by the models)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        a, b = pairs[:, 0], pairs[:, 1]
        ha, hb = self.host_of[a], self.host_of[b]
        if hosts is None:
            h = ha
            placed = (ha >= 0) & (ha == hb)
        else:
            h = np.asarray(hosts, dtype=np.int64)
            placed = h >= 0
        hs = np.where(h >= 0, h, 0)
        vm_table, host_table = self._tables()
        va, vb, ht = vm_table.take(a, axis=1), vm_table.take(b, axis=1), host_table.take(hs, axis=1)
        in_a = (ha == h).astype(np.float32)
        in_b = (hb == h).astype(np.float32)
        add_a, add_b = 1.0 - in_a, 1.0 - in_b
        nt = self.demand_tail.shape[1]
        k = len(a)
        # written feature-major (each feature contiguous); XGBoost reads the transposed
        # (Fortran-ordered) view as fast as a row-major copy, so none is made
        out = np.empty((len(PAIR_FEATURES), k), dtype=np.float32)

        def host_plus(host_col: int, vm_col: int) -> np.ndarray:
            return ht[host_col] + add_a * va[vm_col] + add_b * vb[vm_col]

        o = dict(zip(PAIR_FEATURES, out, strict=True))
        moved_a, moved_b = ha != h, hb != h
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = 1.0 / ht[9]
            activity = host_plus(5, 5)
            ahead = host_plus(11, 16)
            np.multiply(in_a, in_b, out=o["colocated_now"])
            np.multiply(host_plus(0, 0), inv, out=o["host_used_last"])
            np.multiply(host_plus(1, 1), inv, out=o["host_demand_last"])
            np.multiply(host_plus(2, 2), inv, out=o["host_demand_mean"])
            if nt:
                tail = ht[16 : 16 + nt] + add_a * va[24 : 24 + nt] + add_b * vb[24 : 24 + nt]
                np.multiply(tail.max(axis=0), inv, out=o["host_demand_max3"])
            else:
                o["host_demand_max3"][:] = 0.0
            np.multiply(host_plus(4, 4), inv, out=o["host_demand_lr"])
            np.multiply(host_plus(3, 3), inv, out=o["host_demand_slope"])
            np.multiply(va[1] + vb[1], inv, out=o["pair_demand_last"])
            np.multiply(va[4] + vb[4], inv, out=o["pair_demand_lr"])
            np.fmax(va[7], vb[7], out=o["pair_util_max"])
            np.fmin(va[7], vb[7], out=o["pair_util_min"])
            np.einsum("ji,ji->i", va[24 + nt :], vb[24 + nt :], out=o["pair_corr"])
            o["host_ready_max"][:] = ht[8]
            np.maximum(va[8], vb[8], out=o["pair_ready_max"])
            np.minimum(va[8], vb[8], out=o["pair_ready_min"])
            np.maximum(va[9], vb[9], out=o["pair_ready_mean_max"])
            o["host_activity"][:] = activity
            np.subtract(activity - va[5], vb[5], out=o["host_activity_others"])
            np.add(ht[7] + add_a, add_b, out=o["host_vms"])
            np.divide(host_plus(6, 6), ht[10], out=o["host_memory"])
            np.maximum(va[10], vb[10], out=o["vm_conflicts_max"])
            np.minimum(va[10], vb[10], out=o["vm_conflicts_min"])
            np.maximum(va[11], vb[11], out=o["vm_recent_conflicts_max"])
            np.minimum(va[11], vb[11], out=o["vm_recent_conflicts_min"])
            o["pair_conflicts"][:] = self.pair_conflicts(a, b)
            np.maximum(va[12], vb[12], out=o["class_conflict_rate_max"])
            np.maximum(va[13], vb[13], out=o["priority_max"])
            np.equal(va[14], vb[14], out=o["same_app"], casting="unsafe")
            o["hod_sin"][:] = self.hod[0]
            o["hod_cos"][:] = self.hod[1]
            o["log_host_cpu"][:] = self._log_host_cpu().take(hs)
            np.fmax(va[15], vb[15], out=o["pair_sensitivity_max"])
            np.fmin(va[15], vb[15], out=o["pair_sensitivity_min"])
            # the other VMs' activity each of the two would feel on the host, now and ahead
            slow_a = va[15] * load_curve(activity - va[5])
            slow_b = vb[15] * load_curve(activity - vb[5])
            np.fmax(slow_a, slow_b, out=o["pair_slowdown_now_max"])
            np.fmin(slow_a, slow_b, out=o["pair_slowdown_now_min"])
            slow_a = va[15] * load_curve(ahead - va[16])
            slow_b = vb[15] * load_curve(ahead - vb[16])
            np.fmax(slow_a, slow_b, out=o["pair_slowdown_ahead_max"])
            np.fmin(slow_a, slow_b, out=o["pair_slowdown_ahead_min"])
            o["host_activity_ahead"][:] = ahead
            np.maximum(va[17], vb[17], out=o["vm_present_conflicts_max"])
            np.multiply(host_plus(12, 18), inv, out=o["host_lr_mmt"])
            o["host_util_rank"][:] = ht[13]
            np.fmin(va[19], vb[19], out=o["pair_size_min"])
            np.fmax(va[19], vb[19], out=o["pair_size_max"])
            np.maximum(va[20], vb[20], out=o["pair_migrations_max"])
            np.fmin(va[21], vb[21], out=o["pair_since_migration_min"])
            ram_min = np.fmin(va[22], vb[22], out=o["pair_ram_min"])
            host_min_ram = np.fmin(np.where(moved_a, va[22], np.inf), np.where(moved_b, vb[22], np.inf))
            np.fmin(host_min_ram, ht[14], out=host_min_ram)
            np.less_equal(ram_min, host_min_ram, out=o["pair_has_smallest_ram"], casting="unsafe")
            np.fmax(va[23], vb[23], out=o["pair_mmt_load_max"])
            o["host_active_rank"][:] = ht[15]
        return out.T, placed
