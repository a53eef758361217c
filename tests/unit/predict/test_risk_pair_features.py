"""Pair features for interference and placement churn: what they estimate, on hypothetical hosts
too, and that serving builds them from the events it saw."""

from __future__ import annotations

import numpy as np
import pytest
from predict_synthetic import make_state, synthetic_usage

from cotenancy.model import Event, EventKind
from cotenancy.predict import features as feats
from cotenancy.predict.risk import XGBoostRiskModel

COL = {name: i for i, name in enumerate(feats.PAIR_FEATURES)}
SIZE = 2000.0


def _interference_cloud(seed: int = 0, width: int = 12):
    """Six VMs on hosts 0 and 1 (host 2 empty) whose ready share is exactly
    ``sensitivity * load_curve(activity of the other VMs on the host)``."""
    rng = np.random.default_rng(seed)
    host_of = np.array([0, 0, 0, 1, 1, 1])
    sensitivity = np.array([0.4, 0.05, 0.2, 0.6, 0.01, 0.1])
    activity = rng.uniform(0.05, 1.0, (6, width))
    others = np.zeros_like(activity)
    for h in (0, 1):
        on = host_of == h
        others[on] = activity[on].sum(axis=0) - activity[on]
    ready = sensitivity[:, None] * feats.load_curve(others)
    demand = activity * SIZE
    ctx = feats.PairContext(
        cpu=demand * (1 - ready),
        demand=demand,
        ready=ready,
        memory=None,
        vm_cpu_size=np.full(6, SIZE),
        host_of=host_of,
        host_cpu=np.full(3, 8000.0),
        host_memory=np.full(3, 65536.0),
        priority=np.full(6, 5.0),
        app_code=np.zeros(6, np.int64),
        origin=0.0,
        horizon_steps=6,
        vm_memory_size=np.array([613.0, 870.0, 1740.0, 1740.0, 870.0, 613.0]),
    )
    return ctx, sensitivity, activity


def test_sensitivity_is_recovered_from_ready_time_and_neighbour_activity():
    ctx, sensitivity, _ = _interference_cloud()
    np.testing.assert_allclose(ctx.sensitivity, sensitivity, rtol=1e-9)
    x, _ = ctx.features(np.array([[0, 1], [3, 4]]))
    np.testing.assert_allclose(x[:, COL["pair_sensitivity_max"]], [0.4, 0.6], rtol=1e-6)
    np.testing.assert_allclose(x[:, COL["pair_sensitivity_min"]], [0.05, 0.01], rtol=1e-6)


def test_predicted_slowdown_now_is_what_the_victim_suffers_now():
    ctx, sensitivity, activity = _interference_cloud()
    x, _ = ctx.features(np.array([[0, 2]]))
    now = activity[:, -1]
    others_0 = now[[1, 2]].sum()
    others_2 = now[[0, 1]].sum()
    expected = [sensitivity[0] * feats.load_curve(others_0), sensitivity[2] * feats.load_curve(others_2)]
    assert x[0, COL["pair_slowdown_now_max"]] == pytest.approx(max(expected), rel=1e-5)
    assert x[0, COL["pair_slowdown_now_min"]] == pytest.approx(min(expected), rel=1e-5)


def test_a_candidate_host_gives_the_neighbour_load_the_pair_would_meet_there():
    ctx, sensitivity, activity = _interference_cloud()
    now = activity[:, -1]
    # VM 0 (host 0) and VM 4 (host 1) scored together on host 1, where VMs 3, 4, 5 run
    x, placed = ctx.features(np.array([[0, 4]]), hosts=np.array([1]))
    assert placed[0]
    assert x[0, COL["host_activity"]] == pytest.approx(now[[0, 3, 4, 5]].sum(), rel=1e-5)
    victim_load = now[[3, 4, 5]].sum()  # VM 0's neighbours there: everyone else on host 1
    assert x[0, COL["pair_slowdown_now_max"]] == pytest.approx(
        sensitivity[0] * feats.load_curve(victim_load), rel=1e-5
    )
    # on the empty host 2 the two only have each other
    x, _ = ctx.features(np.array([[0, 4]]), hosts=np.array([2]))
    assert x[0, COL["host_activity"]] == pytest.approx(now[[0, 4]].sum(), rel=1e-5)
    assert x[0, COL["pair_slowdown_now_max"]] == pytest.approx(
        max(sensitivity[0] * feats.load_curve(now[4]), sensitivity[4] * feats.load_curve(now[0])), rel=1e-5
    )
    assert x[0, COL["host_vms"]] == 2


def test_smallest_ram_first_selection_features():
    ctx, _, activity = _interference_cloud()
    x, _ = ctx.features(np.array([[0, 1], [1, 2], [3, 4]]))
    assert x[:, COL["pair_has_smallest_ram"]].tolist() == [1.0, 0.0, 0.0]
    assert x[:, COL["pair_ram_min"]].tolist() == [613.0, 870.0, 870.0]
    # VM 0 has the least RAM on host 0: the selection sees the whole host's next-step load;
    # VM 1 comes after VM 0 has gone
    host0 = ctx.lr_next[[0, 1, 2]]
    assert ctx.mmt_load[0] == pytest.approx(host0.sum() / 8000.0)
    assert ctx.mmt_load[1] == pytest.approx(host0[1:].sum() / 8000.0)
    assert ctx.mmt_load[2] == pytest.approx(host0[2] / 8000.0)


def _state():
    usage = synthetic_usage(n_vms=4, days=1, seed=3)
    placement = {"vm-000": "h0", "vm-001": "h0", "vm-002": "h1", "vm-003": "h1"}
    return make_state(usage, 288, window=12, hosts={"h0": 16000.0, "h1": 16000.0}, placement=placement)


def test_migrations_seen_in_rounds_become_churn_features(tmp_path):
    model = XGBoostRiskModel(model_path=tmp_path / "absent.json")
    state = _state()
    last = float(state.telemetry.timestamps[-1])
    state.events = [
        Event(
            timestamp=last - 2 * 300,
            kind=EventKind.MIGRATION,
            vm_ids=("vm-000",),
            host_id="h0",
            details={"from": "h1", "to": "h0"},
        ),
        Event(
            timestamp=last - 20 * 300,
            kind=EventKind.MIGRATION,
            vm_ids=("vm-003",),
            host_id="h1",
            details={"from": "h0", "to": "h1"},
        ),
    ]
    x, _ = model.context(state).features(np.array([[0, 1], [2, 3]]))
    assert x[:, COL["pair_migrations_max"]].tolist() == [1.0, 0.0]  # the second left the last hour
    assert x[:, COL["pair_since_migration_min"]].tolist() == [2.0, 20.0]


def test_serving_builds_the_same_pair_features_as_training():
    """One code path: the features the serving object builds from a round's state (inventory,
    telemetry window, the events it was shown) equal the training rows built from the history."""
    from predict_synthetic import toy_history

    from cotenancy.predict.history import colocated_pairs, context_at

    history = toy_history(steps=200)
    # VM 0 migrates from h0 to h1 during the step before column 150 and VM 4 from h1 to h2 at 120
    moves = [(0, 150, 1), (4, 120, 2)]
    migrations = []
    for vm, col, target in moves:
        source = int(history.host_of[vm, col - 1])
        history.host_of[vm, col:] = target
        migrations.append(
            Event(
                timestamp=float(history.timestamps[col]) - 100.0,
                kind=EventKind.MIGRATION,
                vm_ids=(history.vm_ids[vm],),
                host_id=history.host_ids[target],
                details={"from": history.host_ids[source], "to": history.host_ids[target]},
            )
        )
    col = 160
    pairs = colocated_pairs(history.host_of[:, col])
    want, _ = context_at(history, col, window_steps=12, horizon_steps=6).features(pairs)

    state = _serving_state(history, col, window=12, extra_events=migrations)
    model = XGBoostRiskModel(model_path="/nonexistent/risk.json")
    got, placed = model.context(state).features(pairs)
    assert placed.all()
    assert got[:, COL["pair_migrations_max"]].max() == 1.0  # the moves are in the features
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)


def _serving_state(history, col: int, window: int, extra_events=()):
    """The state a round at column ``col`` of ``history`` would give the serving object: the
    inventory then, the last ``window`` samples and every event seen up to that sample."""
    from cotenancy.model import VM, ClusterState, Host, Inventory, Resources, TelemetryWindow, WorkloadClass

    hosts = {
        h: Host(h, h, Resources(cpu=float(c), memory=65536.0))
        for h, c in zip(history.host_ids, history.host_cpu, strict=True)
    }
    vms = {
        v: VM(
            v,
            v,
            history.host_ids[int(history.host_of[i, col])],
            Resources(cpu=4000.0, memory=0.0),
            workload=WorkloadClass(),
        )
        for i, v in enumerate(history.vm_ids)
    }
    lo = col - window + 1
    telemetry = TelemetryWindow(
        list(history.vm_ids),
        history.timestamps[lo : col + 1].copy(),
        {k: v[:, lo : col + 1].copy() for k, v in history.values.items()},
        history.step_seconds,
    )
    now = float(history.timestamps[col]) + history.step_seconds
    seen = [e for e in history.events if e.timestamp <= history.timestamps[col]] + list(extra_events)
    return ClusterState(now=now, inventory=Inventory(hosts=hosts, vms=vms), telemetry=telemetry, events=seen)


def test_on_one_minute_telemetry_training_counts_past_conflicts_over_the_day_serving_counts():
    """``cotenancy train`` builds its rows with the model's own memory (24 h), in steps of the
    telemetry: at 60 s that is 1440 steps, not the 288 of five-minute telemetry."""
    from predict_synthetic import toy_history

    from cotenancy.predict.history import colocated_pairs

    history = toy_history(steps=700, step=60.0)
    col = 650  # 10.8 h of conflicts behind it: more than 288 steps, less than a day
    model = XGBoostRiskModel(model_path="/nonexistent/risk.json")
    rows = model.training_rows(history)
    want = rows.x[rows.step == col]
    pairs = colocated_pairs(history.host_of[:, col])
    got, _ = model.context(_serving_state(history, col, window=model.window_steps)).features(pairs)
    now = history.timestamps[col]

    def conflicts_since(since: float) -> int:
        return max(
            sum(vm in e.vm_ids and since < e.timestamp <= now for e in history.events)
            for vm in history.vm_ids
        )

    # every conflict of the 10.8 h counts, more than those of the last 288 steps
    assert got[:, COL["vm_conflicts_max"]].max() == conflicts_since(-np.inf) > conflicts_since(now - 288 * 60)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert rows.telemetry == {
        "step_seconds": 60.0,
        "window_steps": 12.0,
        "horizon_steps": 30.0,
        "lookback_steps": 1440.0,
    }
