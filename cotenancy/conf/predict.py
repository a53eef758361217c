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
    cfg.FloatOpt(
        "anomaly_threshold",
        default=8.0,
        min=1.0,
        help="A sample is anomalous when it exceeds the forecast p95 by this many robust residual "
        "scales (median absolute deviation of the VM's recent residuals).",
    ),
    cfg.FloatOpt(
        "anomaly_min_ratio",
        default=2.0,
        min=1.0,
        help="... and is at least this many times its forecast p95, so tiny idle VMs do not alarm.",
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


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, list(OPTS))]
