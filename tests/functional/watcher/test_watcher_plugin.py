"""The Watcher plugin as Watcher itself sees it: its loaders, its compute model fixtures, its
action schemas. Every request runs in the real Watcher 17 venv (see conftest)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from cotenancy.model import EventKind
from cotenancy.store import HistoryStore
from cotenancy.store.requests import RequestKind, RequestStore

#: Watcher's faker_cluster_state scenario 1: 5 nodes of 40 vCPUs, 8 placed instances of 10-12 vCPUs
SCENARIO_1 = {"faker": "generate_scenario_1"}
INSTANCE_0 = "d000ef1f-dc19-4982-9383-087498bfde03"
INSTANCE_2 = "d020ef1f-dc19-4982-9383-087498bfde03"
#: the three instances scenario 1 places on Node_2
INSTANCE_3, INSTANCE_4, INSTANCE_5 = (f"d0{i}0ef1f-dc19-4982-9383-087498bfde03" for i in (3, 4, 5))
FLAVORS = [
    {"name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20},
    {"name": "m1.xlarge", "vcpus": 20, "ram": 4096, "disk": 40},
    {"name": "m1.huge", "vcpus": 40, "ram": 8192, "disk": 80},
]


def test_watcher_loaders_list_and_load_the_goal_and_the_strategy(watcher):
    answer = watcher({"command": "loaders"})

    assert "cotenancy" in answer["goals"]
    assert "cotenancy_predictive" in answer["strategies"]
    assert answer["strategy"]["class"] == "cotenancy.plugins.watcher.strategy.CotenancyPredictiveStrategy"
    assert answer["strategy"]["goal"] == "cotenancy"
    assert answer["goal"]["indicators"] == [
        "conflicts_predicted",
        "conflicts_avoided",
        "instance_migrations_count",
        "instances_resized_count",
    ]
    assert set(answer["strategy"]["datasource_metrics"]) == {"instance_cpu_usage", "instance_ram_usage"}


def test_strategy_parameters_have_a_json_schema_with_defaults(watcher):
    schema = watcher({"command": "loaders"})["strategy"]["schema"]

    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert "default" in prop, name
        assert "description" in prop, name
    assert schema["properties"]["migration_type"]["enum"] == ["live", "cold"]


def test_compute_model_becomes_an_inventory_in_mhz_and_mib(watcher):
    answer = watcher({"command": "translate", "scenario": SCENARIO_1, "plan": [], "mhz_per_vcpu": 2000})

    hosts = answer["inventory"]["hosts"]
    vms = answer["inventory"]["vms"]
    assert len(hosts) == 5
    assert hosts["Node_0"]["capacity"]["cpu"] == 40 * 2000
    assert hosts["Node_0"]["capacity"]["memory"] == 132
    assert vms[INSTANCE_0]["host_id"] == "Node_0"
    assert vms[INSTANCE_0]["size"]["cpu"] == 10 * 2000
    assert Counter(v["host_id"] for v in vms.values()) == {
        "Node_0": 2,
        "Node_1": 1,
        "Node_2": 3,
        "Node_3": 1,
        "Node_4": 1,
    }


def test_a_plan_becomes_watcher_actions_that_pass_watcher_action_schemas(watcher):
    answer = watcher(
        {
            "command": "translate",
            "scenario": SCENARIO_1,
            "flavors": FLAVORS,
            "plan": [
                {"kind": "live_migrate", "vm_id": INSTANCE_0, "target_host_id": "Node_3"},
                {"kind": "resize", "vm_id": INSTANCE_2, "size": {"cpu": 30000, "memory": 1}},
                {"kind": "set_maintenance", "host_id": "Node_4", "maintenance": True, "reason": "risk 0.9"},
                {"kind": "set_allocation", "vm_id": INSTANCE_2},
            ],
        }
    )

    actions = answer["actions"]
    assert [a["action_type"] for a in actions] == ["migrate", "resize", "change_nova_service_state"]
    assert all(a["valid"] for a in actions), [a["error"] for a in actions]
    migrate, resize, service = (a["input_parameters"] for a in actions)
    assert migrate == {
        "migration_type": "live",
        "source_node": "hostname_0",
        "destination_node": "hostname_3",
        "resource_name": "INSTANCE_0",
        "resource_id": INSTANCE_0,
    }
    assert resize == {"flavor": "m1.xlarge", "resource_id": INSTANCE_2}
    assert service["state"] == "disabled" and service["resource_name"] == "hostname_4"
    assert answer["dropped"] == ["step 3: Watcher has no action for set_allocation"]


def test_resize_without_a_fitting_flavor_is_dropped_not_approximated(watcher):
    answer = watcher(
        {
            "command": "translate",
            "scenario": SCENARIO_1,
            "flavors": FLAVORS[:1],
            "plan": [{"kind": "resize", "vm_id": INSTANCE_2, "size": {"cpu": 30000, "memory": 1}}],
        }
    )

    assert answer["actions"] == []
    assert "no flavor" in answer["dropped"][0]


def test_instances_watcher_excludes_are_never_moved(watcher):
    answer = watcher(
        {
            "command": "translate",
            "scenario": {"faker": "generate_scenario_1_with_all_instances_exclude"},
            "plan": [{"kind": "live_migrate", "vm_id": "INSTANCE_0", "target_host_id": "Node_1"}],
        }
    )

    assert answer["inventory"]["vms"]["INSTANCE_0"]["movable"] == "false"
    assert answer["actions"] == []
    assert "excluded" in answer["dropped"][0]


def test_disabled_compute_services_are_hosts_in_maintenance(watcher):
    answer = watcher(
        {
            "command": "translate",
            "scenario": {"faker": "generate_scenario_1_with_all_nodes_disable"},
            "plan": [],
        }
    )

    assert all(h["maintenance"] for h in answer["inventory"]["hosts"].values())


def _run(scenario: dict, load: dict) -> dict:
    return {
        "command": "run",
        "strategy": "cotenancy_predictive",
        "scenario": scenario,
        "load": load,
        "input_parameters": {"flavors": FLAVORS},
    }


def _check_relief(answer: dict, crowded: str) -> list[dict]:
    actions = answer["actions"]
    assert all(a["valid"] for a in actions), [a["error"] for a in actions]
    migrations = [a["input_parameters"] for a in actions if a["action_type"] == "migrate"]
    assert migrations, answer.get("cotenancy_plan")
    assert {m["source_node"] for m in migrations} == {crowded}
    assert all(m["migration_type"] == "live" for m in migrations)
    indicators = answer["efficacy_indicators"]
    assert indicators["instance_migrations_count"] == len(migrations)
    assert indicators["conflicts_predicted"] >= 1
    assert 1 <= indicators["conflicts_avoided"] <= indicators["conflicts_predicted"]
    assert answer["global_efficacy"][0]["name"] == "conflicts_avoided_ratio"
    return migrations


def test_strategy_relieves_the_overcommitted_host_of_watchers_metric_fixture(watcher):
    # faker_cluster_and_metrics scenario 2: six 10-vCPU instances on one 16-vCPU node; Watcher's
    # fixture metrics put them at 10..60 % (21 vCPUs of demand). Three nodes stand empty.
    answer = watcher(_run({"faker_metrics": "generate_scenario_2", "uuids": True}, {"fixture_metrics": True}))

    migrations = _check_relief(answer, "hostname_0")
    assert {m["destination_node"] for m in migrations} <= {"hostname_1", "hostname_2", "hostname_3"}


def test_strategy_reads_metrics_through_the_datasource(watcher):
    # faker_cluster_and_metrics scenario 3: 1+2+4+8 vCPUs on a 10-vCPU node, one empty node.
    busy = watcher(_run({"faker_metrics": "generate_scenario_3", "uuids": True}, {"fixture_metrics": True}))
    idle = watcher(
        _run(
            {"faker_metrics": "generate_scenario_3", "uuids": True},
            {"defaults": {"instance_cpu_usage": 5.0, "instance_ram_usage": 100.0}},
        )
    )

    _check_relief(busy, "hostname_0")
    assert idle["efficacy_indicators"]["conflicts_predicted"] == 0
    assert [a for a in idle["actions"] if a["action_type"] == "migrate"] == []


def test_the_planner_is_handed_the_day_of_history_its_forecaster_looks_back_over(watcher):
    # the audit's default period is an hour; the forecaster's features need [predict] window_steps
    answer = watcher(_run(SCENARIO_1, {"step": 300, "defaults": {"instance_cpu_usage": 10.0}}))

    assert answer["input_parameters"]["period"] == 3600
    assert answer["telemetry_steps"] == 312


def test_strategy_on_a_quiet_cloud_predicts_no_conflict(watcher):
    answer = watcher(
        _run(SCENARIO_1, {"step": 300, "defaults": {"instance_cpu_usage": 10.0, "instance_ram_usage": 1.0}})
    )

    assert all(a["valid"] for a in answer["actions"]), answer["actions"]
    assert answer["efficacy_indicators"]["conflicts_predicted"] == 0
    assert answer["efficacy_indicators"]["conflicts_avoided"] == 0


def _runaway_audits(tmp_path, **options) -> tuple[dict, str]:
    """A day at 10 % CPU, then two intervals at 95 % on one instance (far above any forecast from
    that day), audited by a decision engine whose cotenancy configuration names a SQLite history
    store; ``options``: of the self-test's ``run`` (``audits``, ...)."""
    history = tmp_path / "history.sqlite"
    config = tmp_path / "cotenancy.conf"
    config.write_text(f"[store]\nconnection = sqlite:///{history}\n")
    quiet = {"instance_cpu_usage": 10.0, "instance_ram_usage": 1.0}
    runaway = {"instance_cpu_usage": [10.0] * 310 + [95.0, 95.0]}
    request = _run(SCENARIO_1, {"step": 300, "defaults": quiet, "instances": {INSTANCE_2: runaway}})
    return {**request, "cotenancy_config_file": str(config), **options}, f"sqlite:///{history}"


def _stored_anomalies(url: str) -> list[tuple]:
    with HistoryStore(url) as store:
        return [(e.vm_ids, e.resource) for e in store.events(0, 2**31, kinds=[EventKind.ANOMALY])]


def test_a_runaway_instance_is_flagged_and_kept_in_cotenancys_history_store(watcher, tmp_path):
    request, url = _runaway_audits(tmp_path)

    answer = watcher(request)

    assert [(a["vm_ids"], a["resource"]) for a in answer["anomalies"]] == [([INSTANCE_2], "cpu")]
    assert _stored_anomalies(url) == [((INSTANCE_2,), "cpu")]


def test_audits_of_one_decision_engine_share_one_open_history_store(watcher, tmp_path):
    """Watcher loads the strategy anew for every audit; the history store (its engine, its
    connection, its schema check against every migration script) is opened by the first audit
    only, and each later one checks its schema revision with one query on that connection."""
    request, url = _runaway_audits(tmp_path, audits=3)

    answer = watcher(request)

    assert answer["database_connections"] == 1
    assert [(a["vm_ids"], a["resource"]) for a in answer["anomalies"]] == [([INSTANCE_2], "cpu")]
    assert _stored_anomalies(url) == [((INSTANCE_2,), "cpu")]


def test_a_history_store_emptied_between_audits_is_migrated_again_by_the_next(watcher, tmp_path):
    """A database replaced by an empty one (dropped and created again) no longer has the schema
    revision the store migrated it to: the next audit opens the store again, which creates the
    tables, and keeps its anomaly there."""
    request, url = _runaway_audits(tmp_path, audits=2, empty_store_between_audits=True)

    answer = watcher(request)

    assert answer["database_connections"] == 2
    assert _stored_anomalies(url) == [((INSTANCE_2,), "cpu")]


def test_an_audit_honours_a_drain_another_program_asked_for_through_the_open_api(watcher, tmp_path):
    history = tmp_path / "history.sqlite"
    config = tmp_path / "cotenancy.conf"
    config.write_text(f"[store]\nconnection = sqlite:///{history}\n")
    with HistoryStore(f"sqlite:///{history}") as store:
        now = time.time()
        RequestStore(store).add(RequestKind.DRAIN, {"host_id": "Node_2", "expires_at": now + 3600}, now)
    quiet = {"instance_cpu_usage": 10.0, "instance_ram_usage": 1.0}
    request = _run(SCENARIO_1, {"step": 300, "defaults": quiet})

    drained = watcher({**request, "cotenancy_config_file": str(config)})
    undrained = watcher(request)

    def moves(answer: dict) -> dict[str, str]:
        steps = answer["cotenancy_plan"]
        return {a["vm_id"]: a["target_host_id"] for a in steps if a["kind"] == "live_migrate"}

    # left alone, the audit consolidates onto Node_2; drained, Node_2 is emptied and receives none
    on_node_2 = {INSTANCE_3, INSTANCE_4, INSTANCE_5}
    assert on_node_2.isdisjoint(moves(undrained))
    assert "Node_2" in moves(undrained).values()
    # two at a time: [planner] max_migrations_per_host
    assert len(on_node_2 & set(moves(drained))) == 2
    assert "Node_2" not in moves(drained).values()


def test_an_audit_of_ordinary_usage_flags_nothing(watcher):
    answer = watcher(_run(SCENARIO_1, {"step": 300, "defaults": {"instance_cpu_usage": 10.0}}))

    assert answer["anomalies"] == []


def _simulate(shared_dir, strategy: str, rounds: int = 4) -> dict:
    return {
        "command": "simulate",
        "strategy": strategy,
        "planetlab_day": str(shared_dir / "traces" / "planetlab" / "20110303"),
        "vms": 40,
        "rounds": rounds,
    }


def test_watchers_own_strategy_runs_on_the_compute_model_built_from_the_simulator(watcher, shared_dir):
    # vm_workload_consolidation empties lightly loaded hosts: it must find moves on a PlanetLab cloud,
    # and Watcher's applier would accept every one of them.
    answer = watcher(_simulate(shared_dir, "vm_workload_consolidation"))

    actions = [a for r in answer["rounds"] for a in r["actions"]]
    assert not [r["error"] for r in answer["rounds"] if r["error"]]
    assert any(a["action_type"] == "migrate" for a in actions)
    assert all(a["valid"] for a in actions), [a["error"] for a in actions if not a["valid"]]
    assert answer["metrics"]["migrations"] == sum(a["action_type"] == "migrate" for a in actions) - sum(
        len(r["failed"]) for r in answer["rounds"]
    )


def test_cotenancy_predictive_runs_on_the_compute_model_built_from_the_simulator(watcher, shared_dir):
    answer = watcher(_simulate(shared_dir, "cotenancy_predictive"))

    assert not [r["error"] for r in answer["rounds"] if r["error"]]
    actions = [a for r in answer["rounds"] for a in r["actions"]]
    assert all(a["valid"] for a in actions), [a["error"] for a in actions if not a["valid"]]
    assert not [f for r in answer["rounds"] for f in r["failed"]]
    assert answer["metrics"]["migrations"] == sum(a["action_type"] == "migrate" for a in actions)


def test_a_five_minute_read_returns_the_last_five_minutes_of_the_simulated_cloud(watcher, shared_dir):
    # workload_balance reads instance_cpu_usage over period=300 by default: that read must hold
    # the newest sample (stamped at the start of the last step, as Gnocchi stamps it), not nothing.
    answer = watcher(
        {
            "command": "readings",
            "planetlab_day": str(shared_dir / "traces" / "planetlab" / "20110303"),
            "vms": 20,
            "warmup_rounds": 3,
            "period": 300,
        }
    )

    instances = answer["instances"].values()
    assert instances and all(i["newest"] is not None for i in instances)
    for reading in instances:
        assert reading["mean"] == pytest.approx(reading["newest"])
    busy = [h for h in answer["hosts"].values() if h["instances"]]
    assert busy
    for host in busy:
        assert host["host_cpu_usage"] == pytest.approx(host["sum_of_newest"])


def test_a_host_without_instances_reads_zero_load_not_no_data(watcher):
    # faker_cluster_and_metrics scenario 3: hostname_1 holds no instance. A hypervisor still
    # reports its load; workload_stabilization leaves hosts without data out of its balance.
    answer = watcher(
        {
            "command": "readings",
            "scenario": {"faker_metrics": "generate_scenario_3", "uuids": True},
            "load": {"defaults": {"instance_cpu_usage": 50.0, "instance_ram_usage": 100.0}},
            "period": 600,
        }
    )

    hosts = answer["hosts"]
    empty = [h for h in hosts.values() if h["instances"] == 0]
    assert empty and all(h["host_cpu_usage"] == 0.0 for h in empty)
    assert all(h["host_cpu_usage"] > 0 for h in hosts.values() if h["instances"])
    assert all(i["mean"] == pytest.approx(50.0) for i in answer["instances"].values())
