"""Options of the control loop itself ([DEFAULT])."""

import os

from oslo_config import cfg

GROUP = "DEFAULT"

OPTS = [
    cfg.StrOpt("driver", default="simulated", help="Cloud driver (entry point in cotenancy.drivers)."),
    cfg.StrOpt("strategy", default="predictive", help="Strategy (entry point in cotenancy.strategies)."),
    cfg.StrOpt(
        "executor",
        default="driver",
        help="How plans are carried out (entry point in cotenancy.executors).",
    ),
    cfg.StrOpt(
        "datasource",
        default="driver",
        help="Where metrics come from (entry point in cotenancy.datasources).",
    ),
    cfg.IntOpt("interval", default=300, min=1, help="Seconds between control-loop rounds."),
    cfg.IntOpt(
        "history_window",
        default=12,
        min=1,
        help="Number of past intervals of telemetry handed to the strategy each round.",
    ),
    cfg.IntOpt(
        "max_failed_rounds",
        default=5,
        min=1,
        help="Consecutive control-loop rounds that may fail (an error from the cloud, the history "
        "store or the strategy) before the loop stops with the last error. A failed round is "
        "logged and the next one starts one interval later.",
    ),
    cfg.BoolOpt("dry_run", default=False, help="Plan and store plans, but carry nothing out."),
    cfg.StrOpt(
        "on_step_failure",
        default="skip_dependents",
        choices=[
            ("skip_dependents", "skip steps that depend on the failed one, run the rest"),
            ("abort", "stop the plan at the first failure"),
            ("continue", "run every remaining step"),
        ],
        help="What the executor does with the rest of a plan when a step fails.",
    ),
    cfg.FloatOpt("step_timeout", default=600.0, min=1.0, help="Seconds one plan step may take."),
    cfg.StrOpt(
        "state_path",
        default=os.environ.get("COTENANCY_STATE_PATH", "~/.local/share/cotenancy"),
        sample_default="~/.local/share/cotenancy",
        help="Directory for the default SQLite history store and trained models "
        "(default: $COTENANCY_STATE_PATH when set).",
    ),
]


def register(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(OPTS)
