"""The control loop with the nova driver against the running Nova: it discovers servers and
hypervisors, plans with the project's CP-SAT planner, live-migrates and resizes, and Nova's API
then shows the servers on their new hosts and flavors. Failures become typed errors and recorded
step statuses."""

from __future__ import annotations

import pytest

from cotenancy.conf import make_conf
from cotenancy.engine.loop import ControlLoop
from cotenancy.loading import DRIVERS, STRATEGIES, load_plugin
from cotenancy.model import ActionKind, ActionPlan, ClusterState, Resource, StepStatus
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings
from cotenancy.store import HistoryStore
from cotenancy.strategies.base import Strategy


class PlanOnLatestTelemetry(Strategy):
    """The project's planner fed the latest measured demand as its forecast, so the test depends
    on the driver's telemetry (Nova diagnostics), not on a trained model. Nova has no per-VM
    shares to set, so the planner only moves and resizes."""

    name = "plan-on-latest"

    def plan(self, state: ClusterState) -> ActionPlan:
        vm_ids = list(state.inventory.vms)
        rows = [state.telemetry.row(v) for v in vm_ids]
        high = {Resource.CPU: state.telemetry.latest("cpu")[rows]}
        forecast = DemandForecast(high=high, mid=high, description="latest diagnostics")
        settings = PlannerSettings(underloaded_hosts=0, manage_allocations=False, weight_energy=0.0)
        return Planner(settings).plan(
            state.inventory, forecast, migrating=state.migrating, strategy=self.name
        )


class DeleteAfterPlanning(PlanOnLatestTelemetry):
    """Plans, then a user deletes the server the plan wants to resize: the race the executor must
    survive between planning and acting."""

    def __init__(self, conf, admin) -> None:
        super().__init__(conf)
        self.admin = admin

    def plan(self, state: ClusterState) -> ActionPlan:
        plan = super().plan(state)
        for action in plan.actions:
            if action.kind is ActionKind.RESIZE:
                self.admin.compute.delete_server(action.vm_id)
                self.admin.compute.wait_for_delete(
                    self.admin.compute.get_server(action.vm_id), wait=30, interval=0.1
                )
        return plan


@pytest.fixture
def loop_conf(nova_overrides):
    """The whole project's configuration, as the ``cotenancy`` command builds it."""
    conf = make_conf([])
    for name, value in nova_overrides.items():
        conf.set_override(name, value, group="nova")
    return conf


@pytest.fixture
def loop_driver(loop_conf, nova):
    nova.clear_faults()
    driver = load_plugin(DRIVERS, "nova", loop_conf)
    try:
        yield driver
    finally:
        driver.close()
        nova.clear_faults()


@pytest.fixture
def host1_back_in_service(admin):
    yield
    for service in admin.compute.services(binary="nova-compute", host="host1"):
        admin.compute.enable_service(service)


def busy(nova, server_id: str, cores: float, *, uptime: float) -> None:
    """Diagnostics counters of a guest that has kept ``cores`` vCPUs busy for ``uptime`` s."""
    nova.set_diagnostics(server_id, uptime=uptime, cpu_time_ns=cores * uptime * 1e9, memory_used_mib=256)


def prime_then_advance(driver, nova, load: dict[str, float]) -> None:
    """Give the driver a first diagnostics reading, then let 60 s of guest time pass: the loop's
    own round then sees CPU rates, as a loop that has been running for a while would."""
    for server_id, cores in load.items():
        busy(nova, server_id, cores, uptime=1000)
    now = driver.now()
    driver.get_metrics(now - 60, now + 60, list(load))
    for server_id, cores in load.items():
        busy(nova, server_id, cores, uptime=1060)


def test_the_loop_discovers_plans_live_migrates_and_resizes(
    loop_conf, loop_driver, admin, make_server, nova, tmp_path, host1_back_in_service
):
    api = make_server("api", "host1")
    etl = make_server("etl", "host1")
    db = make_server("db", "host2")
    prime_then_advance(loop_driver, nova, {api.id: 0.2, etl.id: 0.3, db.id: 1.8})
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    loop = ControlLoop(loop_conf, driver=loop_driver, strategy=PlanOnLatestTelemetry(loop_conf), store=store)

    loop_driver.set_host_maintenance("host1", True)
    result = loop.run_once()

    plan = result.plan
    assert result.samples > 0 and result.executed
    assert all(a.status is StepStatus.SUCCEEDED for a in plan.actions), [
        (a.kind, a.status, a.message) for a in plan.actions
    ]
    moved = {a.vm_id: a.target_host_id for a in plan.migrations}
    assert set(moved) == {api.id, etl.id}, "host1 in maintenance was drained"
    for server_id, target in moved.items():
        assert target != "host1"
        assert admin.compute.get_server(server_id).compute_host == target

    resizes = [a for a in plan.actions if a.kind is ActionKind.RESIZE]
    assert [a.vm_id for a in resizes] == [db.id]
    assert resizes[0].size.cpu >= 1.8 * loop_driver.options.mhz_per_vcpu
    resized = admin.compute.get_server(db.id)
    # 1.8 busy vCPUs (plus headroom) need 2 vCPUs: m1.medium is the smallest such flavor.
    assert (resized.flavor["original_name"], resized.flavor["vcpus"], resized.status) == (
        "m1.medium",
        2,
        "ACTIVE",
    )

    stored = store.get_plan(plan.id)
    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * len(plan.actions)
    assert store.vms(), "the loop recorded the inventory it discovered"


def test_the_predictive_strategy_drives_nova_through_the_loop(
    loop_conf, loop_driver, admin, make_server, nova, tmp_path, host1_back_in_service
):
    """The shipped ``predictive`` strategy, loaded by name, with its cold-start forecasts (no
    trained model in an empty model directory) and no pair-risk model."""
    loop_conf.set_override("risk_model", "", group="strategy_predictive")
    loop_conf.set_override("model_dir", str(tmp_path / "models"), group="predict")
    loop_conf.set_override("manage_allocations", False, group="planner")
    loop_conf.set_override("underloaded_hosts", 0, group="planner")
    web = make_server("web", "host1")
    batch = make_server("batch", "host3")
    prime_then_advance(loop_driver, nova, {web.id: 0.2, batch.id: 1.8})
    strategy = load_plugin(STRATEGIES, "predictive", loop_conf)
    loop = ControlLoop(loop_conf, driver=loop_driver, strategy=strategy)

    loop_driver.set_host_maintenance("host1", True)
    result = loop.run_once()

    plan = result.plan
    assert plan.strategy == "predictive"
    assert all(a.status is StepStatus.SUCCEEDED for a in plan.actions), [
        (a.kind, a.status, a.message) for a in plan.actions
    ]
    [move] = [a for a in plan.migrations if a.vm_id == web.id]
    assert move.target_host_id != "host1"
    assert admin.compute.get_server(web.id).compute_host == move.target_host_id
    [grow] = [a for a in plan.actions if a.kind is ActionKind.RESIZE and a.vm_id == batch.id]
    assert grow.size.cpu > loop_driver.options.mhz_per_vcpu
    assert admin.compute.get_server(batch.id).flavor["vcpus"] >= 2


def test_a_migration_nova_fails_is_a_failed_step_on_record(
    loop_conf, loop_driver, admin, make_server, nova, tmp_path, host1_back_in_service
):
    lonely = make_server("lonely", "host1")
    prime_then_advance(loop_driver, nova, {lonely.id: 0.1})
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    loop = ControlLoop(loop_conf, driver=loop_driver, strategy=PlanOnLatestTelemetry(loop_conf), store=store)
    loop_driver.set_host_maintenance("host1", True)
    nova.fail_next_live_migrations(1)

    result = loop.run_once()

    [step] = result.plan.migrations
    assert step.status is StepStatus.FAILED
    assert step.message.startswith("ActionFailed:")
    assert admin.compute.get_server(lonely.id).compute_host == "host1"
    stored = store.get_plan(result.plan.id).actions[step.index]
    assert (stored.status, stored.message) == (StepStatus.FAILED, step.message)


def test_a_server_deleted_between_planning_and_acting_is_a_failed_step_on_record(
    loop_conf, loop_driver, admin, make_server, nova, tmp_path
):
    doomed = make_server("doomed", "host3")
    prime_then_advance(loop_driver, nova, {doomed.id: 1.8})
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    loop = ControlLoop(
        loop_conf, driver=loop_driver, strategy=DeleteAfterPlanning(loop_conf, admin), store=store
    )

    result = loop.run_once()

    [step] = [a for a in result.plan.actions if a.vm_id == doomed.id]
    assert (step.kind, step.status) == (ActionKind.RESIZE, StepStatus.FAILED)
    assert step.message.startswith("not found:")
    stored = store.get_plan(result.plan.id).actions[step.index]
    assert (stored.status, stored.message) == (StepStatus.FAILED, step.message)
