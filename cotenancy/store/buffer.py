"""In-memory telemetry ring buffer for the control loop.

Each round a strategy wants the last few intervals of every VM as arrays; going through SQL for
that every round is wasted work. The buffer keeps ``capacity_steps`` epoch-aligned buckets of
``step_seconds`` per VM and metric (sum and count, so a bucket holds the mean of what arrived),
and hands out :class:`~cotenancy.model.TelemetryWindow` slices in the same shape the history store
gives.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from cotenancy.model import Metric, MetricSample, TelemetryWindow


class TelemetryBuffer:
    """Ring buffer of per-bucket means: bucket ``b`` covers ``[b*step, (b+1)*step)``.

    Invalid values (NaN, infinite, negative, ``cpu_ready`` above 1) are not averaged in; they are
    counted in :attr:`rejected` by reason. Samples older than the buffer holds are counted as
    ``too_old``; samples at or after the ``not_after`` a caller gives (the end of the interval it
    asked for) as ``future``, since one such timestamp (milliseconds for seconds, say) would move
    the ring past every valid bucket.
    """

    def __init__(self, step_seconds: float, capacity_steps: int) -> None:
        if not step_seconds > 0:
            raise ValueError(f"step_seconds must be positive, got {step_seconds!r}")
        if capacity_steps < 1:
            raise ValueError(f"capacity_steps must be at least 1, got {capacity_steps!r}")
        self.step_seconds = float(step_seconds)
        self.capacity_steps = int(capacity_steps)
        self.rejected: Counter[str] = Counter()
        self._rows: dict[str, int] = {}
        self._row_capacity = 0
        self._sums: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}
        # absolute bucket number held by each slot; -inf-like sentinel for never used
        self._slot_bucket = np.full(self.capacity_steps, np.iinfo(np.int64).min, dtype=np.int64)
        self._newest_bucket: int | None = None

    @property
    def vm_ids(self) -> list[str]:
        return list(self._rows)

    @property
    def metrics(self) -> list[str]:
        return list(self._sums)

    def _bucket(self, timestamp: float) -> int:
        return math.floor(timestamp / self.step_seconds)

    def _ensure_rows(self, vm_ids: Sequence[str]) -> np.ndarray:
        rows = np.empty(len(vm_ids), dtype=np.int64)
        for i, vm_id in enumerate(vm_ids):
            row = self._rows.get(vm_id)
            if row is None:
                row = self._rows[vm_id] = len(self._rows)
            rows[i] = row
        if len(self._rows) > self._row_capacity:
            new_capacity = max(64, self._row_capacity * 2, len(self._rows))
            for store in (self._sums, self._counts):
                for metric, array in store.items():
                    grown = np.zeros((new_capacity, self.capacity_steps), dtype=array.dtype)
                    grown[: self._row_capacity] = array
                    store[metric] = grown
            self._row_capacity = new_capacity
        return rows

    def _ensure_metric(self, metric: str) -> None:
        if metric not in self._sums:
            self._sums[metric] = np.zeros((self._row_capacity, self.capacity_steps))
            self._counts[metric] = np.zeros((self._row_capacity, self.capacity_steps), dtype=np.int32)

    def _claim_slot(self, bucket: int) -> int | None:
        """Slot for ``bucket``, clearing it if it held an older bucket; None when too old."""
        if self._newest_bucket is not None and bucket <= self._newest_bucket - self.capacity_steps:
            return None
        slot = bucket % self.capacity_steps
        if self._slot_bucket[slot] != bucket:
            for metric in self._sums:
                self._sums[metric][:, slot] = 0.0
                self._counts[metric][:, slot] = 0
            self._slot_bucket[slot] = bucket
        if self._newest_bucket is None or bucket > self._newest_bucket:
            self._newest_bucket = bucket
        return slot

    @staticmethod
    def _invalid_mask(metric: str, values: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore"):
            masks = {
                "nan": np.isnan(values),
                "infinite": np.isinf(values),
                "negative": values < 0,
            }
            if metric == Metric.CPU_READY:
                masks["ready_above_one"] = np.isfinite(values) & (values > 1.0)
        return masks

    def add_frame(
        self,
        timestamp: float,
        vm_ids: Sequence[str],
        values: dict[str, np.ndarray],
        not_after: float | None = None,
    ) -> None:
        """Fast path: one sample per VM and metric at ``timestamp`` (``values[m][i]`` for
        ``vm_ids[i]``)."""
        if not math.isfinite(timestamp):
            self.rejected["bad_timestamp"] += len(vm_ids) * len(values)
            return
        if not_after is not None and timestamp >= not_after:
            self.rejected["future"] += len(vm_ids) * len(values)
            return
        rows = self._ensure_rows(vm_ids)
        for metric in values:
            self._ensure_metric(str(metric))
        slot = self._claim_slot(self._bucket(timestamp))
        if slot is None:
            self.rejected["too_old"] += len(vm_ids) * len(values)
            return
        for metric, column in values.items():
            array = np.asarray(column, dtype=float)
            if array.shape != (len(vm_ids),):
                raise ValueError(f"values[{metric!r}] has shape {array.shape}, expected ({len(vm_ids)},)")
            masks = self._invalid_mask(str(metric), array)
            bad = np.zeros(len(array), dtype=bool)
            for reason, mask in masks.items():
                count = int(np.count_nonzero(mask & ~bad))
                if count:
                    self.rejected[reason] += count
                bad |= mask
            good = ~bad
            np.add.at(self._sums[str(metric)][:, slot], rows[good], array[good])
            np.add.at(self._counts[str(metric)][:, slot], rows[good], 1)

    def add(self, samples: Iterable[MetricSample], not_after: float | None = None) -> None:
        """Add samples (any mix of VMs, metrics and times), grouped into frames for speed; those
        at or after ``not_after`` are rejected as ``future``."""
        frames: dict[tuple[float, str], tuple[list[str], list[float]]] = {}
        for sample in samples:
            try:
                timestamp = float(sample.timestamp)
                value = float(sample.value)
            except (TypeError, ValueError):
                self.rejected["not_a_number"] += 1
                continue
            if not math.isfinite(timestamp):
                self.rejected["bad_timestamp"] += 1
                continue
            vms, values = frames.setdefault((timestamp, str(sample.metric)), ([], []))
            vms.append(sample.vm_id)
            values.append(value)
        for (timestamp, metric), (vms, values) in sorted(frames.items()):
            self.add_frame(timestamp, vms, {metric: np.array(values, dtype=float)}, not_after)

    def window(self, end: float, steps: int, vm_ids: Sequence[str] | None = None) -> TelemetryWindow:
        """The ``steps`` buckets before ``end`` (the last one contains ``end - step``), labelled by
        bucket start; NaN where nothing valid arrived or the buffer no longer holds the bucket."""
        if steps < 1 or steps > self.capacity_steps:
            raise ValueError(f"steps must be within 1..{self.capacity_steps}, got {steps!r}")
        last = math.ceil(end / self.step_seconds - 1e-9) - 1
        buckets = np.arange(last - steps + 1, last + 1, dtype=np.int64)
        slots = buckets % self.capacity_steps
        held = self._slot_bucket[slots] == buckets
        ids = list(self._rows) if vm_ids is None else list(vm_ids)
        rows = np.array([self._rows.get(v, -1) for v in ids], dtype=np.int64)
        known = rows >= 0
        out: dict[str, np.ndarray] = {}
        for metric, sums in self._sums.items():
            counts = self._counts[metric]
            result = np.full((len(ids), steps), np.nan)
            if known.any():
                picked_sums = sums[np.ix_(rows[known], slots)]
                picked_counts = counts[np.ix_(rows[known], slots)]
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(picked_counts > 0, picked_sums / np.maximum(picked_counts, 1), np.nan)
                mean[:, ~held] = np.nan
                result[known] = mean
            out[metric] = result
        return TelemetryWindow(ids, buckets.astype(float) * self.step_seconds, out, self.step_seconds)
