"""Who slows whom: each VM's sensitivity and cache pressure, learnt over rounds from slowdowns.

Interference grows with the summed *pressure × activity* of a VM's neighbours (see
``docs/interference-model.md``). Activity is measured; pressure (how hard a VM hits the shared
cache when busy, 1 = typical) is not. It shows in the sensitive VMs: each sample of a sensitive
VM's ready share, through the load curve, gives the load its neighbours put on it, and that load
is a sum over those neighbours of pressure × activity. Over a window, and over rounds as VMs
change neighbours, this is a linear least-squares problem in the neighbours' pressures; a ridge
towards 1 keeps VMs never seen next to a sensitive one at the typical value.

The two estimates feed each other across rounds (:class:`InterferenceMemory`): a VM's sensitivity
is the ratio of its ready share to the load curve of its neighbours' pressure-weighted activity,
accumulated over every neighbourhood it has lived in, so the level of one host's pressure is not
absorbed into the sensitivity of the VMs on it; the pressures are then read against those
sensitivities. Only samples not seen in an earlier round count, taken with the placement of
their round.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix, identity
from scipy.sparse.linalg import spsolve

from cotenancy.predict.features import load_curve

#: sensitivity from which a VM's ready share is read as a measurement of its neighbours' load
MIN_VICTIM_SENSITIVITY = 0.1
#: the largest slowdown-to-sensitivity ratio inverted (the load curve is flat near 1)
_MAX_RATIO = 0.9


def neighbour_load_samples(
    activity: np.ndarray,
    ready: np.ndarray,
    sensitivity: np.ndarray,
    host_of: np.ndarray,
    half_load: float,
    weighted: bool = True,
) -> tuple[csr_matrix, np.ndarray]:
    """Rows ``A`` (samples × VMs: each neighbour's activity) and targets ``x`` (the load read from
    the victim's ready share), one row per sample of a sensitive VM with a known ready share.

    ``weighted`` scales each row by the slope of the load curve at its sample, ``(1 - ratio)²``:
    the fit then weighs errors in the ready share the victim shows rather than in the load read
    back from it, which near saturation turns a small error in the victim's sensitivity into a
    large one in the load. The weights are scaled to a mean square of 1, so they share the
    evidence out among the samples without changing its total against the prior."""
    n = activity.shape[0]
    victims = np.flatnonzero((host_of >= 0) & (np.nan_to_num(sensitivity) >= MIN_VICTIM_SENSITIVITY))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    ratios: list[np.ndarray] = []
    n_rows = 0
    members = {int(h): np.flatnonzero(host_of == h) for h in np.unique(host_of[victims])}
    for i in victims.tolist():
        neighbours = members[int(host_of[i])]
        neighbours = neighbours[neighbours != i]
        if not len(neighbours):
            continue
        steps = np.flatnonzero(~np.isnan(ready[i]))
        acts = activity[np.ix_(neighbours, steps)].T  # (samples, neighbours)
        busy = acts > 0
        sampled = busy.any(axis=1)
        acts, busy, steps = acts[sampled], busy[sampled], steps[sampled]
        sample, neighbour = np.nonzero(busy)
        rows.append(n_rows + sample)
        cols.append(neighbours[neighbour])
        vals.append(acts[sample, neighbour])
        ratios.append(np.clip(ready[i, steps] / sensitivity[i], 0.0, _MAX_RATIO))
        n_rows += len(steps)
    sample_ratios = np.concatenate(ratios) if ratios else np.zeros(0)
    rows_at = np.concatenate(rows) if rows else np.zeros(0, dtype=int)
    targets = half_load * sample_ratios / (1.0 - sample_ratios)
    weights = (1.0 - sample_ratios) ** 2 if weighted else np.ones(len(sample_ratios))
    if len(weights):
        weights /= np.sqrt(np.mean(weights**2))
    entries = np.concatenate(vals) * weights[rows_at] if vals else np.zeros(0)
    at = (rows_at, np.concatenate(cols) if cols else np.zeros(0, dtype=int))
    matrix = csr_matrix((entries, at), shape=(len(sample_ratios), n))
    return matrix, targets * weights


def sensitivity_evidence(
    activity: np.ndarray, ready: np.ndarray, host_of: np.ndarray, pressure: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares parts ``(Σ ready·g, Σ g²)`` per VM, ``g`` the load curve of the
    pressure-weighted activity of its neighbours; their ratio is its sensitivity."""
    n, width = activity.shape
    placed = host_of >= 0
    if not width or not placed.any():
        return np.zeros(n), np.zeros(n)
    pressed = activity * pressure[:, None]
    n_hosts = int(host_of.max()) + 1
    flat = (np.where(placed, host_of, 0)[:, None] * width + np.arange(width)).ravel()
    host_load = np.bincount(flat, (pressed * placed[:, None]).ravel(), n_hosts * width).reshape(
        n_hosts, width
    )
    others = np.where(placed[:, None], host_load[np.where(placed, host_of, 0)] - pressed, 0.0)
    g = load_curve(others)
    ok = ~np.isnan(ready) & (g > 1e-6)
    return np.where(ok, ready * g, 0.0).sum(axis=1), np.where(ok, g * g, 0.0).sum(axis=1)


class InterferenceMemory:
    """Per VM id, decayed evidence of sensitivity and pressure from every round seen so far.

    Pressure evidence is kept as the normal equations of the least-squares problem over all
    rounds (a sparse Gram matrix between VMs that shared a sensitive neighbour), so neighbours
    seen together in one round are told apart by the rounds they were not together.
    """

    def __init__(
        self,
        half_load: float,
        sensitivity_decay: float = 0.995,
        pressure_decay: float = 0.99,
        prior: float = 1.0,
        weighted: bool = True,
    ) -> None:
        self.half_load = half_load
        self.sensitivity_decay = sensitivity_decay
        self.pressure_decay = pressure_decay
        #: ridge towards the typical pressure, in units of summed squared activity
        self.prior = prior
        self.weighted = weighted
        self._sensitivity: dict[str, tuple[float, float]] = {}
        self._index: dict[str, int] = {}
        self._gram = csr_matrix((0, 0))
        self._rhs = np.zeros(0)
        self._delta = np.zeros(0)

    def _indices(self, vm_ids: list[str]) -> np.ndarray:
        for vm_id in vm_ids:
            self._index.setdefault(vm_id, len(self._index))
        return np.array([self._index[v] for v in vm_ids], dtype=np.int64)

    def pressure(self, vm_ids: list[str]) -> np.ndarray:
        known = len(self._delta)
        pos = np.array([self._index.get(v, known) for v in vm_ids], dtype=np.int64)
        delta = np.append(self._delta, 0.0)[np.minimum(pos, known)]
        return np.clip(1.0 + delta, 0.05, 10.0)

    def sensitivity(self, vm_ids: list[str], fallback: np.ndarray) -> np.ndarray:
        parts = np.array([self._sensitivity.get(v, (0.0, 0.0)) for v in vm_ids]).reshape(-1, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            learnt = np.clip(parts[:, 0] / parts[:, 1], 0.0, 1.0)
        return np.where(parts[:, 1] > 1e-6, learnt, fallback)

    def update(
        self,
        vm_ids: list[str],
        activity: np.ndarray,
        ready: np.ndarray,
        host_of: np.ndarray,
        fallback_sensitivity: np.ndarray,
    ) -> None:
        """Fold in new samples (``activity``, ``ready``: VMs × new steps, placement ``host_of``)."""
        num, den = sensitivity_evidence(activity, ready, host_of, self.pressure(vm_ids))
        decay = self.sensitivity_decay
        for vm_id, a, b in zip(vm_ids, num.tolist(), den.tolist(), strict=True):
            old_a, old_b = self._sensitivity.get(vm_id, (0.0, 0.0))
            self._sensitivity[vm_id] = (decay * old_a + a, decay * old_b + b)
        sensitivity = self.sensitivity(vm_ids, fallback_sensitivity)
        matrix, target = neighbour_load_samples(
            activity, ready, sensitivity, host_of, self.half_load, self.weighted
        )
        columns = self._indices(vm_ids)
        total = len(self._index)
        to_global = csr_matrix(
            (np.ones(len(columns)), (np.arange(len(columns)), columns)), shape=(len(columns), total)
        )
        rows = (matrix @ to_global).tocsr()
        gram = self._gram.copy()
        gram.resize((total, total))
        rhs = np.zeros(total)
        rhs[: len(self._rhs)] = self._rhs
        # the unknown is the departure from the typical pressure, which the ridge pulls to 0
        residual = target - rows @ np.ones(total)
        self._gram = (self.pressure_decay * gram + rows.T @ rows).tocsr()
        self._rhs = self.pressure_decay * rhs + rows.T @ residual
        if not self._rhs.any():
            self._delta = np.zeros(total)
            return
        system = (self._gram + self.prior * identity(total, format="csr")).tocsc()
        self._delta = np.asarray(spsolve(system, self._rhs), dtype=float)
