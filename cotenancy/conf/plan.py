"""Options of the CP-SAT planner ([planner]).

Weights are relative: the planner turns every objective term into integers with them, so only
their ratios matter. One unit of each term is documented next to its weight.
"""

from oslo_config import cfg

GROUP = "planner"

OPTS = [
    cfg.FloatOpt(
        "target_utilisation",
        default=0.85,
        min=0.05,
        max=1.0,
        help="Share of a host's capacity that predicted demand (at the planning quantile) may use "
        "before the planner counts the excess as overload risk.",
    ),
    cfg.FloatOpt(
        "pack_utilisation",
        default=0.75,
        min=0.05,
        max=1.0,
        help="Share of a host's capacity that the planner fills up to when it moves VMs (at most "
        "target_utilisation). Predicted demand above it costs overload in the plan, but only a "
        "host above target_utilisation makes its VMs move: the band between is hysteresis, so a "
        "host packed or relieved this round is not touched again for small swings of its forecast.",
    ),
    cfg.FloatOpt(
        "quantile",
        default=0.95,
        min=0.5,
        max=0.999,
        help="Forecast quantile the planner sizes hosts and allocations for.",
    ),
    cfg.FloatOpt(
        "demand_correlation",
        default=0.3,
        min=0.0,
        max=1.0,
        help="How much co-located VMs are assumed to peak together when their forecasts are added "
        "up on a host: 1 adds their quantiles (every VM peaks at once), 0 adds their spreads above "
        "the median in quadrature (independent VMs, statistical multiplexing). Lower packs hosts "
        "denser for the same predicted overload.",
    ),
    cfg.IntOpt(
        "horizon_steps",
        default=3,
        min=1,
        help="Intervals ahead the forecast covers; the planner plans for the worst of them.",
    ),
    cfg.FloatOpt(
        "scale_up_threshold",
        default=0.10,
        min=0.0,
        help="Raise an allocation when predicted demand exceeds it by more than this fraction.",
    ),
    cfg.FloatOpt(
        "scale_down_threshold",
        default=0.30,
        min=0.0,
        max=1.0,
        help="Lower an allocation when predicted demand stays below (1 - this) of it. Keep it larger "
        "than scale_up_threshold: the band between them is the hysteresis that stops flapping.",
    ),
    cfg.IntOpt(
        "max_allocation_steps",
        default=20,
        min=0,
        help="Most set_allocation changes per round (0: no limit). The most useful go first: "
        "raises that cover predicted demand, then the lowerings that free the most; the rest "
        "wait for a later round, so a bursty cloud does not get a storm of small changes.",
    ),
    cfg.IntOpt(
        "scale_down_rounds",
        default=6,
        min=1,
        help="Rounds predicted demand must stay low before an allocation is lowered (the "
        "predictive strategy holds the highest forecast of this many rounds for lowering), so a "
        "bursty VM is not lowered and raised again every round.",
    ),
    cfg.FloatOpt(
        "headroom",
        default=0.10,
        min=0.0,
        help="New allocations are predicted demand times (1 + headroom).",
    ),
    cfg.FloatOpt(
        "critical_headroom",
        default=0.30,
        min=0.0,
        help="Headroom pre-allocated for VMs marked critical instead of headroom.",
    ),
    cfg.ListOpt(
        "hard_resources",
        default=["memory", "gpu"],
        help="Resources a host cannot overcommit: a VM always holds its whole size of them. "
        "Other resources are held by the VM's reservation (the allocation the planner sets).",
    ),
    cfg.BoolOpt(
        "manage_allocations",
        default=True,
        help="Set reservations of compressible resources from forecasts (set_allocation steps).",
    ),
    cfg.BoolOpt(
        "allow_resize",
        default=True,
        help="Grow a VM's size when its predicted demand exceeds the size by scale_up_threshold.",
    ),
    cfg.IntOpt("max_migrations", default=10, min=0, help="Migration budget per planning round."),
    cfg.IntOpt(
        "max_migrations_per_host",
        default=2,
        min=1,
        help="Migrations per round that may leave or enter one host (a budget of what a round "
        "starts: moves in flight are not counted; max_parallel_migrations_per_host limits concurrency).",
    ),
    cfg.IntOpt(
        "max_parallel_migrations",
        default=4,
        min=1,
        help="Migrations that may run at the same time in the whole cloud (encoded in step order), "
        "live migrations already in flight included.",
    ),
    cfg.IntOpt(
        "max_parallel_migrations_per_host",
        default=1,
        min=1,
        help="Migrations touching one host that may run at the same time, live migrations already in "
        "flight to or from it included: a host whose lanes those all hold gets no new migration that round.",
    ),
    cfg.FloatOpt(
        "dirty_rate",
        default=0.02,
        min=0.0,
        help="Share of a VM's memory dirtied per second during live migration (pre-copy model).",
    ),
    cfg.FloatOpt(
        "link_bandwidth",
        default=125.0,
        min=0.1,
        help="MiB/s available to one live migration (1 Gbit/s is about 119 MiB/s).",
    ),
    cfg.IntOpt(
        "precopy_rounds",
        default=5,
        min=0,
        help="Pre-copy rounds before stop-and-copy in the migration time model.",
    ),
    cfg.FloatOpt(
        "time_limit",
        default=0.5,
        min=0.01,
        help="Seconds CP-SAT may search; the best solution found by then is used.",
    ),
    cfg.FloatOpt(
        "deterministic_time",
        default=0.0,
        min=0.0,
        help="When above 0, CP-SAT also stops after this much deterministic time (its own "
        "measure of work, independent of machine load) and searches with one worker, so the same "
        "inputs give the same plan on a busy or an idle machine; time_limit still caps the wall "
        "time. 0: wall time only, with the configured workers.",
    ),
    cfg.IntOpt(
        "workers",
        default=2,
        min=1,
        max=2,
        help="CP-SAT search workers (at most 2: control nodes are shared).",
    ),
    cfg.IntOpt(
        "max_candidate_vms",
        default=120,
        min=1,
        help="At most this many VMs may move in one model; keeps the model small.",
    ),
    cfg.IntOpt(
        "destination_pool",
        default=40,
        min=1,
        help="Hosts with the most room offered as destinations in one round.",
    ),
    cfg.IntOpt(
        "destinations_per_vm",
        default=12,
        min=1,
        help="Destinations each candidate VM may choose from (besides staying).",
    ),
    cfg.IntOpt(
        "underloaded_hosts",
        default=4,
        min=0,
        help="Least-loaded hosts whose VMs are offered for consolidation each round.",
    ),
    cfg.FloatOpt(
        "underload_threshold",
        default=0.25,
        min=0.0,
        max=1.0,
        help="A host whose predicted CPU use is below this share of capacity may be emptied.",
    ),
    cfg.FloatOpt(
        "risk_threshold",
        default=0.5,
        min=0.0,
        max=1.0,
        help="Pair conflict probability above which the planner proactively separates the pair.",
    ),
    cfg.FloatOpt(
        "min_pair_risk",
        default=0.05,
        min=0.0,
        max=1.0,
        help="Pair risks below this are left out of the model (they would only slow it down).",
    ),
    cfg.FloatOpt(
        "weight_risk", default=100.0, min=0.0, help="Cost of one unit of pair conflict probability."
    ),
    cfg.FloatOpt(
        "weight_interference",
        default=20.0,
        min=0.0,
        help="Cost of one VM expected to be slowed past slowdown_limit by its neighbours' summed "
        "activity (shared cache and memory bandwidth, from the risk model's per-VM estimates); "
        "0 leaves neighbourhood interference out.",
    ),
    cfg.FloatOpt(
        "slowdown_limit",
        default=0.1,
        min=0.001,
        max=1.0,
        help="Slowdown from neighbours at which a VM counts as in conflict: the share of "
        "performance lost at which your monitoring reports a degradation.",
    ),
    cfg.IntOpt(
        "interference_candidates",
        default=20,
        min=0,
        help="VMs predicted to be slowed past slowdown_limit that are offered a move each round "
        "(the most slowed first).",
    ),
    cfg.BoolOpt(
        "interference_offer_neighbours",
        default=False,
        help="Also offer a move to the neighbour pressing hardest on each of those VMs: moving "
        "one busy, cache-hungry VM away can relieve every sensitive VM on its host at once.",
    ),
    cfg.FloatOpt(
        "weight_overload",
        default=500.0,
        min=0.0,
        help="Cost of predicted demand above target utilisation, per whole host capacity.",
    ),
    cfg.FloatOpt(
        "weight_migration",
        default=1.0,
        min=0.0,
        help="Cost of one second of live migration (scaled by the VM's CPU demand share).",
    ),
    cfg.FloatOpt("migration_fixed_cost", default=5.0, min=0.0, help="Cost of any migration, on top."),
    cfg.FloatOpt(
        "weight_energy",
        default=0.5,
        min=0.0,
        help="Cost of one watt of host power over the planning horizon.",
    ),
    cfg.FloatOpt(
        "weight_idle_allocation",
        default=5.0,
        min=0.0,
        help="Cost of allocation held but not predicted to be used, per whole host capacity.",
    ),
    cfg.FloatOpt(
        "weight_maintenance",
        default=1000.0,
        min=0.0,
        help="Cost of leaving one VM on a host in maintenance.",
    ),
    cfg.FloatOpt(
        "weight_soft_rule",
        default=50.0,
        min=0.0,
        help="Cost of breaking a soft anti-affinity rule for one pair.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, OPTS)]
