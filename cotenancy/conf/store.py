"""Options of the history store ([store])."""

from oslo_config import cfg

GROUP = "store"

OPTS = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the history store, e.g. "
        "postgresql+psycopg://user:password@127.0.0.1/cotenancy. "
        "Unset: SQLite at <state_path>/history.sqlite. A PostgreSQL server on another machine is "
        "reached over TLS verified against the system's CAs (sslmode=verify-full, "
        "sslrootcert=system) unless the URL or PGSSLMODE sets sslmode; give sslrootcert=PATH for "
        "a private CA.",
    ),
    cfg.FloatOpt(
        "raw_retention_hours",
        default=840.0,
        min=0.0,
        help="Raw metric samples older than this are replaced by downsample_step means by the "
        "control loop. Keep it longer than the window 'cotenancy train' learns from (30 days by "
        "default): the predictors learn at the telemetry interval. 0 keeps every raw sample.",
    ),
    cfg.FloatOpt(
        "downsample_step",
        default=3600.0,
        min=1.0,
        help="Seconds per bucket of downsampled metric history.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, list(OPTS))]
