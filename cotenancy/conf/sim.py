"""Options of the simulator and the ``simulate`` command ([simulator])."""

from oslo_config import cfg

GROUP = "simulator"

OPTS = [
    cfg.StrOpt(
        "setup",
        default="default",
        choices=[
            ("default", "modern hosts, every resource contended, interference on"),
            ("cloudsim", "CloudSim 4.0's PlanetLab reference setup, accounting quirks included"),
        ],
        help="How a workload is turned into a cloud.",
    ),
    cfg.IntOpt("synthetic_vms", default=200, min=1, help="VMs of the embedded synthetic workload."),
    cfg.FloatOpt("days", default=1.0, min=0.01, help="Simulated span in days (capped by the trace)."),
    cfg.IntOpt("seed", default=0, help="Seed of the synthetic workload and of the hidden VM traits."),
    cfg.FloatOpt(
        "host_headroom",
        default=1.25,
        min=1.0,
        help="Default setup: hosts provisioned = headroom x hosts needed for all VM sizes (by CPU).",
    ),
    cfg.BoolOpt(
        "interference",
        default=True,
        help="Model slowdown between co-located VMs (shared cache and memory bandwidth).",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, OPTS)]
