"""Where the control loop reads metrics from: the driver itself, or a monitoring system."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

from oslo_config import cfg

from cotenancy.model import MetricSample
from cotenancy.plugin import ConfigurablePlugin

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver


class Datasource(ConfigurablePlugin, abc.ABC):
    """A source of VM metrics, in project units (see :mod:`cotenancy.model.telemetry`)."""

    def __init__(self, conf: cfg.ConfigOpts, driver: Driver) -> None:
        super().__init__(conf)
        self.driver = driver

    @abc.abstractmethod
    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        """Samples with ``start <= timestamp < end``."""


class DriverDatasource(Datasource):
    """Metrics as the cloud's own API reports them (vSphere performance manager, Nova
    diagnostics, Hyper-V counters, the simulator)."""

    name = "driver"

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        return self.driver.get_metrics(start, end, vm_ids)
