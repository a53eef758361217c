"""How the anomaly benchmark counts: what an injection changes, what counts as caught, what as a
flag on the trace as recorded, and which setting the flag budget chooses."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.predict.anomaly import AnomalySettings, Assessment
from cotenancy.predict.anomaly_evaluation import (
    AFTERMATH_STEPS,
    EXFILTRATION_KIB_S,
    Injection,
    choose,
    inject,
    score_settings,
)

STEP = 300.0


def quiet_assessment(n_vms: int, n_steps: int, persistence: int = 1) -> Assessment:
    """Every sample at its forecast: nothing is flagged until a test raises an observation."""
    ones = np.ones((n_vms, n_steps))
    samples = np.ones((n_vms, n_steps, persistence))
    return Assessment(
        observed=samples * 100.0,
        p95=samples * 100.0,
        p99=samples * 120.0,
        window_max=ones * 150.0,
        scale=ones,
        size=ones * 1000.0,
        enough_history=np.ones((n_vms, n_steps), dtype=bool),
        persistence=persistence,
    )


def test_an_injection_adds_the_exfiltration_or_pins_the_cpu_and_touches_nothing_else():
    demand = {"network": np.full((6, 100), 50.0), "cpu": np.full((6, 100), 200.0)}
    sizes = {"network": np.full(6, 800.0), "cpu": np.full(6, 2000.0)}

    out, placed = inject(demand, sizes, begin=40, end=100, count=4, seed=3)

    assert [p.kind for p in placed] == ["exfiltration", "runaway", "exfiltration", "runaway"]
    assert len({p.vm for p in placed}) == 4
    expected = {r: v.copy() for r, v in demand.items()}
    for p in placed:
        assert p.onset >= 40 and p.onset + p.steps + AFTERMATH_STEPS <= 100
        span = slice(p.onset, p.onset + p.steps)
        if p.kind == "exfiltration":
            expected["network"][p.vm, span] += EXFILTRATION_KIB_S
        else:
            expected["cpu"][p.vm, span] = 2000.0
    for resource in demand:
        np.testing.assert_array_equal(out[resource], expected[resource])
        np.testing.assert_array_equal(
            demand[resource], np.full((6, 100), 50.0 if resource == "network" else 200.0)
        )


def test_more_injections_than_vms_is_refused():
    demand = {"network": np.zeros((2, 50)), "cpu": np.zeros((2, 50))}
    with pytest.raises(ValueError, match="3 injections need 3 VMs"):
        inject(demand, {"network": np.ones(2), "cpu": np.ones(2)}, 0, 50, 3, seed=0)


def test_caught_means_flagged_on_its_resource_within_three_steps_of_its_onset():
    begin = 1000
    network, cpu = quiet_assessment(4, 60), quiet_assessment(4, 60)
    late = Injection("exfiltration", vm=0, onset=begin + 10)
    in_time = Injection("exfiltration", vm=1, onset=begin + 20)
    wrong_resource = Injection("runaway", vm=2, onset=begin + 30)
    network.observed[0, 13] = 5000.0  # the fourth step: too late
    network.observed[1, 22] = 5000.0  # the third step
    network.observed[2, 30] = 5000.0  # the runaway's VM, but on the network

    row = score_settings(
        {"network": network, "cpu": cpu},
        [late, in_time, wrong_resource],
        begin,
        STEP,
        AnomalySettings(persistence=1),
    )

    assert row["recall_by_kind"] == {"exfiltration": 0.5, "runaway": 0.0}
    assert row["recall"] == pytest.approx(1 / 3)


def test_flags_outside_injections_count_per_vm_hour_and_an_injections_aftermath_is_left_out():
    begin = 0
    network = quiet_assessment(2, 120)
    injection = Injection("exfiltration", vm=0, onset=50)
    network.observed[0, 50 + injection.steps + AFTERMATH_STEPS - 1] = 5000.0  # in the aftermath
    network.observed[1, 7] = 5000.0  # on the trace as recorded
    network.observed[1, 8] = np.nan  # a step without a sample is not a VM-hour

    row = score_settings({"network": network}, [injection], begin, STEP, AnomalySettings(persistence=1))

    counted_steps = 2 * 120 - (injection.steps + AFTERMATH_STEPS) - 1
    assert row["flags_per_1000_vm_hours"] == pytest.approx(1000.0 / (counted_steps * STEP / 3600.0))


def test_a_share_of_the_vms_size_keeps_small_excesses_from_being_flagged():
    network = quiet_assessment(1, 10)
    network.observed[0, 4] = 300.0  # 200 above a p95 of 100: a fifth of the size (1000)

    def flags(share: float) -> float:
        settings = AnomalySettings(min_share=share, persistence=1)
        return score_settings({"network": network}, [], 0, STEP, settings)["flags_per_1000_vm_hours"]

    assert flags(0.1) > 0
    assert flags(0.25) == 0


def test_the_budget_chooses_the_most_recall_among_settings_that_flag_little_enough():
    rows = [
        {"threshold": 4, "min_ratio": 2, "min_share": 0, "recall": 0.9, "flags_per_1000_vm_hours": 3.0},
        {"threshold": 8, "min_ratio": 2, "min_share": 0, "recall": 0.7, "flags_per_1000_vm_hours": 0.4},
        {"threshold": 12, "min_ratio": 2, "min_share": 0, "recall": 0.7, "flags_per_1000_vm_hours": 0.2},
        {"threshold": 16, "min_ratio": 2, "min_share": 0, "recall": 0.7, "flags_per_1000_vm_hours": 0.2},
        {"threshold": 32, "min_ratio": 2, "min_share": 0, "recall": 0.5, "flags_per_1000_vm_hours": 0.1},
    ]

    assert choose(rows, 0.5)["threshold"] == 16
    assert choose(rows, 0.05) is None


def test_the_ceiling_reference_lets_a_burst_as_big_as_the_days_largest_pass():
    network = quiet_assessment(1, 10)
    network.observed[0, 4] = 140.0  # above the p95 (100) and p99 (120), under the window max (150)
    network.observed[0, 6] = 400.0  # above everything

    def flagged(reference: str) -> list[int]:
        settings = AnomalySettings(
            reference=reference, threshold=4, min_ratio=1.1, min_share=0, persistence=1
        )
        return np.flatnonzero(network.flagged(settings)[0]).tolist()

    assert flagged("p95") == [4, 6]
    assert flagged("ceiling") == [6]


def test_with_two_in_a_row_a_one_interval_burst_passes_and_a_lasting_one_is_flagged():
    network = quiet_assessment(1, 10, persistence=2)
    network.observed[0, 3, 1] = 5000.0  # the latest sample only: a one-interval burst
    network.observed[0, 7, :] = 5000.0  # both samples

    flagged = network.flagged(AnomalySettings(persistence=2))

    assert np.flatnonzero(flagged[0]).tolist() == [7]
    with pytest.raises(ValueError, match="cannot judge a persistence of 1"):
        network.flagged(AnomalySettings(persistence=1))
