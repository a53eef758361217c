"""Options of the predictive engine ([predict]): where models live, horizons, anomaly thresholds.

Options of a particular risk model or forecaster plugin live in that plugin's own group
(``risk_xgboost``, ``forecast_default``).
"""

from oslo_config import cfg

GROUP = "predict"

OPTS = [
    cfg.StrOpt(
        "model_dir",
        help="Directory of trained model files. Unset: <state_path>/models.",
    ),
    cfg.StrOpt(
        "risk_model",
        default="xgboost",
        help="Pair-risk model (entry point in cotenancy.predictors.risk).",
    ),
    cfg.StrOpt(
        "forecaster",
        default="default",
        help="Demand forecaster (entry point in cotenancy.predictors.forecast).",
    ),
    cfg.IntOpt(
        "risk_horizon",
        default=1800,
        min=60,
        help="Seconds ahead a pair-risk score looks: probability of a conflict involving both VMs "
        "within this time.",
    ),
    cfg.IntOpt(
        "window_steps",
        default=312,
        min=12,
        help="Telemetry intervals the features look back over (312 = one day plus an hour at 300 s; "
        "shorter windows work but lose the same-time-yesterday features).",
    ),
    cfg.BoolOpt(
        "detect_anomalies",
        default=True,
        help="Every control-loop round, compare each VM's latest sample with the one-step forecast "
        "made without it, log usage far above the forecast (a runaway process, a sudden "
        "exfiltration) as a WARNING and store it as an anomaly event in the history store, where "
        "GET /v1/events?kind=anomaly lists it. Costs one one-step forecast of every VM per round.",
    ),
    cfg.StrOpt(
        "anomaly_reference",
        default="p95",
        choices=[
            ("p95", "the one-step p95 forecast made without the sample"),
            (
                "ceiling",
                "the higher of the one-step p99 forecast and the most the VM used over its "
                "window, so a burst the VM makes every day is not an anomaly",
            ),
        ],
        help="What each VM's latest sample is measured against.",
    ),
    cfg.FloatOpt(
        "anomaly_threshold",
        default=8.0,
        min=1.0,
        help="A sample is anomalous when it exceeds the reference by this many robust scales "
        "(1.4826 x the median absolute change between consecutive samples in the VM's window).",
    ),
    cfg.FloatOpt(
        "anomaly_min_ratio",
        default=2.0,
        min=1.0,
        help="... and is at least this many times the reference, so tiny idle VMs do not alarm.",
    ),
    cfg.IntOpt(
        "anomaly_persistence",
        default=2,
        min=1,
        max=12,
        help="How many latest samples in a row must each be an anomaly, against one forecast made "
        "before all of them: 2 lets a one-interval burst pass and flags what lasts (an "
        "exfiltration, a runaway process) at its second interval; 1 flags at the first interval, "
        "about five times as often on the Bitbrains trace.",
    ),
    cfg.FloatOpt(
        "anomaly_min_share",
        default=0.1,
        min=0.0,
        help="... and exceeds the reference by at least this share of the VM's size for that resource "
        "(where the size is known), so a VM that never sends anything starting to send a trickle "
        "is not an exfiltration (0.1 flagged a third less than 0 at the same recall on held-out "
        "days inside the Bitbrains training period; docs/predictors.md).",
    ),
    cfg.IntOpt(
        "anomaly_group_min_vms",
        default=3,
        min=0,
        help="When at least this many VMs of one workload (tenant and application type) are "
        "flagged in the same interval for the same resource, they are reported as one anomaly "
        "naming them all (a batch job or a rush lifting a whole group is one thing to look at, "
        "not dozens); fewer are reported one by one. 0 or 1 reports every VM on its own.",
    ),
    cfg.MultiStrOpt(
        "hint",
        default=[],
        help="A scheduled event that changes demand, as 'start=ISO8601,end=ISO8601,vms=GLOB,"
        "resource=cpu,factor=1.5' (factor multiplies the forecast while the event lasts). "
        "May be repeated.",
    ),
    cfg.StrOpt(
        "hints_file",
        help="YAML file with a list of hints (keys start, end, vms, resource, factor).",
    ),
]


def telemetry_window_steps(conf: cfg.ConfigOpts) -> int:
    """Intervals of telemetry a strategy or the API is handed: ``[DEFAULT] history_window``, or
    more when the predictors' features look back further (``window_steps``): they must serve from
    the window they were trained on."""
    return max(int(conf.history_window), int(conf.predict.window_steps))


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, list(OPTS))]
