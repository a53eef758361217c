"""Text from the cloud in what the Watcher plugin hands Watcher: a maintenance step's reason names
hosts and VMs, and reaches Nova as the compute service's ``disabled_reason``, which ``openstack
compute service list`` prints and Nova logs: one line of printable text that fits Nova's 255."""

from __future__ import annotations

import json

from watcher_selftest import run_selftest

from cotenancy.text import CONTROL_CHARACTERS

SCENARIO_1 = {"faker": "generate_scenario_1"}
REASON = "emptying host\n2026-12-07 23:59:59 FORGED\x1b[2J\u2028 saves 100 W; $(id) `id` '\"" + "\u2028" * 80


def test_a_maintenance_reason_holding_control_characters_is_disabled_reason_with_them_escaped(watcher):
    answer = watcher(
        {
            "command": "translate",
            "scenario": SCENARIO_1,
            "plan": [{"kind": "set_maintenance", "host_id": "Node_4", "maintenance": True, "reason": REASON}],
        }
    )

    (service,) = answer["actions"]
    assert service["valid"], service["error"]
    reason = service["input_parameters"]["disabled_reason"]
    assert reason.startswith(
        "cotenancy: emptying host\\n2026-12-07 23:59:59 FORGED\\x1b[2J\\u2028 saves 100 W;"
    )
    assert not CONTROL_CHARACTERS.search(reason) and len(reason) <= 255


APP_TYPE = "web\n2026-12-07 23:59:59 WARNING watcher: FORGED\x1b[2J"
VMS = [f"0000000{i}-dc19-4982-9383-087498bfde03" for i in range(4)]


def test_an_anomaly_on_a_workload_named_with_control_characters_is_one_log_line(watcher_python, tmp_path):
    """A tenant sets the ``cotenancy:app_type`` metadata of its servers (Nova takes any text
    there); the decision engine's WARNING names that workload on one line."""
    inventory = {
        "hosts": [{"id": f"node-{h}", "capacity": {"cpu": 16000, "memory": 65536}} for h in range(2)],
        "vms": [
            {
                "id": vm,
                "host_id": f"node-{i % 2}",
                "size": {"cpu": 2000, "memory": 2048},
                "app_type": APP_TYPE,
            }
            for i, vm in enumerate(VMS)
        ],
    }
    runaway = {"instance_cpu_usage": [10.0] * 310 + [95.0, 95.0]}
    request = {
        "command": "run",
        "strategy": "cotenancy_predictive",
        "scenario": {"inventory": inventory, "mhz_per_vcpu": 1000.0},
        "load": {
            "step": 300,
            "defaults": {"instance_cpu_usage": 10.0},
            "instances": dict.fromkeys(VMS, runaway),
        },
    }

    proc = run_selftest(watcher_python, request)

    answer = json.loads(proc.stdout)
    assert [a["vm_ids"] for a in answer["anomalies"]] == [VMS], answer
    warnings = [line for line in proc.stderr.split("\n") if "cotenancy_predictive: anomaly on" in line]
    assert warnings and "web\\n2026-12-07 23:59:59 WARNING watcher: FORGED\\x1b[2J" in warnings[0], (
        proc.stderr
    )
    assert not [line for line in proc.stderr.split("\n") if line.startswith("2026-12-07 23:59:59")]
    assert "\x1b" not in proc.stderr
