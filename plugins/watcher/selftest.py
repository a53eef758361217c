"""Drive Watcher's own loaders on the cotenancy plugin and report in JSON.

Watcher cannot be imported next to Nova or in the project's main environment, so the test-suite
runs this module with the Watcher venv's interpreter::

    .cache/venvs/watcher/bin/python -m cotenancy.plugins.watcher.selftest < request.json

The request names a ``command``:

``loaders``
    what Watcher's goal and strategy loaders list, and what they load for ``cotenancy``.
``run``
    load a strategy by name through ``DefaultStrategyLoader``, give it a compute model
    (``scenario``) and metrics (``load``), execute it, and check each action of the solution
    against the schema of the Watcher action plugin that would carry it out.
``translate``
    translate a hand-written cotenancy plan on a scenario into Watcher actions and check them
    the same way (the translation without any planner).
``simulate``
    rounds of a strategy on a simulated PlanetLab cloud (CloudSim's reference setup, scaled),
    each round's actions checked and then carried out on the cloud.
``readings``
    what a Watcher strategy reads through the datasource (instance and host CPU over ``period``)
    next to the samples behind it, on the simulated cloud or on a scenario.

Scenarios: ``{"faker": "generate_scenario_1"}`` (Watcher's ``faker_cluster_state`` fixtures),
``{"faker_metrics": "generate_scenario_3"}`` (``faker_cluster_and_metrics``), either with
``"uuids": true`` to give ``INSTANCE_n`` instances UUIDs; ``{"xml": "<ModelRoot>..."}``; or
``{"inventory": {...}}`` (a cotenancy inventory, through :func:`compute_model_from_inventory`).
Loads: per-instance arrays (``instances``), constants (``defaults``), or Watcher's own fixture
metrics (``"fixture_metrics": true``).
"""

# ruff: noqa: E402  (Watcher's fixture module must be imported before any other Watcher module)
from __future__ import annotations

import contextlib
import json
import sys
import traceback
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import sqlalchemy as sa
from oslo_config import cfg
from watcher.tests.unit.decision_engine.model import faker_cluster_and_metrics, faker_cluster_state

cfg.CONF([], project="watcher")

from watcher.applier.loading import default as applier_loading
from watcher.common import utils
from watcher.decision_engine.loading import default as de_loading
from watcher.decision_engine.model import model_root

from cotenancy.model import (
    VM,
    Action,
    ActionKind,
    ActionPlan,
    Allocation,
    Host,
    Inventory,
    Resources,
    WorkloadClass,
)
from cotenancy.plugins.watcher import cloud_model, datasource, translate


def with_uuids(xml: bytes) -> tuple[bytes, dict[str, str]]:
    """Watcher's metric fixtures name instances ``INSTANCE_n``, which Watcher's own ``migrate``
    schema rejects; give them stable UUIDs (and keep the old id as the name) so actions on them
    can be checked against the real schemas."""
    root = ElementTree.fromstring(xml)
    renamed = {}
    for element in root.iter("Instance"):
        old = element.get("uuid", "")
        new = cloud_model.watcher_uuid("vm", old)
        if new != old:
            element.set("uuid", new)
            element.set("name", element.get("name") or old)
            renamed[new] = old
    return ElementTree.tostring(root), renamed


def scenario_model(spec: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """A Watcher compute model, and the instance UUID -> original id map where ids were changed."""
    renamed: dict[str, str] = {}
    if "faker" in spec or "faker_metrics" in spec:
        fixture = faker_cluster_state if "faker" in spec else faker_cluster_and_metrics
        collector = fixture.FakerModelCollector()

        def load_model(filename: str) -> Any:
            xml = collector.load_data(filename)
            if spec.get("uuids"):
                xml, found = with_uuids(xml)
                renamed.update(found)
            return model_root.ModelRoot.from_xml(xml)

        collector.load_model = load_model
        return getattr(collector, spec.get("faker") or spec["faker_metrics"])(), renamed
    if "xml" in spec:
        return model_root.ModelRoot.from_xml(spec["xml"]), renamed
    if "inventory" in spec:
        view = cloud_model.compute_model_from_inventory(
            inventory_from_json(spec["inventory"]), float(spec.get("mhz_per_vcpu", 100.0))
        )
        return view.model, view.vm_by_uuid
    raise ValueError(f"unknown scenario {sorted(spec)}")


def inventory_from_json(data: dict[str, Any]) -> Inventory:
    """``{"hosts": [{"id", "capacity": {...}}], "vms": [{"id", "host_id", "size": {...}}]}``; a VM
    may add ``name``, ``vcpus``, ``tenant`` and ``app_type``."""
    inventory = Inventory()
    for h in data.get("hosts", []):
        inventory.hosts[h["id"]] = Host(
            id=h["id"],
            name=h.get("name", h["id"]),
            capacity=Resources.from_dict(h["capacity"]),
            maintenance=bool(h.get("maintenance", False)),
        )
    for v in data.get("vms", []):
        inventory.vms[v["id"]] = VM(
            id=v["id"],
            name=v.get("name", v["id"]),
            host_id=v.get("host_id"),
            size=Resources.from_dict(v["size"]),
            vcpus=int(v.get("vcpus", 1)),
            tenant=v.get("tenant", "default"),
            workload=WorkloadClass(app_type=v.get("app_type", "general")),
        )
    return inventory


def check_action(action_type: str, input_parameters: dict[str, Any]) -> dict[str, Any]:
    """Load the Watcher action plugin and let it validate the parameters, as the applier does."""
    loaded = applier_loading.DefaultActionLoader().load(name=action_type, osc=None)
    loaded.input_parameters = input_parameters
    try:
        loaded.validate_parameters()
    except Exception as exc:  # jsonschema's ValidationError, reported rather than raised
        return {
            "action_type": action_type,
            "input_parameters": input_parameters,
            "valid": False,
            "error": str(exc),
        }
    return {"action_type": action_type, "input_parameters": input_parameters, "valid": True, "error": ""}


def metric_source(model: Any, load: dict[str, Any], uuid_of: dict[str, str]) -> datasource.ArraySource:
    """Per-instance series of the request; keys may be Watcher UUIDs or cotenancy VM ids."""
    instances = {uuid_of.get(k, k): v for k, v in load.get("instances", {}).items()}
    if load.get("fixture_metrics"):
        steps = int(load.get("steps", 12))
        fixture = faker_cluster_and_metrics.FakeGnocchiMetrics
        for original, watcher_id in uuid_of.items():
            named = SimpleNamespace(uuid=original)
            instances.setdefault(
                watcher_id,
                {
                    "instance_cpu_usage": [fixture.get_instance_cpu_util(named, 0, "mean", 0)] * steps,
                    "instance_ram_usage": [fixture.get_instance_ram_util(named, 0, "mean", 0)] * steps,
                },
            )
    return datasource.ArraySource(
        model,
        now=float(load.get("now", 1_767_225_600.0)),
        step=float(load.get("step", 300)),
        instances=instances,
        defaults=load.get("defaults", {"instance_cpu_usage": 10.0, "instance_ram_usage": 1.0}),
    )


def command_loaders(_: dict[str, Any]) -> dict[str, Any]:
    goals = de_loading.DefaultGoalLoader()
    strategies = de_loading.DefaultStrategyLoader()
    goal = goals.load("cotenancy")
    strategy = strategies.load("cotenancy_predictive")
    return {
        "goals": sorted(goals.list_available()),
        "strategies": sorted(strategies.list_available()),
        "goal": {
            "name": goal.name,
            "display_name": goal.display_name,
            "indicators": [i.name for i in goal.efficacy_specification.indicators_specs],
            "indicator_schema": goal.efficacy_specification.schema,
        },
        "strategy": {
            "name": strategy.name,
            "goal": strategy.goal.name,
            "schema": strategy.get_schema(),
            "datasource_metrics": list(strategy.DATASOURCE_METRICS),
            "class": f"{type(strategy).__module__}.{type(strategy).__name__}",
        },
    }


def command_run(request: dict[str, Any]) -> dict[str, Any]:
    """One audit, or ``audits`` of them in this process as a decision engine runs them (each
    with a strategy loaded anew); ``empty_store_between_audits`` drops every table of the
    configured history store before each audit after the first (a database replaced by an empty
    one). The answer is the last audit's, with the database connections the audits opened."""
    connections: list[object] = []

    def connected(dbapi_connection: object, _record: object) -> None:
        connections.append(dbapi_connection)

    sa.event.listen(sa.engine.Engine, "connect", connected)
    try:
        for audit in range(int(request.get("audits", 1))):
            if audit and request.get("empty_store_between_audits"):
                _drop_every_table(request["cotenancy_config_file"])
            result = _audit(request)
    finally:
        sa.event.remove(sa.engine.Engine, "connect", connected)
    return {**result, "database_connections": len(connections)}


def _drop_every_table(config_file: str) -> None:
    """Empty the SQLite history store ``config_file`` names, through sqlite3 (its connections
    are not the strategy's)."""
    import sqlite3

    from cotenancy.conf import make_conf

    url = sa.engine.make_url(make_conf([], config_files=[config_file]).store.connection)
    with contextlib.closing(sqlite3.connect(url.database)) as db:
        db.execute("PRAGMA foreign_keys=OFF")
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            db.execute(f'DROP TABLE "{table}"')
        db.commit()


def _audit(request: dict[str, Any]) -> dict[str, Any]:
    model, vm_by_uuid = scenario_model(request["scenario"])
    uuid_of = {v: u for u, v in vm_by_uuid.items()}
    strategy = de_loading.DefaultStrategyLoader().load(request.get("strategy", "cotenancy_predictive"))
    if "cotenancy_config_file" in request:
        strategy.config["cotenancy_config_file"] = request["cotenancy_config_file"]
    strategy._compute_model = model
    # Nova's migration records as the request gives them (no Nova here)
    strategy.migrations_in_flight = lambda: [_migration(m, uuid_of) for m in request.get("migrations", [])]
    strategy._datasource_backend = datasource.CotenancyDatasource(
        metric_source(model, request.get("load", {}), uuid_of)
    )
    params = utils.Struct(request.get("input_parameters", {}))
    utils.StrictDefaultValidatingDraft4Validator(strategy.get_schema()).validate(params)
    strategy.input_parameters = params
    solution = strategy.execute()
    result: dict[str, Any] = {
        "strategy": strategy.name,
        "goal": strategy.goal.name,
        "input_parameters": dict(params),
        "actions": [check_action(a["action_type"], a["input_parameters"]) for a in solution.actions],
        "efficacy_indicators": dict(solution.efficacy._indicators_mapping),
        "global_efficacy": [dict(i) for i in solution.global_efficacy],
        "instances": {
            i.uuid: n.hostname
            for n in model.get_all_compute_nodes().values()
            for i in model.get_node_instances(n)
        },
    }
    translation = getattr(strategy, "last_translation", None)
    if translation is not None:
        result["dropped"] = list(translation.dropped)
        result["telemetry_steps"] = len(strategy.last_state.telemetry.timestamps)
        result["anomalies"] = [
            {"vm_ids": list(e.vm_ids), "host_id": e.host_id, "resource": e.resource, "message": e.message}
            for e in strategy.last_anomalies
        ]
        plan = strategy.last_plan
        result["cotenancy_plan"] = [
            {"kind": a.kind.value, "vm_id": a.vm_id, "target_host_id": a.target_host_id, "host_id": a.host_id}
            for a in plan.actions
        ]
    return result


def _migration(record: dict[str, Any], uuid_of: dict[str, str]) -> dict[str, Any]:
    """A Nova migration record of the request, its VM named by the scenario's id."""
    vm = str(record["instance_uuid"])
    return dict(record, instance_uuid=uuid_of.get(vm, vm))


def command_translate(request: dict[str, Any]) -> dict[str, Any]:
    model, vm_by_uuid = scenario_model(request["scenario"])
    uuid_of = {v: u for u, v in vm_by_uuid.items()}
    scale = translate.UnitScale(mhz_per_vcpu=float(request.get("mhz_per_vcpu", 2000.0)))
    inventory = translate.inventory_from_compute_model(model, scale)
    translate.apply_migrations_in_flight(
        inventory, [_migration(m, uuid_of) for m in request.get("migrations", [])]
    )
    plan = ActionPlan(strategy="hand-written")
    for step in request["plan"]:
        kind = ActionKind(step["kind"])
        fields: dict[str, Any] = {
            k: v
            for k, v in step.items()
            if k in {"vm_id", "target_host_id", "host_id", "maintenance", "reason"}
        }
        if "size" in step:
            fields["size"] = Resources.from_dict(step["size"])
        if kind is ActionKind.SET_ALLOCATION:
            fields["allocation"] = Allocation(shares=2000)
        plan.actions.append(Action(index=len(plan.actions), kind=kind, **fields))
    translation = translate.actions_from_plan(
        plan,
        inventory,
        flavors=[translate.Flavor.from_dict(f) for f in request.get("flavors", [])],
        allow_resize=request.get("allow_resize", True),
        allow_maintenance=request.get("allow_maintenance", True),
    )
    checked = []
    for action in translation.actions:
        params = dict(action.input_parameters, resource_id=action.resource_id)
        checked.append(check_action(action.action_type, params))
    return {
        "inventory": {
            "hosts": {
                h.id: {"name": h.name, "capacity": h.capacity.as_dict(), "maintenance": h.maintenance}
                for h in inventory.hosts.values()
            },
            "vms": {
                v.id: {
                    "host_id": v.host_id,
                    "size": v.size.as_dict(),
                    "movable": v.attributes["movable"],
                    "state": v.state.value,
                    "migration_target": v.migration_target,
                }
                for v in inventory.vms.values()
            },
        },
        "actions": checked,
        "dropped": translation.dropped,
    }


def command_simulate(request: dict[str, Any]) -> dict[str, Any]:
    """Rounds of a strategy on a simulated PlanetLab cloud (CloudSim reference setup, scaled)."""
    from pathlib import Path

    from cotenancy.plugins.watcher import simulation

    driver = simulation.reference_cloud(
        Path(request["planetlab_day"]), vms=int(request.get("vms", 30)), seed=int(request.get("seed", 0))
    )
    cloud = driver.cloud
    driver.wait(float(request.get("warmup_rounds", 0)) * cloud.step_seconds)
    params = dict(request.get("input_parameters", {}))
    if request.get("strategy") == "cotenancy_predictive":
        params.setdefault("mhz_per_vcpu", simulation.SIM_MHZ_PER_VCPU)
        params.setdefault(
            "flavors",
            [
                {"name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk}
                for f in simulation.sim_flavors(driver)
            ],
        )
    runner = simulation.WatcherOnSimulator(request["strategy"], driver, params)
    rounds = []
    for _ in range(int(request.get("rounds", 3))):
        result = runner.run_round()
        rounds.append(
            {
                "actions": [check_action(a["action_type"], a["input_parameters"]) for a in result.actions],
                "applied": result.applied,
                "failed": result.failed,
                "error": result.error,
            }
        )
        driver.wait(cloud.step_seconds)
    return {"vms": cloud.n_vms, "hosts": cloud.n_hosts, "rounds": rounds, "metrics": cloud.metrics()}


def command_readings(request: dict[str, Any]) -> dict[str, Any]:
    """What Watcher's strategies read through the datasource, next to the samples it serves.

    With ``planetlab_day``: the simulated cloud after ``warmup_rounds``; per instance, its newest
    CPU sample and what a ``period``-second mean returns; per host, ``host_cpu_usage`` and the
    vCPU-weighted sum of its instances' newest samples. With ``scenario``: the array-backed source
    on a Watcher fixture, per host ``host_cpu_usage`` (a host without instances included).
    """
    period = int(request.get("period", 300))
    if "planetlab_day" in request:
        from pathlib import Path

        from cotenancy.plugins.watcher import cloud_model, simulation

        driver = simulation.reference_cloud(Path(request["planetlab_day"]), vms=int(request.get("vms", 20)))
        driver.wait(float(request.get("warmup_rounds", 3)) * driver.cloud.step_seconds)
        view = cloud_model.compute_model_from_inventory(driver.get_inventory(), simulation.SIM_MHZ_PER_VCPU)
        source = simulation.SimulatorSource(view, driver, simulation.HISTORY_SECONDS)
        model = view.model
        newest = {u: float(series[-1]) for u, series in source.cpu.items()}
    else:
        model, vm_by_uuid = scenario_model(request["scenario"])
        source = metric_source(model, request.get("load", {}), {v: u for u, v in vm_by_uuid.items()})
        newest = {}
    backend = datasource.CotenancyDatasource(source)
    instances = {
        u: {
            "newest": newest.get(u),
            "mean": backend.statistic_aggregation(i, "instance", "instance_cpu_usage", period, "mean", 300),
        }
        for u, i in model.get_all_instances().items()
    }
    hosts = {}
    for node in model.get_all_compute_nodes().values():
        members = model.get_node_instances(node)
        hosts[node.hostname] = {
            "instances": len(members),
            "host_cpu_usage": backend.statistic_aggregation(
                node, "compute_node", "host_cpu_usage", period, "mean", 300
            ),
            "sum_of_newest": sum(newest.get(i.uuid, 0.0) * i.vcpus / node.vcpus for i in members),
        }
    return {"instances": instances, "hosts": hosts}


COMMANDS = {
    "loaders": command_loaders,
    "readings": command_readings,
    "run": command_run,
    "translate": command_translate,
    "simulate": command_simulate,
}


def main() -> int:
    request = json.load(sys.stdin)
    try:
        result = COMMANDS[request["command"]](request)
    except Exception as exc:
        json.dump({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}, sys.stdout)
        return 1
    json.dump(result, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
