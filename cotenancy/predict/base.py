"""The two predictor plug-in points: pairwise conflict risk and demand forecasts.

Both are pure functions of a :class:`ClusterState` (plus a trained model file, when there is one),
so the planner, the ``predictive`` strategy and the Watcher plugin call them the same way.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from oslo_config import cfg

from cotenancy.model import ClusterState


@dataclass(slots=True)
class Forecast:
    """Quantile forecasts of every VM's demand.

    ``values[resource]`` has shape ``(len(vm_ids), len(horizons), len(quantiles))`` in project units
    (see :mod:`cotenancy.model.resources`); ``horizons`` are in steps of ``step_seconds`` after
    ``origin``. ``source`` says which model produced it (``trained`` or ``fallback``) so an operator
    can tell a learned forecast from the cold-start heuristic.
    """

    vm_ids: list[str]
    origin: float
    step_seconds: float
    horizons: tuple[int, ...]
    quantiles: tuple[float, ...]
    values: dict[str, np.ndarray]
    source: dict[str, str] = field(default_factory=dict)

    def get(self, resource: str, horizon: int, quantile: float) -> np.ndarray:
        """Per-VM values of one resource at one horizon and quantile."""
        return self.values[resource][:, self.horizons.index(horizon), self.quantiles.index(quantile)]


class Predictor(abc.ABC):  # noqa: B024 - the abstract methods live on the two subclasses
    """What both kinds of predictor share: a name, an option group and the configuration."""

    #: entry-point name in its namespace
    name: ClassVar[str] = ""
    #: oslo.config group of its options
    group: ClassVar[str] = ""

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return []

    def __init__(self, conf: cfg.ConfigOpts | None = None) -> None:
        self.conf = conf
        opts = self.list_opts()
        if conf is not None and opts:
            conf.register_opts(opts, group=self.group)

    @property
    def options(self) -> cfg.ConfigOpts.GroupAttr | None:
        return getattr(self.conf, self.group) if self.conf is not None else None

    @property
    def trained(self) -> bool:
        """True when a trained model (not the cold-start fallback) is serving."""
        return False


@dataclass(slots=True)
class InterferenceEstimate:
    """Per VM: how much it slows down under saturating neighbour activity (``sensitivity``, 0..1),
    the activity it is predicted to have (``activity``, 0..1 of its size) and how hard that
    activity presses on its neighbours' cache (``pressure``, 1 = typical).

    A VM's slowdown on a host is ``sensitivity × load / (load + half_load)`` where ``load`` sums its
    neighbours' pressure × activity: a sum over the whole neighbourhood, which pair scores cannot
    add up to, so the planner counts it from these. Arrays follow ``vm_ids``; NaN where unknown.
    """

    vm_ids: list[str]
    sensitivity: np.ndarray
    activity: np.ndarray
    half_load: float
    pressure: np.ndarray | None = None


class RiskModel(Predictor):
    """Probability that two VMs get into a conflict within the horizon."""

    def interference(self, state: ClusterState) -> InterferenceEstimate | None:
        """Per-VM interference estimates, for models that make them (``None``: this one does not)."""
        return None

    @abc.abstractmethod
    def score_pairs(
        self, state: ClusterState, pairs: np.ndarray, hosts: np.ndarray | None = None
    ) -> np.ndarray:
        """Calibrated probability of a conflict involving both VMs of each pair within the horizon.

        ``pairs``: ``(k, 2)`` int indices into ``state.telemetry.vm_ids``. ``hosts``: optional
        ``(k,)`` indices into ``sorted(state.inventory.hosts)``, a hypothetical host for both VMs
        (the planner judging a move); ``None`` scores them where they are now.
        Returns ``(k,)`` float probabilities.
        """

    @abc.abstractmethod
    def explain(
        self, state: ClusterState, pair: tuple[int, int], top: int = 5, host: int | None = None
    ) -> list[tuple[str, float]]:
        """The features that pushed this pair's score most (name, contribution in log-odds)."""


class Forecaster(Predictor):
    """Multi-horizon quantile forecasts of every VM's demand."""

    @abc.abstractmethod
    def forecast(
        self,
        state: ClusterState,
        horizons: Sequence[int],
        quantiles: Sequence[float] = (0.5, 0.95),
    ) -> Forecast:
        """Forecast every VM in ``state.telemetry`` at ``horizons`` (steps of
        ``state.telemetry.step_seconds``) and ``quantiles``."""
