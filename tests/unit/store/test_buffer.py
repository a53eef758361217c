"""The control loop's telemetry ring buffer: bucket means, ring eviction, invalid values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cotenancy.model import MetricSample
from cotenancy.store import TelemetryBuffer

STEP = 300.0
T0 = STEP * 5_000_000  # bucket-aligned


def test_window_gives_bucket_means_labelled_by_bucket_start() -> None:
    buffer = TelemetryBuffer(STEP, capacity_steps=4)
    buffer.add(
        [
            MetricSample("a", T0, "cpu", 10.0),
            MetricSample("a", T0 + 200, "cpu", 30.0),
            MetricSample("b", T0 + 300, "cpu", 5.0),
            MetricSample("b", T0 + 300, "memory", 256.0),
        ]
    )
    window = buffer.window(end=T0 + 2 * STEP, steps=3)

    assert window.vm_ids == ["a", "b"]
    np.testing.assert_array_equal(window.timestamps, [T0 - STEP, T0, T0 + STEP])
    np.testing.assert_array_equal(window.values["cpu"], [[np.nan, 20.0, np.nan], [np.nan, np.nan, 5.0]])
    np.testing.assert_array_equal(window.values["memory"], [[np.nan] * 3, [np.nan, np.nan, 256.0]])
    np.testing.assert_array_equal(window.latest("cpu"), [np.nan, 5.0])


def test_add_frame_matches_add_of_the_same_samples() -> None:
    rng = np.random.default_rng(3)
    vm_ids = [f"vm-{i}" for i in range(50)]
    by_frame = TelemetryBuffer(STEP, 6)
    by_sample = TelemetryBuffer(STEP, 6)
    for k in range(6):
        cpu = rng.uniform(0, 2000, size=len(vm_ids))
        by_frame.add_frame(T0 + k * STEP, vm_ids, {"cpu": cpu})
        by_sample.add(
            MetricSample(v, T0 + k * STEP, "cpu", float(x)) for v, x in zip(vm_ids, cpu, strict=True)
        )
    a = by_frame.window(T0 + 6 * STEP, 6)
    b = by_sample.window(T0 + 6 * STEP, 6)
    np.testing.assert_allclose(a.values["cpu"], b.values["cpu"])
    assert not np.isnan(a.values["cpu"]).any()


def test_old_buckets_fall_out_of_the_ring() -> None:
    buffer = TelemetryBuffer(STEP, capacity_steps=3)
    for k in range(5):
        buffer.add_frame(T0 + k * STEP, ["a"], {"cpu": np.array([float(k)])})
    window = buffer.window(T0 + 5 * STEP, 3)
    np.testing.assert_array_equal(window.values["cpu"], [[2.0, 3.0, 4.0]])

    buffer.add_frame(T0, ["a"], {"cpu": np.array([99.0])})
    assert buffer.rejected["too_old"] == 1
    np.testing.assert_array_equal(buffer.window(T0 + 5 * STEP, 3).values["cpu"], [[2.0, 3.0, 4.0]])
    # a window reaching back past what the ring holds shows NaN there, not stale numbers
    np.testing.assert_array_equal(buffer.window(T0 + 4 * STEP, 3).values["cpu"], [[np.nan, 2.0, 3.0]])


def test_a_sample_from_the_future_is_rejected_and_keeps_later_samples_from_being_dropped() -> None:
    buffer = TelemetryBuffer(STEP, capacity_steps=4)
    now = T0 + 4 * STEP
    buffer.add([MetricSample("a", T0 + 2 * STEP, "cpu", 100.0)], not_after=now)
    # a timestamp in milliseconds, not seconds
    buffer.add([MetricSample("b", now * 1000, "cpu", 5.0)], not_after=now)
    buffer.add([MetricSample("a", T0 + 3 * STEP, "cpu", 200.0)], not_after=now)
    assert buffer.rejected == {"future": 1}
    np.testing.assert_array_equal(buffer.window(now, 2, vm_ids=["a"]).values["cpu"], [[100.0, 200.0]])


def test_invalid_values_become_nan_and_are_counted() -> None:
    buffer = TelemetryBuffer(STEP, 2)
    buffer.add_frame(
        T0,
        ["a", "b", "c", "d"],
        {
            "cpu": np.array([100.0, math.nan, -5.0, math.inf]),
            "cpu_ready": np.array([0.1, 1.2, 0.0, 0.5]),
        },
    )
    window = buffer.window(T0 + STEP, 1)
    np.testing.assert_array_equal(window.values["cpu"][:, 0], [100.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(window.values["cpu_ready"][:, 0], [0.1, np.nan, 0.0, 0.5])
    assert dict(buffer.rejected) == {"nan": 1, "negative": 1, "infinite": 1, "ready_above_one": 1}


def test_window_rows_follow_requested_vms_and_unknown_vms_are_nan() -> None:
    buffer = TelemetryBuffer(STEP, 2)
    buffer.add_frame(T0, ["a", "b"], {"cpu": np.array([1.0, 2.0])})
    window = buffer.window(T0 + STEP, 1, vm_ids=["b", "ghost", "a"])
    assert window.vm_ids == ["b", "ghost", "a"]
    np.testing.assert_array_equal(window.values["cpu"][:, 0], [2.0, np.nan, 1.0])


def test_many_vms_grow_the_buffer_without_losing_data() -> None:
    buffer = TelemetryBuffer(STEP, 2)
    first = [f"a{i}" for i in range(10)]
    buffer.add_frame(T0, first, {"cpu": np.arange(10.0)})
    more = [f"b{i}" for i in range(500)]
    buffer.add_frame(T0, more, {"cpu": np.full(500, 7.0)})
    window = buffer.window(T0 + STEP, 1)
    assert len(window.vm_ids) == 510
    np.testing.assert_array_equal(window.values["cpu"][:10, 0], np.arange(10.0))
    assert (window.values["cpu"][10:, 0] == 7.0).all()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        TelemetryBuffer(0.0, 3)
    with pytest.raises(ValueError):
        TelemetryBuffer(STEP, 0)
    buffer = TelemetryBuffer(STEP, 3)
    with pytest.raises(ValueError, match="steps"):
        buffer.window(T0, 4)
    with pytest.raises(ValueError, match="shape"):
        buffer.add_frame(T0, ["a", "b"], {"cpu": np.array([1.0])})
