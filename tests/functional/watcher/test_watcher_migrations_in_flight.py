"""A live migration under way, as the Watcher plugin learns of it from Nova's migration records:
Watcher's compute model shows the server active on its source (Nova keeps ``vm_state`` active until
it lands), so only the records say it moves and where to. Runs in the real Watcher 17 venv."""

from __future__ import annotations

#: Watcher's faker_cluster_state scenario 1 (see test_watcher_plugin.py)
SCENARIO_1 = {"faker": "generate_scenario_1"}
INSTANCE_0 = "d000ef1f-dc19-4982-9383-087498bfde03"
QUIET = {"step": 300, "defaults": {"instance_cpu_usage": 10.0, "instance_ram_usage": 1.0}}


def running(vm: str, source: str, dest: str, status: str = "running") -> dict:
    """A Nova migration record (``GET /os-migrations``) as its JSON reads."""
    return {"instance_uuid": vm, "status": status, "source_compute": source, "dest_compute": dest}


def hostname(watcher, host_id: str) -> str:
    return watcher({"command": "translate", "scenario": SCENARIO_1, "plan": []})["inventory"]["hosts"][
        host_id
    ]["name"]


def instance_0_with_a_record(watcher, status: str) -> tuple:
    """INSTANCE_0 as the plugin sees it beside Nova's record of a move Node_0 -> Node_2."""
    source, dest = hostname(watcher, "Node_0"), hostname(watcher, "Node_2")
    record = running(INSTANCE_0, source, dest, status=status)
    answer = watcher({"command": "translate", "scenario": SCENARIO_1, "plan": [], "migrations": [record]})
    vm = answer["inventory"]["vms"][INSTANCE_0]
    return (vm["state"], vm["host_id"], vm["migration_target"])


def test_a_server_nova_is_migrating_is_in_flight_to_the_host_its_record_names(watcher):
    assert instance_0_with_a_record(watcher, "running") == ("migrating", "Node_0", "Node_2")


def test_a_finished_migration_record_leaves_the_server_active_where_the_model_has_it(watcher):
    assert instance_0_with_a_record(watcher, "completed") == ("active", "Node_0", None)


def test_an_audit_during_a_migration_sends_nothing_to_its_hosts_nor_moves_it_again(watcher):
    """Left alone, the audit consolidates onto Node_2. With INSTANCE_0 on its way from Node_0 to
    Node_2, that move holds both hosts' one migration lane ([planner]
    max_parallel_migrations_per_host) until it lands: no Watcher action touches either."""
    request = {
        "command": "run",
        "strategy": "cotenancy_predictive",
        "scenario": SCENARIO_1,
        "load": QUIET,
    }
    source, dest = hostname(watcher, "Node_0"), hostname(watcher, "Node_2")

    quiet = watcher(request)
    busy = watcher({**request, "migrations": [running(INSTANCE_0, source, dest)]})

    def touched(answer: dict) -> set[str]:
        moves = [a["input_parameters"] for a in answer["actions"] if a["action_type"] == "migrate"]
        return {m["source_node"] for m in moves} | {m["destination_node"] for m in moves}

    assert dest in touched(quiet)
    assert all(a["valid"] for a in busy["actions"]), busy["actions"]
    assert touched(busy).isdisjoint({source, dest})
    assert INSTANCE_0 not in {a["vm_id"] for a in busy["cotenancy_plan"]}
