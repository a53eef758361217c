"""Training data from the history store: telemetry on a grid, placement over time, conflict labels.

Placement over time is rebuilt from what any cloud shows: the last inventory the control loop
stored (``vms()``) and the ``MIGRATION`` events (``details["from"]``/``["to"]``), replayed backwards.
Labels come only from ``DEGRADATION`` events: a pair of VMs has a conflict at a step when an event
on their host lists at least one of them as degraded (``vm_ids``) and the other among the host's
VMs (``details["neighbours"]``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from cotenancy.model import Event, EventKind, Resource
from cotenancy.predict import features as feats

METRICS = ("cpu", "cpu_demand", "cpu_ready", "memory", "disk_io", "network", "gpu")


@dataclass(slots=True)
class History:
    """A stretch of one cloud's past, as arrays on a regular grid of ``step_seconds``."""

    vm_ids: list[str]
    timestamps: np.ndarray
    step_seconds: float
    values: dict[str, np.ndarray]  # metric -> (n_vms, T)
    host_ids: list[str]  # sorted
    host_cpu: np.ndarray
    host_memory: np.ndarray
    host_of: np.ndarray  # (n_vms, T) index into host_ids, -1 unknown
    vm_cpu_size: np.ndarray
    priority: np.ndarray
    app_types: list[str]
    events: list[Event] = field(default_factory=list)
    vm_memory_size: np.ndarray | None = None  # configured RAM (MiB), NaN unknown
    #: resource -> each VM's configured size (project units): the forecaster learns from what
    #: serving gives it, and serving gives it the inventory's sizes
    vm_sizes: dict[str, np.ndarray] = field(default_factory=dict)

    def forecast_inputs(
        self, resources: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The windows the forecaster trains on (the resources with any valid sample) and each VM's
        size for them: serving hands it the inventory's sizes, so training must too."""
        values = {
            r: self.values[r] for r in resources if r in self.values and np.isfinite(self.values[r]).any()
        }
        return values, {r: self.vm_sizes[r] for r in values if r in self.vm_sizes}

    @property
    def app_code(self) -> np.ndarray:
        names = sorted(set(self.app_types))
        code = {a: i for i, a in enumerate(names)}
        return np.array([code[a] for a in self.app_types], dtype=np.int64)


def placement_over_time(
    vm_ids: Sequence[str],
    host_ids: Sequence[str],
    final_hosts: dict[str, str | None],
    migrations: Iterable[Event],
    timestamps: np.ndarray,
    step_seconds: float,
) -> np.ndarray:
    """``(n_vms, T)`` host index per step: the final placement with later migrations undone."""
    host_index = {h: i for i, h in enumerate(host_ids)}
    vm_index = {v: i for i, v in enumerate(vm_ids)}
    current = np.array([host_index.get(final_hosts.get(v) or "", -1) for v in vm_ids], dtype=np.int64)
    out = np.empty((len(vm_ids), len(timestamps)), dtype=np.int64)
    moves = sorted(
        (e for e in migrations if e.kind is EventKind.MIGRATION and e.vm_ids), key=lambda e: e.timestamp
    )
    col = len(timestamps) - 1
    for event in reversed(moves):
        while col >= 0 and timestamps[col] + step_seconds > event.timestamp:
            out[:, col] = current
            col -= 1
        vm = vm_index.get(event.vm_ids[0])
        source = event.details.get("from")
        if vm is not None and source is not None:
            current[vm] = host_index.get(source, -1)
    while col >= 0:
        out[:, col] = current
        col -= 1
    return out


MAX_GRID_CELLS = 200_000_000


def sample_time_range(store, start: float, end: float) -> tuple[float, float] | None:
    """First and last sample time within ``[start, end)`` (``None`` when there is none)."""
    import sqlalchemy as sa

    from cotenancy.store import schema

    t = schema.samples.c.timestamp
    query = sa.select(sa.func.min(t), sa.func.max(t)).where(t >= float(start), t < float(end))
    with store.engine.connect() as connection:
        first, last = connection.execute(query).one()
    return None if first is None else (float(first), float(last))


def load_history(store, start: float, end: float, step: float) -> History:
    """Everything :func:`build_pair_dataset` and the forecaster need, read from ``store``.

    The window is narrowed to where samples exist (``--since 0`` must not build a grid from 1970).
    """
    found = sample_time_range(store, start, end)
    if found is None:
        held = sample_time_range(store, -math.inf, math.inf)
        if held is None:
            raise ValueError("the history store has no samples")
        first, last = (dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in held)
        raise ValueError(
            f"the history store has no samples in that window; it holds samples from {first} to "
            f"{last} (give --since and --until)"
        )
    start = max(start, np.floor(found[0] / step) * step)
    end = min(end, found[1] + step)
    vms = store.vms()
    cells = len(vms) * len(METRICS) * (end - start) / step
    if cells > MAX_GRID_CELLS:
        raise ValueError(
            f"{len(vms)} VMs over {(end - start) / 86400:.0f} days at {step:g} s is too much to train "
            "on at once; narrow --since/--until or use a coarser --step"
        )
    hosts = store.hosts()
    vm_ids = sorted(vms)
    window = store.series(start, end, step, vm_ids=vm_ids, metrics=list(METRICS))
    host_ids = sorted(hosts)
    events = store.events(start, end + 3600.0)
    host_of = placement_over_time(
        vm_ids, host_ids, {v: vms[v].host_id for v in vm_ids}, events, window.timestamps, step
    )
    sizes = {r.value: np.array([vms[v].size[r] for v in vm_ids], dtype=float) for r in Resource}
    return History(
        vm_ids=vm_ids,
        timestamps=window.timestamps,
        step_seconds=step,
        values=window.values,
        host_ids=host_ids,
        host_cpu=np.array([hosts[h].capacity.cpu for h in host_ids]),
        host_memory=np.array([hosts[h].capacity.memory for h in host_ids]),
        host_of=host_of,
        vm_cpu_size=sizes[Resource.CPU.value],
        vm_memory_size=sizes[Resource.MEMORY.value],
        vm_sizes=sizes,
        priority=np.array([vms[v].workload.priority for v in vm_ids], dtype=float),
        app_types=[vms[v].workload.app_type for v in vm_ids],
        events=sorted((e for e in events if e.kind is EventKind.DEGRADATION), key=lambda e: e.timestamp),
    )


def _degradations(history: History) -> Iterator[tuple[list[int], list[int], range]]:
    """Each ``DEGRADATION`` event as (victims, the host's VMs, the steps it covers), VMs as indices."""
    index = {v: i for i, v in enumerate(history.vm_ids)}
    t0, step = float(history.timestamps[0]) if len(history.timestamps) else 0.0, history.step_seconds
    total = len(history.timestamps)
    for event in history.events:
        if event.kind is not EventKind.DEGRADATION:
            continue
        victims = [index[v] for v in event.vm_ids if v in index]
        neighbours = [index[v] for v in event.details.get("neighbours", "").split(",") if v in index]
        first = int((event.timestamp - t0) // step)
        last = int((event.timestamp + max(event.duration, step) - 1e-6 - t0) // step)
        yield victims, neighbours, range(max(first, 0), min(last, total - 1) + 1)


def conflict_keys_by_step(history: History) -> list[set[int]]:
    """Per step, the pair keys ``min*n + max`` of pairs in a conflict at that step."""
    n = len(history.vm_ids)
    steps: list[set[int]] = [set() for _ in range(len(history.timestamps))]
    for victims, neighbours, covered in _degradations(history):
        keys = {min(x, y) * n + max(x, y) for x in victims for y in set(neighbours) | set(victims) if x != y}
        for s in covered:
            steps[s] |= keys
    return steps


def degraded_by_step(history: History) -> np.ndarray:
    """``(n_vms, T)``: whether a ``DEGRADATION`` event lists the VM as degraded at that step."""
    degraded = np.zeros((len(history.vm_ids), len(history.timestamps)), dtype=bool)
    for victims, _neighbours, covered in _degradations(history):
        if len(covered):
            degraded[victims, covered.start : covered.stop] = True
    return degraded


def conflict_factors(
    history: History, data: PairDataset, label_from_steps: int, horizon_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of each row's label: ``degraded`` (one of the two VMs is degraded at some
    step in ``[t + label_from_steps, t + horizon_steps]``, wherever it runs) and ``together`` (the
    two share a host at ``t + label_from_steps``). A conflict needs both, so each half's
    predictability bounds the conflict model's (``benchmarks/conflict_diagnostics.py``)."""
    n, total = len(history.vm_ids), len(history.timestamps)
    a, b = data.keys // n, data.keys % n
    marks = degraded_by_step(history)
    degraded = np.zeros(len(data.keys), dtype=bool)
    for offset in range(label_from_steps, horizon_steps + 1):
        col = np.minimum(data.step + offset, total - 1)
        degraded |= marks[a, col] | marks[b, col]
    col = np.minimum(data.step + label_from_steps, total - 1)
    host_a = history.host_of[a, col]
    return degraded, (host_a >= 0) & (host_a == history.host_of[b, col])


RECENT_STEPS = 12


class ConflictMemory:
    """Past conflicts over a sliding window of steps, updated incrementally while a dataset walks
    forward in time (rebuilding it from every event at every step was the slowest part of training).

    The window at step ``col`` holds the events with ``timestamps[col] - lookback < t <= timestamps[col]``:
    the events of the step being observed count, as they do for the serving object, which has seen
    them when it scores."""

    def __init__(self, history: History, lookback_steps: int) -> None:
        n = len(history.vm_ids)
        index = {v: i for i, v in enumerate(history.vm_ids)}
        self.history = history
        self.n = n
        self.lookback = lookback_steps * history.step_seconds
        self.recent_span = RECENT_STEPS * history.step_seconds
        self.times = np.array([e.timestamp for e in history.events], dtype=np.float64)
        self.victims: list[np.ndarray] = []
        self.neighbours: list[np.ndarray] = []
        self.pair_keys: list[np.ndarray] = []
        for event in history.events:
            victims = np.array([index[v] for v in event.vm_ids if v in index], dtype=np.int64)
            names = event.details.get("neighbours", "").split(",")
            neighbours = np.array([index[v] for v in names if v in index], dtype=np.int64)
            x, y = np.meshgrid(victims, neighbours, indexing="ij")
            x, y = x.ravel(), y.ravel()
            keep = x != y
            self.victims.append(victims)
            self.neighbours.append(neighbours)
            self.pair_keys.append(np.minimum(x[keep], y[keep]) * n + np.maximum(x[keep], y[keep]))
        self.per_vm = np.zeros(n)
        self.recent = np.zeros(n)
        self.present = np.zeros(n)
        self.pairs: dict[int, float] = defaultdict(float)
        self._head = self._tail = self._recent_tail = 0

    def _apply(self, i: int, sign: float) -> None:
        self.per_vm[self.victims[i]] += sign
        self.present[self.neighbours[i]] += sign
        for key in self.pair_keys[i].tolist():
            self.pairs[key] += sign
            if self.pairs[key] <= 0:
                del self.pairs[key]

    def at(self, col: int) -> dict[str, np.ndarray]:
        """Memory arrays at step ``col`` (steps must be visited in increasing order)."""
        t_end = float(self.history.timestamps[col])
        head = int(np.searchsorted(self.times, t_end, side="right"))
        for i in range(self._head, head):
            self._apply(i, 1.0)
            self.recent[self.victims[i]] += 1
        self._head = max(self._head, head)
        tail = int(np.searchsorted(self.times, t_end - self.lookback, side="right"))
        for i in range(self._tail, min(tail, self._head)):
            self._apply(i, -1.0)
        self._tail = max(self._tail, tail)
        recent_tail = int(np.searchsorted(self.times, t_end - self.recent_span, side="right"))
        for i in range(self._recent_tail, min(recent_tail, self._head)):
            self.recent[self.victims[i]] -= 1
        self._recent_tail = max(self._recent_tail, recent_tail)
        return memory_arrays(
            self.per_vm.copy(), self.pairs, self.history.app_code, self.recent.copy(), self.present.copy()
        )


def conflict_memory(history: History, col: int, lookback_steps: int) -> dict[str, np.ndarray]:
    """Past conflicts up to step ``col`` (see :class:`ConflictMemory`): per VM (over the lookback
    and over the last hour), per workload class (rate), per pair."""
    return ConflictMemory(history, lookback_steps).at(col)


def memory_arrays(
    per_vm: np.ndarray,
    pairs: dict[int, float],
    app_code: np.ndarray,
    recent: np.ndarray | None = None,
    present: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Keyword arguments of :class:`PairContext` for past conflicts: ``per_vm`` (events in which the
    VM was degraded), ``recent`` (the same over the last hour), ``present`` (events on its host
    while it was there, degraded or not: how often it keeps company with victims), ``pairs``."""
    classes = np.bincount(app_code, per_vm, app_code.max() + 1 if len(app_code) else 1)
    sizes = np.bincount(app_code, minlength=len(classes)).astype(float)
    rate = (classes / np.maximum(sizes, 1))[app_code] if len(app_code) else np.zeros(0)
    keys = np.array(sorted(pairs), dtype=np.int64)
    return {
        "vm_conflicts": per_vm,
        "vm_recent_conflicts": np.zeros(len(per_vm)) if recent is None else recent,
        "vm_present_conflicts": np.zeros(len(per_vm)) if present is None else present,
        "class_conflict_rate": rate,
        "pair_conflict_keys": keys,
        "pair_conflict_counts": np.array([pairs[k] for k in keys], dtype=float),
    }


def placement_churn(host_of: np.ndarray, lookback_steps: int = 288) -> tuple[np.ndarray, np.ndarray]:
    """Per VM and step: migrations over the last :data:`RECENT_STEPS` steps and steps since its
    last migration (capped at ``lookback_steps``), from the placement replayed from the history's
    ``MIGRATION`` events, as the serving object counts them from the events it saw."""
    n, total = host_of.shape
    moved = np.zeros((n, total), dtype=bool)
    if total > 1:
        moved[:, 1:] = (host_of[:, 1:] != host_of[:, :-1]) & (host_of[:, 1:] >= 0) & (host_of[:, :-1] >= 0)
    csum = np.cumsum(moved, axis=1)
    before = np.zeros_like(csum)
    before[:, RECENT_STEPS:] = csum[:, :-RECENT_STEPS]
    counts = (csum - before).astype(np.float64)
    cols = np.arange(total)
    last = np.maximum.accumulate(np.where(moved, cols, -(10**9)), axis=1)
    since = np.minimum(cols - last, lookback_steps).astype(np.float64)
    return counts, since


def context_at(
    history: History,
    col: int,
    window_steps: int,
    horizon_steps: int,
    lookback_steps: int = 288,
    memory: dict[str, np.ndarray] | None = None,
    churn: tuple[np.ndarray, np.ndarray] | None = None,
) -> feats.PairContext:
    """The :class:`PairContext` the serving path would build at step ``col`` (``memory``: the
    :class:`ConflictMemory` arrays at ``col``, computed here when not given; ``churn``: the
    :func:`placement_churn` arrays, likewise)."""
    churn = churn if churn is not None else placement_churn(history.host_of, lookback_steps)
    lo = max(col - window_steps + 1, 0)
    v = history.values

    def win(metric: str) -> np.ndarray | None:
        return v[metric][:, lo : col + 1] if metric in v else None

    return feats.PairContext(
        cpu=win("cpu") if "cpu" in v else np.zeros((len(history.vm_ids), col + 1 - lo)),
        demand=win("cpu_demand"),
        ready=win("cpu_ready"),
        memory=win("memory"),
        vm_cpu_size=history.vm_cpu_size,
        vm_memory_size=history.vm_memory_size,
        host_of=history.host_of[:, col],
        host_cpu=history.host_cpu,
        host_memory=history.host_memory,
        priority=history.priority,
        app_code=history.app_code,
        origin=float(history.timestamps[col]),
        horizon_steps=horizon_steps,
        vm_migrations=churn[0][:, col],
        vm_since_migration=churn[1][:, col],
        **(memory if memory is not None else conflict_memory(history, col, lookback_steps)),
    )


def colocated_pairs(host_of: np.ndarray) -> np.ndarray:
    """All ``(a, b)``, ``a < b``, sharing a host."""
    placed = np.flatnonzero(host_of >= 0)
    order = placed[np.argsort(host_of[placed], kind="stable")]
    out = []
    hosts = host_of[order]
    bounds = np.flatnonzero(np.diff(hosts)) + 1
    for group in np.split(order, bounds):
        if len(group) > 1:
            a, b = np.triu_indices(len(group), k=1)
            out.append(np.column_stack([group[a], group[b]]))
    return np.vstack(out) if out else np.zeros((0, 2), dtype=np.int64)


@dataclass(slots=True)
class PairDataset:
    x: np.ndarray
    y: np.ndarray
    step: np.ndarray  # column of the origin
    keys: np.ndarray  # pair key min*n+max
    host_used: np.ndarray  # reactive baseline: host CPU utilisation now
    host_lr: np.ndarray  # LR-MMT baseline: local-regression prediction of host utilisation
    #: the telemetry step and the windows (in its steps) the rows were built with; a model trained
    #: on them keeps it, so serving can refuse telemetry on which its features would mean other spans
    telemetry: dict[str, float] = field(default_factory=dict)


def build_pair_dataset(
    history: History,
    horizon_steps: int,
    label_from_steps: int = 1,
    window_steps: int = 12,
    stride: int = 1,
    progress=None,
    lookback_steps: int = 288,
) -> PairDataset:
    """One row per co-located pair per origin step; ``y = 1`` when the pair has a conflict at some
    step in ``[t + label_from_steps, t + horizon_steps]``."""
    conflicts = conflict_keys_by_step(history)
    total = len(history.timestamps)
    n = len(history.vm_ids)
    xs, ys, steps, keys, used, lr = [], [], [], [], [], []
    util_history = _host_utilisation(history)
    memory = ConflictMemory(history, lookback_steps)
    churn = placement_churn(history.host_of, lookback_steps)
    for col in range(min(window_steps, total - 1), total - horizon_steps, stride):
        pairs = colocated_pairs(history.host_of[:, col])
        if progress:
            progress(1)
        if len(pairs) == 0:
            continue
        ctx = context_at(history, col, window_steps, horizon_steps, memory=memory.at(col), churn=churn)
        x, placed = ctx.features(pairs)
        future: set[int] = set()
        for s in range(col + label_from_steps, col + horizon_steps + 1):
            future |= conflicts[s]
        k = pairs[:, 0].astype(np.int64) * n + pairs[:, 1]
        y = np.isin(k, np.fromiter(future, dtype=np.int64, count=len(future)))
        h = history.host_of[pairs[:, 0], col]
        xs.append(x)
        ys.append(y)
        steps.append(np.full(len(k), col))
        keys.append(k)
        used.append(util_history[h, col])
        lr.append(lr_mmt_prediction(util_history[:, max(col - 9, 0) : col + 1])[h])
    telemetry = {
        "step_seconds": float(history.step_seconds),
        "window_steps": float(window_steps),
        "horizon_steps": float(horizon_steps),
        "lookback_steps": float(lookback_steps),
    }
    if not xs:
        empty = np.zeros(0)
        return PairDataset(
            np.zeros((0, len(feats.PAIR_FEATURES)), np.float32),
            empty.astype(bool),
            empty.astype(int),
            empty.astype(np.int64),
            empty,
            empty,
            telemetry,
        )
    return PairDataset(
        np.vstack(xs),
        np.concatenate(ys),
        np.concatenate(steps),
        np.concatenate(keys),
        np.concatenate(used),
        np.concatenate(lr),
        telemetry,
    )


def _host_utilisation(history: History) -> np.ndarray:
    """``(n_hosts, T)`` used CPU over capacity, from the VMs' ``cpu`` metric and placement."""
    cpu = np.nan_to_num(feats.clean(history.values["cpu"]), nan=0.0)
    n_hosts = len(history.host_ids)
    out = np.zeros((n_hosts, cpu.shape[1]))
    for col in range(cpu.shape[1]):
        h = history.host_of[:, col]
        ok = h >= 0
        out[:, col] = np.bincount(h[ok], cpu[ok, col], n_hosts)
    return out / np.where(history.host_cpu > 0, history.host_cpu, np.nan)[:, None]


def lr_mmt_prediction(utilisation: np.ndarray) -> np.ndarray:
    """LR-MMT's overload predictor (Beloglazov & Buyya 2012): a local (tricube-weighted) linear
    regression over the last ten utilisation values, extrapolated one step, times the safety
    parameter 1.2. Rows are hosts."""
    width = utilisation.shape[1]
    if width < 2:
        return 1.2 * utilisation[:, -1] if width else np.zeros(utilisation.shape[0])
    x = np.arange(width, dtype=np.float64)
    distance = (width - 1 - x) / width
    w = (1 - distance**3) ** 3
    y = np.nan_to_num(utilisation, nan=0.0)
    sw = w.sum()
    mx = (w * x).sum() / sw
    my = (y * w).sum(axis=1) / sw
    slope = ((y - my[:, None]) * (w * (x - mx))).sum(axis=1) / ((w * (x - mx) ** 2).sum())
    return 1.2 * (my + slope * (width - mx))


def history_from_frames(cloud) -> History:
    """The same :class:`History` from a simulated cloud's per-step observations (its ``frames``:
    the metrics and placement a cloud shows each step) and its events; used by the conflict
    benchmark to skip writing millions of samples to a store. Labels still come only from the
    ``DEGRADATION`` events."""
    frames = cloud.frames
    names = sorted({m for f in frames for m in f.metrics})
    values = {
        m: np.column_stack([f.metrics.get(m, np.full(cloud.n_vms, np.nan)) for f in frames]) for m in names
    }
    host_of = np.column_stack([np.where(f.running, f.host_of, -1) for f in frames]).astype(np.int64)
    order = np.argsort(cloud.hosts.ids)
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    host_of = np.where(host_of >= 0, remap[np.maximum(host_of, 0)], -1)
    return History(
        vm_ids=list(cloud.vm_ids),
        timestamps=np.array([f.timestamp for f in frames]),
        step_seconds=float(cloud.step_seconds),
        values=values,
        host_ids=[cloud.hosts.ids[i] for i in order],
        host_cpu=np.asarray(cloud.hosts.cpu, dtype=float)[order],
        host_memory=np.asarray(cloud.hosts.memory, dtype=float)[order],
        host_of=host_of,
        vm_cpu_size=np.asarray(cloud.vm_cpu, dtype=float),
        vm_memory_size=np.asarray(cloud.vm_memory, dtype=float),
        priority=np.full(cloud.n_vms, 5.0),
        app_types=["general"] * cloud.n_vms,
        events=sorted(
            (e for e in cloud.events if getattr(e, "kind", None) is EventKind.DEGRADATION),
            key=lambda e: e.timestamp,
        ),
    )
