"""Options of the ``nova`` driver (group ``[nova]``).

Credentials are never options here: they live in ``clouds.yaml`` (and ``secure.yaml``), where every
OpenStack tool reads them, so they never reach our config files or logs.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "nova"

NOVA_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "cloud",
        help="Name of the cloud in clouds.yaml to use. Empty: $OS_CLOUD, or the OS_* environment variables.",
    ),
    cfg.StrOpt(
        "clouds_file",
        help="Path of a clouds.yaml to read instead of the standard locations "
        "(./clouds.yaml, ~/.config/openstack/, /etc/openstack/).",
    ),
    cfg.StrOpt(
        "region_name",
        help="Region to use when the cloud has several. Empty: the one in clouds.yaml.",
    ),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS certificate verification. Only for test clouds: never in production.",
    ),
    cfg.StrOpt(
        "cacert",
        help="CA bundle to verify the cloud's TLS certificates with (overrides clouds.yaml).",
    ),
    cfg.FloatOpt(
        "mhz_per_vcpu",
        default=2000.0,
        min=1.0,
        help="MHz one vCPU stands for: Nova counts vCPUs, the project counts MHz.",
    ),
    cfg.FloatOpt(
        "action_timeout",
        default=900.0,
        min=1.0,
        help="Seconds a live migration, resize or service change may take before TimedOut.",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=2.0,
        min=0.05,
        help="Seconds between polls of the migrations and servers APIs while waiting.",
    ),
    cfg.StrOpt(
        "block_migration",
        default="auto",
        choices=["auto", "true", "false"],
        help="block_migration argument of live migrations; 'auto' lets Nova choose by storage.",
    ),
    cfg.ListOpt(
        "resize_flavors",
        default=[],
        help="Flavor names resize may choose from. Empty: every flavor the project can see.",
    ),
    cfg.BoolOpt(
        "confirm_resize",
        default=True,
        help="Confirm a resize once Nova reaches VERIFY_RESIZE (otherwise leave it to the "
        "operator or Nova's resize_confirm_window).",
    ),
    cfg.StrOpt(
        "maintenance_reason",
        default="cotenancy maintenance",
        help="disabled_reason recorded on compute services put into maintenance.",
    ),
    cfg.StrOpt(
        "metadata_prefix",
        default="cotenancy:",
        help="Server metadata keys with this prefix describe the workload: app_type, priority "
        "(0-10), security_level, critical (true/false).",
    ),
    cfg.BoolOpt(
        "all_projects",
        default=True,
        help="Inventory the servers of every project (needs an admin role).",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For oslo-config-generator: the ``[nova]`` options."""
    return [(GROUP, list(NOVA_OPTS))]
