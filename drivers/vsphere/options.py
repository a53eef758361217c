"""Options of the ``vsphere`` driver (group ``[vsphere]``)."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "vsphere"

VSPHERE_OPTS: list[cfg.Opt] = [
    cfg.HostAddressOpt("host", help="vCenter host name or address."),
    cfg.PortOpt("port", default=443, help="vCenter HTTPS port."),
    cfg.StrOpt("username", help="vCenter user name."),
    cfg.StrOpt("password", secret=True, help="vCenter password (never logged)."),
    cfg.StrOpt(
        "ca_file",
        help="CA bundle (PEM) to verify vCenter's certificate with. Empty: the system's CAs.",
    ),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS certificate verification. Only for test setups: never in production.",
    ),
    cfg.FloatOpt(
        "task_timeout",
        default=900.0,
        min=0.1,
        help="Seconds a vCenter task (relocate, reconfigure, maintenance) may take before TimedOut. "
        "A shorter [DEFAULT] step_timeout of the executor applies instead.",
    ),
    cfg.FloatOpt(
        "call_timeout",
        default=120.0,
        min=0.1,
        help="Seconds one API call may take (socket timeout) before TimedOut.",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=0.25,
        min=0.01,
        help="Seconds between polls of a running task.",
    ),
    cfg.BoolOpt(
        "allow_power_cycle",
        default=False,
        help="Let resize power a running VM off and on when CPU/memory hot-add does not allow "
        "the change. Off: such a resize fails with Unsupported.",
    ),
    cfg.ListOpt(
        "metrics",
        default=["cpu", "cpu_demand", "cpu_ready", "memory"],
        item_type=cfg.types.String(
            choices=["cpu", "cpu_demand", "cpu_ready", "memory", "disk_io", "network"]
        ),
        help="Metrics to read from the PerformanceManager. disk_io and network are off by "
        "default: vSphere gives VMs no size and hosts no capacity in those resources, so the "
        "planner could not place on them.",
    ),
    cfg.IntOpt(
        "perf_interval",
        default=20,
        min=1,
        help="PerformanceManager intervalId: 20 (real-time, last hour) or a historical interval such as 300.",
    ),
    cfg.IntOpt(
        "perf_max_samples",
        default=180,
        min=1,
        help="Most samples per VM and metric one metrics query asks for.",
    ),
    cfg.IntOpt(
        "perf_batch_size",
        default=40,
        min=1,
        help="VMs per QueryPerf call (vCenter limits entities x counters per query, "
        "config.vpxd.stats.maxQueryMetrics).",
    ),
    cfg.IntOpt(
        "perf_workers",
        default=2,
        min=1,
        help="QueryPerf calls in flight at once (each on its own connection of the session).",
    ),
    cfg.IntOpt(
        "page_size",
        default=1000,
        min=1,
        help="Objects per property-collector page.",
    ),
    cfg.StrOpt(
        "metadata_prefix",
        default="cotenancy:",
        help="Lines of a VM's annotation that start with this prefix describe its workload: "
        "app_type=, priority= (0-10), security_level=, tenant=, critical=true.",
    ),
]
