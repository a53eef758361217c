"""A datasource that reads libvirt exporter metrics from Prometheus (``query_range``).

Nova's diagnostics only show the present; sites that scrape their computes with a libvirt
exporter already keep the history the predictors need. The default queries fit the
prometheus-libvirt-exporter family, whose per-domain series carry a ``domain`` label and whose
``libvirt_domain_openstack_info`` series maps it to the Nova server UUID (``instance_id``).
Every query is an option, so other exporters (or recording rules) work too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from oslo_config import cfg

from cotenancy.drivers.base import untrusted_certificate
from cotenancy.engine.datasource import Datasource
from cotenancy.exceptions import AuthenticationFailed, ConfigurationError, DriverError
from cotenancy.model import Metric, MetricSample

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver

LOG = logging.getLogger(__name__)

#: Prometheus refuses ranges with more than 11,000 points per series; stay below it.
MAX_POINTS_PER_QUERY = 10_000

_JOIN = " * on(domain) group_left(instance_id) libvirt_domain_openstack_info"

DEFAULT_QUERIES: dict[str, str] = {
    # CPU seconds per second (cores busy); multiplied by mhz_per_vcpu below.
    Metric.CPU: "sum by (instance_id) (rate(libvirt_domain_info_cpu_time_seconds_total[{window}])"
    + _JOIN
    + ")",
    # Memory the guest uses: available minus usable (balloon statistics), in MiB.
    Metric.MEMORY: "sum by (instance_id) ((libvirt_domain_memory_stats_available_bytes"
    " - libvirt_domain_memory_stats_usable_bytes)" + _JOIN + ") / 1048576",
    Metric.DISK_IO: "sum by (instance_id) ((rate(libvirt_domain_block_stats_read_bytes_total"
    "[{window}]) + rate(libvirt_domain_block_stats_write_bytes_total[{window}]))" + _JOIN + ") / 1024",
    Metric.NETWORK: "sum by (instance_id) ((rate("
    "libvirt_domain_interface_stats_receive_bytes_total[{window}]) + rate("
    "libvirt_domain_interface_stats_transmit_bytes_total[{window}]))" + _JOIN + ") / 1024",
    # Time vCPUs waited for a physical CPU (schedstat delay), per vCPU: KVM's ready time.
    Metric.CPU_READY: "sum by (instance_id) (rate(libvirt_domain_vcpu_delay_seconds_total"
    "[{window}])" + _JOIN + ") / sum by (instance_id) (libvirt_domain_info_virtual_cpus" + _JOIN + ")",
}

PROMETHEUS_OPTS: list[cfg.Opt] = [
    cfg.URIOpt(
        "url",
        default="http://127.0.0.1:9090",
        schemes=["http", "https"],
        help="Base URL of the Prometheus server (its /api/v1 lives below it).",
    ),
    cfg.FloatOpt("step", default=60.0, min=1.0, help="Seconds between points asked of query_range."),
    cfg.StrOpt(
        "rate_window", default="5m", help="Range of rate() in the queries ({window} in the query templates)."
    ),
    cfg.StrOpt("vm_label", default="instance_id", help="Series label that holds the Nova server UUID."),
    cfg.FloatOpt(
        "mhz_per_vcpu",
        default=2000.0,
        min=1.0,
        help="MHz one busy core stands for (turns CPU seconds/second into MHz).",
    ),
    cfg.FloatOpt("timeout", default=30.0, min=1.0, help="Seconds one HTTP request may take."),
    cfg.BoolOpt("insecure", default=False, help="Skip TLS certificate verification. Only for test setups."),
    cfg.StrOpt("cacert", help="CA bundle to verify Prometheus' TLS certificate with."),
    cfg.StrOpt(
        "bearer_token_file", help="File holding a bearer token to send (read at start, never logged)."
    ),
    cfg.StrOpt("username", help="Basic-auth user, when Prometheus sits behind one."),
    cfg.StrOpt("password", secret=True, help="Basic-auth password."),
    *[
        cfg.StrOpt(
            f"{metric}_query",
            default=query,
            help=f"PromQL giving {metric} per VM in project units; '' disables it.",
        )
        for metric, query in DEFAULT_QUERIES.items()
    ],
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For oslo-config-generator: the ``[prometheus]`` options."""
    return [(PrometheusDatasource.name, list(PROMETHEUS_OPTS))]


class PrometheusDatasource(Datasource):
    """VM metrics from Prometheus' HTTP API, one ``query_range`` per metric (and per chunk)."""

    name = "prometheus"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return list(PROMETHEUS_OPTS)

    def __init__(self, conf: cfg.ConfigOpts, driver: Driver | None = None) -> None:
        super().__init__(conf, driver)  # type: ignore[arg-type]
        opts = getattr(conf, self.name)
        self._base = opts.url.rstrip("/")
        self._http = requests.Session()
        self._http.verify = False if opts.insecure else (opts.cacert or True)
        if opts.bearer_token_file:
            try:
                token = Path(opts.bearer_token_file).read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"[prometheus] bearer_token_file {opts.bearer_token_file}: {exc.strerror}"
                ) from exc
            if not token or not all("!" <= ch <= "~" for ch in token):
                # requests would refuse the header later and quote it, token and all, in its error
                raise ConfigurationError(
                    f"[prometheus] bearer_token_file {opts.bearer_token_file} must hold one token on "
                    "one line: printable ASCII without spaces"
                )
            self._http.headers["Authorization"] = f"Bearer {token}"
        elif opts.username:
            self._http.auth = (opts.username, opts.password or "")

    @property
    def options(self) -> Any:
        return getattr(self.conf, self.name)

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        if end <= start:
            return []
        wanted = set(vm_ids) if vm_ids is not None else None
        samples: list[MetricSample] = []
        for metric in DEFAULT_QUERIES:
            template = getattr(self.options, f"{metric}_query")
            if not template:
                continue
            query = template.replace("{window}", self.options.rate_window)
            scale = self.options.mhz_per_vcpu if metric == Metric.CPU else 1.0
            for series in self._query_range(query, start, end):
                vm_id = series.get("metric", {}).get(self.options.vm_label)
                if vm_id is None or (wanted is not None and vm_id not in wanted):
                    continue
                for stamp, raw in series.get("values", []):
                    timestamp, value = float(stamp), float(raw)
                    if start <= timestamp < end and math.isfinite(value):
                        samples.append(MetricSample(vm_id, timestamp, metric, value * scale))
        return samples

    def _query_range(self, query: str, start: float, end: float) -> list[dict[str, Any]]:
        """All series of ``query`` over ``[start, end]``, asked in chunks Prometheus accepts."""
        step = self.options.step
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + chunk)
            for series in self._get(query, chunk_start, chunk_end):
                key = tuple(sorted(series.get("metric", {}).items()))
                entry = merged.setdefault(key, {"metric": series.get("metric", {}), "values": []})
                entry["values"].extend(series.get("values", []))
            chunk_start = chunk_end + step
        return list(merged.values())

    def _get(self, query: str, start: float, end: float) -> list[dict[str, Any]]:
        params = {
            "query": query,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{self.options.step:g}",
        }
        url = f"{self._base}/api/v1/query_range"
        try:
            # verify per request: requests lets $REQUESTS_CA_BUNDLE override a session's verify
            response = self._http.get(
                url, params=params, timeout=self.options.timeout, verify=self._http.verify
            )
        except requests.RequestException as exc:
            fix = "set [prometheus] cacert to the CA bundle that signed it"
            if (untrusted := untrusted_certificate(exc, "prometheus", self._base, fix)) is not None:
                raise untrusted from exc
            raise DriverError(f"Prometheus at {self._base}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 401:
            # another round would be refused alike: cotenancy run stops on it
            raise AuthenticationFailed(
                f"[prometheus] {self._base} rejected the credentials (HTTP 401); correct [prometheus] "
                "username and password, or bearer_token_file"
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or body.get("status") != "success":
            detail = body.get("error") or response.text[:200]
            raise DriverError(
                f"Prometheus query_range failed (HTTP {response.status_code}, "
                f"{body.get('errorType', 'error')}): {detail}"
            )
        data = body.get("data", {})
        if data.get("resultType") != "matrix":
            raise DriverError(f"Prometheus returned {data.get('resultType')!r}, not a matrix")
        for warning in body.get("warnings", []) or []:
            LOG.warning("Prometheus: %s", warning)
        return list(data.get("result", []))

    def close(self) -> None:
        self._http.close()
