"""``cotenancy run``: the control loop as a command, against the embedded simulated cloud."""

from cotenancy.cli.main import main
from cotenancy.model import StepStatus
from cotenancy.store import HistoryStore


def test_dry_run_rounds_store_their_plans_and_change_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    code = main(["--set", "simulator.synthetic_vms=40", "run", "--rounds", "2", "--dry-run", "--store", url])
    assert code == 0
    assert "2 rounds" in capsys.readouterr().out
    plans = HistoryStore(url).list_plans()
    assert len(plans) == 2
    assert all(a.status is StepStatus.PENDING for p in plans for a in p.actions)


def test_unknown_strategy_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["run", "--strategy", "clairvoyant", "--rounds", "1", "--store", f"sqlite:///{tmp_path}/h.db"]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "clairvoyant" in error and "lr-mmt" in error


def test_a_run_on_the_simulated_cloud_ends_with_its_trace_and_says_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    settings = ["--set", "simulator.synthetic_vms=10", "--set", "simulator.days=0.03"]
    code = main([*settings, "run", "--dry-run", "--store", url])
    assert code == 0
    out = capsys.readouterr().out
    assert "9 rounds" in out and "the simulated trace ended" in out
    assert len(HistoryStore(url).list_plans()) == 9
