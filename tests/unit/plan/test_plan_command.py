"""``cotenancy plan --dry-run`` on the simulated cloud: a table with a reason and a benefit per step,
the same plan as JSON, stored in the history store, and nothing carried out."""

from __future__ import annotations

import json

from cotenancy.cli.main import main
from cotenancy.store import HistoryStore


def test_plan_dry_run_prints_reasons_and_writes_json(tmp_path, capsys):
    store_url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    out_file = tmp_path / "plan.json"
    code = main(
        [
            "--set", "simulator.synthetic_vms=40",
            "--set", "strategy_predictive.risk_model=",
            "--set", "planner.underloaded_hosts=2",
            "plan", "--driver", "simulated", "--dry-run", "--warmup", "6",
            "--store", store_url, "--json", str(out_file),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(out_file.read_text())
    assert data["strategy"] == "predictive" and data["actions"]
    assert "reason" in printed.splitlines()[1] and "benefit" in printed.splitlines()[1]
    for step in data["actions"]:
        assert step["reason"], step
        assert step["reason"][:40] in printed
        assert isinstance(step["expected_benefit"], float)
        assert step["status"] == "pending"
    assert data["stats"]["solver"] in {"cp-sat", "greedy", "none"}
    assert "optimality_gap" in data["stats"] or data["stats"]["solver"] == "greedy"
    store = HistoryStore(store_url)
    try:
        stored = store.get_plan(data["id"])
    finally:
        store.close()
    assert [a.reason for a in stored.actions] == [s["reason"] for s in data["actions"]]


def test_plan_refuses_a_json_file_in_a_missing_folder(tmp_path, capsys):
    code = main(["plan", "--driver", "simulated", "--dry-run", "--json", str(tmp_path / "nope" / "p.json")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_plan_says_whether_a_trained_risk_model_or_its_fallback_scored_the_pairs(tmp_path, capsys):
    """An operator checks from the plan that the model ``cotenancy train`` wrote is the one serving,
    for the pair risks as for the forecasts."""
    store_url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    common = ["--set", "simulator.synthetic_vms=40", "--set", f"predict.model_dir={tmp_path / 'models'}"]
    plan = ["plan", "--dry-run", "--warmup", "6", "--store", store_url, "--json", str(tmp_path / "p.json")]

    assert main([*common, *plan]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["stats"]["risk"] == "xgboost (fallback)"
    assert main([*common, "run", "--strategy", "lr-mmt", "--rounds", "150", "--store", store_url]) == 0
    assert main([*common, "train", "--only", "risk", "--store", store_url, "--since", "0"]) == 0
    capsys.readouterr()
    assert main([*common, *plan]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["stats"]["risk"] == "xgboost (trained)"
    assert "risk=xgboost (trained)" in capsys.readouterr().out
