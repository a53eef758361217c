"""The interference model: who slows down whom, by how much, and where the numbers come from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cotenancy.sim.interference import InterferenceModel, VmTraits, load_calibration, neighbour_load

REPO_ROOT = Path(__file__).resolve().parents[3]


def _traits(pressure: list[float], sensitivity: list[float]) -> VmTraits:
    return VmTraits(np.array(pressure, dtype=float), np.array(sensitivity, dtype=float))


def test_traits_are_deterministic_for_a_seed() -> None:
    model = InterferenceModel()
    a = model.draw_traits(500, np.random.default_rng(7))
    b = model.draw_traits(500, np.random.default_rng(7))
    c = model.draw_traits(500, np.random.default_rng(8))
    np.testing.assert_array_equal(a.pressure, b.pressure)
    np.testing.assert_array_equal(a.sensitivity, b.sensitivity)
    assert not np.array_equal(a.pressure, c.pressure)
    assert (a.pressure > 0).all()
    assert ((a.sensitivity >= 0) & (a.sensitivity <= 1)).all()
    assert abs(a.pressure.mean() - 1.0) < 0.1, "pressure is relative to a typical VM (mean 1)"


def test_a_vm_alone_or_unplaced_loses_nothing() -> None:
    model = InterferenceModel()
    traits = _traits([1.0, 5.0, 5.0, 5.0], [0.5, 0.5, 0.5, 0.5])
    hosts = np.array([0, 1, -1, -1])  # alone on 0 and 1; the two unplaced VMs share no host
    slowdown = model.slowdown(traits, hosts, np.ones(4), n_hosts=2)
    np.testing.assert_array_equal(slowdown, [0.0, 0.0, 0.0, 0.0])


def test_only_neighbours_on_the_same_host_count() -> None:
    model = InterferenceModel()
    traits = _traits([1.0, 1.0, 9.0], [0.4, 0.4, 0.4])
    slowdown = model.slowdown(traits, np.array([0, 0, 1]), np.ones(3), n_hosts=2)
    expected = 0.4 * 1.0 / (1.0 + model.half_load)
    np.testing.assert_allclose(slowdown, [expected, expected, 0.0])


def test_slowdown_grows_with_neighbour_pressure_and_activity_and_is_capped() -> None:
    model = InterferenceModel()
    victim_sensitivity = 1.0
    results = []
    for neighbour_pressure in [0.0, 0.5, 1.0, 2.0, 8.0, 1e6]:
        traits = _traits([1.0, neighbour_pressure], [victim_sensitivity, 0.0])
        results.append(model.slowdown(traits, np.array([0, 0]), np.array([1.0, 1.0]), n_hosts=1)[0])
    assert results[0] == 0.0
    assert all(b > a for a, b in zip(results[:-2], results[1:-1], strict=True))
    assert results[-1] == pytest.approx(model.cap)

    traits = _traits([1.0, 2.0], [1.0, 0.0])
    by_activity = [
        model.slowdown(traits, np.array([0, 0]), np.array([1.0, a]), n_hosts=1)[0] for a in (0.0, 0.3, 1.0)
    ]
    assert by_activity[0] == 0.0 < by_activity[1] < by_activity[2]


def test_slowdown_is_proportional_to_the_victims_sensitivity() -> None:
    model = InterferenceModel()
    traits = _traits([1.0, 1.0, 3.0], [0.1, 0.3, 0.0])
    slowdown = model.slowdown(traits, np.zeros(3, dtype=int), np.ones(3), n_hosts=1)
    assert slowdown[1] == pytest.approx(3 * slowdown[0])
    assert slowdown[2] == 0.0


def test_vectorised_neighbour_load_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(11)
    hosts = rng.integers(-1, 20, size=300)
    load = rng.uniform(0, 2, size=300)
    fast = neighbour_load(hosts, load, 20)
    slow = [
        0.0 if h < 0 else sum(load[j] for j in range(300) if hosts[j] == h and j != i)
        for i, h in enumerate(hosts)
    ]
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_nan_activity_counts_as_idle() -> None:
    model = InterferenceModel()
    traits = _traits([1.0, 4.0], [0.5, 0.5])
    slowdown = model.slowdown(traits, np.array([0, 0]), np.array([1.0, np.nan]), n_hosts=1)
    assert slowdown[0] == 0.0
    assert slowdown[1] > 0.0


def test_shipped_calibration_is_complete_and_in_range() -> None:
    calibration = load_calibration()
    assert {"provenance", "benchmarks", "model"} <= set(calibration)
    assert "azure-vm-noise" in calibration["provenance"]["data"]
    model = calibration["model"]
    assert 0 < model["cap"] <= 1
    assert model["half_load"] > 0
    names = {a["name"] for a in model["archetypes"]}
    assert names == set(calibration["benchmarks"])
    by_name = {a["name"]: a["sensitivity"] for a in model["archetypes"]}
    # the cache benchmark varies most in the data, so its archetype must be the most sensitive
    assert max(by_name, key=by_name.get) == "CPU_Cache"
    assert by_name["CPU"] < by_name["RAM__Memory"] < by_name["CPU_Cache"]


def test_bad_calibration_is_refused() -> None:
    calibration = load_calibration()
    broken = json.loads(json.dumps(calibration))
    broken["model"]["cap"] = 1.5
    with pytest.raises(ValueError, match="calibration"):
        InterferenceModel(broken)


def _calibration_script():
    path = REPO_ROOT / "benchmarks" / "calibrate_azure_noise.py"
    spec = importlib.util.spec_from_file_location("calibrate_azure_noise", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_file_is_what_the_script_computes_from_the_azure_data(shared_dir: Path) -> None:
    script = _calibration_script()
    tarball = shared_dir / "traces" / "azure-vm-noise" / script.TARBALL_NAME
    recomputed = script.calibrate(tarball)
    shipped = load_calibration()
    assert recomputed["benchmarks"] == shipped["benchmarks"]
    assert recomputed["model"] == shipped["model"]


def test_fitted_model_reproduces_the_data_tail_on_the_reference_host() -> None:
    for archetype in load_calibration()["model"]["archetypes"]:
        fit = archetype["fit"]
        assert fit["model_r_q01"] == pytest.approx(fit["data_r_q01"], abs=0.002), archetype["name"]
