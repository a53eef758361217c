"""Interference between co-located VMs through shared last-level cache and memory bandwidth.

Capacity contention (CPU, memory, I/O over 100 %) is modelled elsewhere; this is the part a
hypervisor's accounting does not show: a VM gets all the CPU time it asked for and still runs
slower because its neighbours evict its cache lines and saturate the memory controller.

Model (see ``docs/interference-model.md``)::

    x_i = sum over j on the same host, j != i, of pressure_j * activity_j
    f(x) = x / (x + half_load)
    slowdown_i = min(cap, sensitivity_i * f(x_i))

``pressure`` (how hard a VM hits the shared cache at full activity; 1.0 = a typical VM) and
``sensitivity`` (the fraction of performance the VM would lose under saturating pressure) are
hidden per-VM traits: they never leave the simulator. Their magnitudes come from the Azure VM
noise data through ``noise_calibration.json`` (written by ``benchmarks/calibrate_azure_noise.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

CALIBRATION_FILE = "noise_calibration.json"


def load_calibration() -> dict[str, Any]:
    """The calibration shipped with the package."""
    text = resources.files("cotenancy.sim").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class VmTraits:
    """Hidden per-VM parameters (arrays of shape ``(n_vms,)``); never exposed outside the simulator.

    ``archetype`` is the index into the calibration's archetypes the VM's sensitivity was drawn from.
    """

    pressure: np.ndarray
    sensitivity: np.ndarray
    archetype: np.ndarray | None = None


def neighbour_load(host_index: np.ndarray, load: np.ndarray, n_hosts: int) -> np.ndarray:
    """For every VM, the summed ``load`` of the *other* VMs on its host (0 when not placed)."""
    host_index = np.asarray(host_index, dtype=np.int64)
    load = np.asarray(load, dtype=float)
    placed = host_index >= 0
    per_host = np.bincount(host_index[placed], weights=load[placed], minlength=n_hosts)
    result = np.zeros(len(host_index))
    result[placed] = per_host[host_index[placed]] - load[placed]
    # the subtraction leaves rounding dust where a VM is alone
    return np.maximum(result, 0.0)


class InterferenceModel:
    """Slowdown from shared cache/memory bandwidth, calibrated on the Azure VM noise data."""

    def __init__(self, calibration: dict[str, Any] | None = None) -> None:
        self.calibration = calibration if calibration is not None else load_calibration()
        model = self.calibration["model"]
        self.half_load = float(model["half_load"])
        self.cap = float(model["cap"])
        self.pressure_sigma = float(model["pressure_sigma"])
        self.sensitivity_jitter = float(model["sensitivity_jitter"])
        archetypes = model["archetypes"]
        self.archetype_names = [a["name"] for a in archetypes]
        self.archetype_sensitivity = np.array([float(a["sensitivity"]) for a in archetypes])
        weights = np.array([float(a["weight"]) for a in archetypes])
        if self.half_load <= 0 or not 0 < self.cap <= 1 or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                "interference calibration out of range (half_load > 0, 0 < cap <= 1, weights >= 0)"
            )
        self.archetype_weights = weights / weights.sum()

    def draw_traits(self, n_vms: int, rng: np.random.Generator) -> VmTraits:
        """Pressure: log-normal with mean 1. Sensitivity: the calibrated value of a randomly drawn
        archetype (one per Azure benchmark kind) times a log-normal jitter with mean 1."""
        sigma = self.pressure_sigma
        pressure = rng.lognormal(-(sigma**2) / 2, sigma, size=n_vms)
        archetype = rng.choice(len(self.archetype_weights), size=n_vms, p=self.archetype_weights)
        jitter_sigma = self.sensitivity_jitter
        jitter = rng.lognormal(-(jitter_sigma**2) / 2, jitter_sigma, size=n_vms)
        sensitivity = np.minimum(self.archetype_sensitivity[archetype] * jitter, 1.0)
        return VmTraits(pressure=pressure, sensitivity=sensitivity, archetype=archetype)

    def load_curve(self, load: np.ndarray) -> np.ndarray:
        """f(x) = x / (x + half_load): linear for light neighbours, saturating for heavy ones."""
        load = np.asarray(load, dtype=float)
        return load / (load + self.half_load)

    def slowdown(
        self, traits: VmTraits, host_index: np.ndarray, activity: np.ndarray, n_hosts: int
    ) -> np.ndarray:
        """Fraction of performance each VM loses to its neighbours this step, shape ``(n_vms,)``.

        ``host_index[i]`` is VM i's host (``-1`` = not placed); ``activity[i]`` is its CPU
        utilisation 0..1 of its own size (busier VMs press harder on the cache).
        """
        activity = np.clip(np.nan_to_num(np.asarray(activity, dtype=float), nan=0.0), 0.0, 1.0)
        load = neighbour_load(host_index, traits.pressure * activity, n_hosts)
        lost = np.minimum(self.cap, traits.sensitivity * self.load_curve(load))
        lost[np.asarray(host_index) < 0] = 0.0
        return lost


def reference_host_loads(
    model: InterferenceModel, n_hosts: int, neighbours: int, rng: np.random.Generator
) -> np.ndarray:
    """Neighbour load x seen by one victim on each of ``n_hosts`` reference hosts: ``neighbours``
    VMs with drawn pressure, each busy uniformly between idle and fully loaded (the benchmark runs
    at any time of day, whatever the neighbours do)."""
    pressure = model.draw_traits(n_hosts * neighbours, rng).pressure.reshape(n_hosts, neighbours)
    activity = rng.uniform(0.0, 1.0, size=(n_hosts, neighbours))
    return (pressure * activity).sum(axis=1)
