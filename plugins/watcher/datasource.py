"""A Watcher datasource over metrics cotenancy already holds: the simulated cloud's telemetry, or
recorded series replayed in tests.

Watcher's strategies only read metrics through a ``DataSourceBase``; giving them one that reads
the simulator lets Watcher's own strategies and ``cotenancy_predictive`` be compared on the very
same cloud, round after round, with nothing mocked inside Watcher.

Units are Watcher's (see ``DataSourceBase``): CPU in percent of the instance's or host's vCPUs,
instance memory in MB, host memory in KiB, root disk in GB.
"""

from __future__ import annotations

import abc
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from watcher.decision_engine.datasources import base

INSTANCE_METERS = {
    "instance_cpu_usage",
    "instance_ram_usage",
    "instance_ram_allocated",
    "instance_root_disk_size",
}
HOST_METERS = {"host_cpu_usage", "host_ram_usage"}


class MetricSource(abc.ABC):
    """Where the numbers come from: per-instance series on a regular grid, plus a clock."""

    #: seconds between samples
    step: float = 300.0

    def __init__(self, model: Any) -> None:
        self.model = model

    @abc.abstractmethod
    def now(self) -> float:
        """POSIX seconds at the end of the newest sample's interval."""

    def sample_times(self, start: float, end: float) -> list[float]:
        """Stamps of the samples in ``[start, end)``: one every ``step`` before ``now``."""
        times = []
        t = self.now() - self.step
        while t >= start:
            if t < end:
                times.append(t)
            t -= self.step
        return times[::-1]

    @abc.abstractmethod
    def instance_usage(self, uuid: str, meter: str, start: float, end: float) -> dict[float, float]:
        """``instance_cpu_usage`` (percent) or ``instance_ram_usage`` (MB) stamped in ``[start, end)``.

        Stamps are the start of the interval a sample describes and the window is half-open, as in
        Gnocchi's ``get_measures``: a 300 s period ending now holds exactly the last 300 s sample.
        """

    def instance_series(self, instance: Any, meter: str, start: float, end: float) -> dict[float, float]:
        if meter == "instance_ram_allocated":
            return {end: float(instance.memory)}
        if meter == "instance_root_disk_size":
            return {end: float(instance.disk)}
        return self.instance_usage(instance.uuid, meter, start, end)

    def host_series(self, node: Any, meter: str, start: float, end: float) -> dict[float, float]:
        """Host usage is the sum of its instances' usage at each timestamp, as a hypervisor sees it.

        A hypervisor reports its load whether or not it runs guests, so a host without instances
        reads 0, not "no data" (Watcher's ``workload_stabilization`` drops hosts without data from
        its balance, and then fails when it picks one as a destination).
        """
        totals: dict[float, float] = dict.fromkeys(self.sample_times(start, end), 0.0)
        for instance in self.model.get_node_instances(node):
            if meter == "host_cpu_usage":
                samples = self.instance_usage(instance.uuid, "instance_cpu_usage", start, end)
                scale = instance.vcpus / max(1, node.vcpus)
            else:
                samples = self.instance_usage(instance.uuid, "instance_ram_usage", start, end)
                scale = 1024.0
            for t, v in samples.items():
                totals[t] = totals.get(t, 0.0) + v * scale
        return totals


class ArraySource(MetricSource):
    """Series given as arrays, newest value last, ``step`` seconds apart; the newest describes the
    last step before ``now`` (stamped ``now - step``).

    Instances not listed use ``defaults`` (a constant per meter), so a scenario only needs to
    spell out the VMs that matter.
    """

    def __init__(
        self,
        model: Any,
        now: float,
        step: float,
        instances: Mapping[str, Mapping[str, Sequence[float]]],
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(model)
        self._now = float(now)
        self.step = float(step)
        self.instances = instances
        self.defaults = dict(defaults or {})

    def now(self) -> float:
        return self._now

    def instance_usage(self, uuid: str, meter: str, start: float, end: float) -> dict[float, float]:
        values = self.instances.get(uuid, {}).get(meter)
        if values is None:
            if meter not in self.defaults:
                return {}
            count = max(1, int(round((self._now - start) / self.step)))
            values = [self.defaults[meter]] * count
        out = {}
        for back, value in enumerate(reversed(list(values)), start=1):
            t = self._now - back * self.step
            if start <= t < end and value is not None and math.isfinite(value):
                out[t] = float(value)
        return out


class CotenancyDatasource(base.DataSourceBase):
    """Watcher datasource backed by a :class:`MetricSource`."""

    NAME = "cotenancy"
    METRIC_MAP = {meter: meter for meter in INSTANCE_METERS | HOST_METERS}

    def __init__(self, source: MetricSource) -> None:
        super().__init__()
        self.source = source

    def now(self) -> float:
        return self.source.now()

    def query_retry_reset(self, exception_instance: Exception) -> None:
        """Nothing to reconnect: the metrics are in memory."""

    def list_metrics(self) -> set[str]:
        return set(self.METRIC_MAP)

    def check_availability(self) -> str:
        return "available"

    def _series(
        self, resource: Any, resource_type: str, meter: str, start: float, end: float
    ) -> dict[float, float]:
        self._get_meter(meter)
        if meter in HOST_METERS or resource_type == "compute_node":
            return self.source.host_series(resource, meter, start, end)
        return self.source.instance_series(resource, meter, start, end)

    def statistic_series(
        self,
        resource: Any = None,
        resource_type: str | None = None,
        meter_name: str | None = None,
        start_time: dt.datetime | None = None,
        end_time: dt.datetime | None = None,
        granularity: int = 300,
    ) -> dict[dt.datetime, float] | None:
        end = end_time.timestamp() if end_time else self.now()
        start = start_time.timestamp() if start_time else end - granularity
        values = self._series(resource, resource_type or "instance", meter_name or "", start, end)
        if not values:
            return None
        return {dt.datetime.fromtimestamp(t, tz=dt.UTC): v for t, v in sorted(values.items())}

    def _statistic_aggregation(
        self,
        resource: Any = None,
        resource_type: str | None = None,
        meter_name: str | None = None,
        period: int = 300,
        aggregate: str = "mean",
        granularity: int = 300,
    ) -> float | None:
        end = self.now()
        values = list(
            self._series(resource, resource_type or "instance", meter_name or "", end - period, end).values()
        )
        if not values:
            return None
        if aggregate == "min":
            return min(values)
        if aggregate == "max":
            return max(values)
        if aggregate == "count":
            return float(len(values))
        return sum(values) / len(values)

    def _aggregate(
        self, resource: Any, resource_type: str, meter: str, period: int, aggregate: str, granularity: Any
    ) -> float | None:
        return self.statistic_aggregation(
            resource=resource,
            resource_type=resource_type,
            meter_name=meter,
            period=period,
            aggregate=aggregate,
            granularity=granularity or 300,
        )

    def get_host_cpu_usage(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(resource, "compute_node", "host_cpu_usage", period, aggregate, granularity)

    def get_host_ram_usage(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(resource, "compute_node", "host_ram_usage", period, aggregate, granularity)

    def get_instance_cpu_usage(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(resource, "instance", "instance_cpu_usage", period, aggregate, granularity)

    def get_instance_ram_usage(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(resource, "instance", "instance_ram_usage", period, aggregate, granularity)

    def get_instance_ram_allocated(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(resource, "instance", "instance_ram_allocated", period, aggregate, granularity)

    def get_instance_root_disk_size(self, resource, period=300, aggregate="mean", granularity=None):
        return self._aggregate(
            resource, "instance", "instance_root_disk_size", period, aggregate, granularity
        )

    def get_host_outlet_temp(self, resource, period, aggregate, granularity=None):
        return None

    def get_host_inlet_temp(self, resource, period, aggregate, granularity=None):
        return None

    def get_host_airflow(self, resource, period, aggregate, granularity=None):
        return None

    def get_host_power(self, resource, period, aggregate, granularity=None):
        return None

    def get_instance_l3_cache_usage(self, resource, period, aggregate, granularity=None):
        return None
