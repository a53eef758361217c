"""Long-term forecasts by collaborative filtering of VM x hour-of-week usage.

Usage is normalised per VM (divided by its mean), averaged into a ``(n_vms, 168)`` matrix with
holes, and factorised by alternating least squares: ``M ~ U V^T``. ``V`` (hour-of-week factors) is
what VMs have in common — office hours, nightly batch — and ``U`` says how much of each pattern a
VM follows. A new VM with only a few hours of history gets ``u`` by ridge regression on the hours it
has seen, pulled towards the mean ``u`` of its workload class: it borrows the shape of similar VMs
long before it has a week of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOURS_PER_WEEK = 168


def hour_of_week(timestamps: np.ndarray | float) -> np.ndarray:
    """0..167, Monday 00:00 UTC = 0 (the epoch was a Thursday)."""
    t = np.asarray(timestamps, dtype=np.float64)
    return ((np.floor(t / 3600.0).astype(np.int64) + 72) % HOURS_PER_WEEK).astype(np.int64)


def hourly_matrix(values: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 168)`` mean of ``values / vm_mean`` per hour of week (NaN where never seen), and
    the per-VM mean used to normalise."""
    how = hour_of_week(timestamps)
    valid = ~np.isnan(values)
    counts = np.zeros((values.shape[0], HOURS_PER_WEEK))
    sums = np.zeros((values.shape[0], HOURS_PER_WEEK))
    for h in range(HOURS_PER_WEEK):
        cols = how == h
        if cols.any():
            counts[:, h] = valid[:, cols].sum(axis=1)
            sums[:, h] = np.where(valid[:, cols], values[:, cols], 0.0).sum(axis=1)
    total = counts.sum(axis=1)
    vm_mean = np.where(total > 0, sums.sum(axis=1) / np.maximum(total, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = sums / counts / np.where(vm_mean > 1e-9, vm_mean, np.nan)[:, None]
    return matrix, vm_mean


@dataclass(slots=True)
class WeeklyProfiles:
    """Hour-of-week factors and what is needed to place a VM (known or new) among them."""

    item_factors: np.ndarray  # (168, k)
    class_factors: dict[str, np.ndarray]  # app_type -> (k,)
    global_factor: np.ndarray  # (k,)
    ridge: float = 1.0

    @classmethod
    def fit(
        cls,
        matrix: np.ndarray,
        classes: list[str] | None = None,
        rank: int = 4,
        ridge: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> WeeklyProfiles:
        """ALS with missing entries on the normalised ``(n, 168)`` matrix."""
        observed = ~np.isnan(matrix)
        rows = observed.any(axis=1)
        m = np.where(observed, matrix, 0.0)[rows]
        mask = observed[rows]
        n = m.shape[0]
        rng = np.random.default_rng(seed)
        users = np.ones((n, rank)) * 0.0
        users[:, 0] = 1.0
        items = rng.normal(0.0, 0.1, size=(HOURS_PER_WEEK, rank))
        items[:, 0] = 1.0
        eye = ridge * np.eye(rank)
        for _ in range(iterations):
            for i in range(n):
                seen = mask[i]
                a = items[seen]
                users[i] = np.linalg.solve(a.T @ a + eye, a.T @ m[i, seen])
            for h in range(HOURS_PER_WEEK):
                seen = mask[:, h]
                if not seen.any():
                    continue
                a = users[seen]
                items[h] = np.linalg.solve(a.T @ a + eye, a.T @ m[seen, h])
        # hours of the week never seen (a history shorter than a week) borrow the same hour of
        # the days that were seen, instead of keeping their random initial factors
        seen_hours = mask.any(axis=0)
        for h in np.flatnonzero(~seen_hours):
            same = [d * 24 + h % 24 for d in range(7) if seen_hours[d * 24 + h % 24]]
            items[h] = items[same].mean(axis=0) if same else items[seen_hours].mean(axis=0)
        global_factor = users.mean(axis=0) if n else np.eye(rank)[0]
        class_factors: dict[str, np.ndarray] = {}
        if classes is not None:
            kept = [c for c, r in zip(classes, rows, strict=True) if r]
            for name in sorted(set(kept)):
                members = np.array([c == name for c in kept])
                class_factors[name] = users[members].mean(axis=0)
        return cls(items, class_factors, global_factor, ridge)

    def user_factor(self, profile: np.ndarray, app_type: str | None = None) -> np.ndarray:
        """Ridge fit of one VM's normalised hourly profile (NaN = unseen) towards its class prior."""
        prior = self.class_factors.get(app_type or "", self.global_factor)
        seen = ~np.isnan(profile)
        if not seen.any():
            return prior
        a = self.item_factors[seen]
        rank = a.shape[1]
        lhs = a.T @ a + self.ridge * np.eye(rank)
        rhs = a.T @ profile[seen] + self.ridge * prior
        return np.linalg.solve(lhs, rhs)

    def predict(self, user: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Normalised usage (1.0 = the VM's mean) at ``timestamps``."""
        return np.maximum(self.item_factors[hour_of_week(timestamps)] @ user, 0.0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        names = sorted(self.class_factors)
        return {
            "items": self.item_factors,
            "global": self.global_factor,
            "classes": np.array([self.class_factors[c] for c in names]).reshape(
                len(names), self.item_factors.shape[1]
            ),
            "ridge": np.array([self.ridge]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], class_names: list[str]) -> WeeklyProfiles:
        classes = {name: arrays["classes"][i] for i, name in enumerate(class_names)}
        return cls(arrays["items"], classes, arrays["global"], float(arrays["ridge"][0]))
