"""``cotenancy train`` and ``cotenancy evaluate`` end to end, on real traces and a real store."""

from __future__ import annotations

import json

import numpy as np

from cotenancy.cli.main import main
from cotenancy.conf import make_conf
from cotenancy.model import ClusterState, Inventory
from cotenancy.predict.forecast import HybridForecaster
from cotenancy.predict.risk import XGBoostRiskModel
from cotenancy.sim.runner import run_simulation
from cotenancy.sim.traces import load_planetlab
from cotenancy.store import HistoryStore

METHODS = {"model", "last_value", "same_time_yesterday", "moving_window_max", "arima"}


def test_train_reads_the_store_and_the_models_serve(tmp_path, shared_dir, capsys):
    """A simulated half day (real PlanetLab demand) goes into a SQLite history store; training
    reads telemetry, placement and degradation events back and writes both models."""
    workload = load_planetlab(shared_dir / "traces" / "planetlab" / "20110303", limit=120)
    workload = workload.slice_steps(0, 144)
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    store = HistoryStore(url)
    try:
        run_simulation(workload, setup="cloudsim", strategy="lr-mmt", store=store)
        n_events = len(store.events(0, 4e9, kinds=["degradation"]))
    finally:
        store.close()
    assert n_events > 0
    models = tmp_path / "models"
    code = main(
        [
            "--set",
            f"predict.model_dir={models}",
            "train",
            "--store",
            url,
            "--since",
            "0",
            "--until",
            str(workload.start + 2 * 86400),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert (models / "forecast.json").is_file() and (models / "risk.json").is_file()
    assert "risk model saved" in out

    conf = make_conf([], config_files=[])
    conf.set_override("model_dir", str(models), group="predict")
    forecaster, risk = HybridForecaster(conf), XGBoostRiskModel(conf)
    assert forecaster.trained and risk.trained
    store = HistoryStore(url)
    try:
        end = workload.start + 144 * 300
        metrics = ["cpu", "cpu_demand", "cpu_ready", "memory"]
        window = store.series(end - 12 * 300, end, 300.0, metrics=metrics)
        inventory_vms = store.vms()
        hosts = store.hosts()
    finally:
        store.close()
    state = ClusterState(now=end, inventory=Inventory(hosts=hosts, vms=inventory_vms), telemetry=window)
    result = forecaster.forecast(state, (1, 6), (0.5, 0.95))
    assert result.source["cpu"] == "trained"
    assert np.isfinite(result.values["cpu"]).all()
    rows = {v: i for i, v in enumerate(window.vm_ids)}
    placed = [v for v in window.vm_ids if inventory_vms[v].host_id]
    by_host: dict[str, list[str]] = {}
    for v in placed:
        by_host.setdefault(inventory_vms[v].host_id, []).append(v)
    pairs = np.array([[rows[g[0]], rows[g[1]]] for g in by_host.values() if len(g) > 1])
    scores = risk.score_pairs(state, pairs)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_evaluate_forecast_writes_every_method_and_resource(tmp_path, shared_dir, capsys):
    out = tmp_path / "forecast.json"
    code = main(
        [
            "evaluate",
            "forecast",
            "--trace",
            str(shared_dir / "traces" / "bitbrains-rnd" / "2013-7"),
            "--limit",
            "6",
            "--train-days",
            "21",
            "--horizon",
            "30m",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["methods"]) == METHODS
    for per_resource in result["methods"].values():
        assert set(per_resource) == {"cpu", "memory"}
        for metrics in per_resource.values():
            assert {"pinball_p95", "mae_p50", "coverage_p95"} <= set(metrics)
            assert 0.0 <= metrics["coverage_p95"] <= 1.0
    assert result["horizon_minutes"] == 30.0
    assert "pinball_p95" in capsys.readouterr().out


def test_evaluate_rejects_a_missing_trace_clearly(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    code = main(["evaluate", "forecast", "--trace", missing, "--json", str(tmp_path / "x.json")])
    assert code == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_evaluate_conflicts_writes_every_method(tmp_path, shared_dir):
    """Three small PlanetLab days (the first 150 VMs of each, copied to a temporary folder) run
    through the simulator; the model and both baselines are scored on the test day."""
    import shutil

    days = []
    for day in ("20110303", "20110306", "20110309"):
        source = shared_dir / "traces" / "planetlab" / day
        target = tmp_path / day
        target.mkdir()
        for path in sorted(source.iterdir())[:150]:
            shutil.copy(path, target / path.name)
        days.append(str(target))
    out = tmp_path / "conflicts.json"
    code = main(
        [
            "evaluate",
            "conflicts",
            "--setup",
            "cloudsim",
            "--train",
            days[0],
            days[1],
            "--test",
            days[2],
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"model", "reactive", "lr_mmt"}
    for metrics in result["methods"].values():
        assert {"pr_auc", "recall_at_p80", "median_lead_minutes"} <= set(metrics)
        assert 0.0 <= metrics["pr_auc"] <= 1.0
    assert result["test_pair_steps"] > 0


def test_evaluate_conflicts_writes_standard_json_even_where_a_method_never_reaches_80_percent(
    tmp_path, shared_dir
):
    """The baselines never reach 80 % precision on these days, so no threshold gives it: the file
    says ``null`` there, which every JSON reader accepts, not ``Infinity``, which strict ones
    (JavaScript's ``JSON.parse``, Go's ``encoding/json``) refuse."""
    import shutil

    days = []
    for day in ("20110303", "20110306", "20110309"):
        target = tmp_path / day
        target.mkdir()
        for path in sorted((shared_dir / "traces" / "planetlab" / day).iterdir())[:40]:
            shutil.copy(path, target / path.name)
        days.append(str(target))
    out = tmp_path / "conflicts.json"
    argv = ["evaluate", "conflicts", "--train", days[0], days[1], "--test", days[2], "--json", str(out)]
    assert main(argv) == 0

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    result = json.loads(out.read_text(), parse_constant=refuse)
    methods = result["methods"].values()
    assert any(m["threshold_at_p80"] is None for m in methods)
    # every method is judged on the same conflict onsets; one that warned of none has no lead time
    assert len({m["onsets"] for m in methods}) == 1 and result["methods"]["model"]["onsets"] > 0
    for m in methods:
        assert (m["median_lead_minutes"] is None) == (m["onsets_warned"] == 0)
        if m["threshold_at_p80"] is None:
            assert m["onsets_warned"] == 0


def _bitbrains(shared_dir, folder, lines: int | None = None):
    """Three VMs of Bitbrains 2013-7 (a month), or their first ``lines`` samples."""
    import gzip
    import shutil

    folder.mkdir()
    for name in ("1.csv.gz", "2.csv.gz", "3.csv.gz"):
        source = shared_dir / "traces" / "bitbrains-rnd" / "2013-7" / name
        if lines is None:
            shutil.copy(source, folder / name)
            continue
        with gzip.open(source, "rt") as whole:
            head = [next(whole) for _ in range(lines + 1)]
        (folder / name.removesuffix(".gz")).write_text("".join(head))
    return str(folder)


def test_evaluate_conflicts_refuses_a_bitbrains_month_in_the_cloudsim_setup_before_simulating(
    tmp_path, shared_dir, capsys
):
    import shutil

    month = _bitbrains(shared_dir, tmp_path / "2013-7")
    day = tmp_path / "20110303"
    day.mkdir()
    for path in sorted((shared_dir / "traces" / "planetlab" / "20110303").iterdir())[:20]:
        shutil.copy(path, day / path.name)
    out = tmp_path / "conflicts.json"

    argv = ["evaluate", "conflicts", "--setup", "cloudsim", "--train", month, "--test", str(day)]
    assert main([*argv, "--json", str(out)]) == 2

    error = capsys.readouterr().err
    assert f"{month}: a Bitbrains trace" in error and "defined on PlanetLab day folders" in error
    assert "--setup default" in error
    assert not out.exists()


def test_evaluate_conflicts_in_the_default_setup_says_how_long_a_bitbrains_trace_is_before_simulating(
    tmp_path, shared_dir, capsys
):
    # 864 samples of 300 s: three days
    trace = _bitbrains(shared_dir, tmp_path / "three-days", lines=864)
    argv = ["evaluate", "conflicts", "--setup", "default", "--train", trace, "--test", trace]

    main([*argv, "--json", str(tmp_path / "conflicts.json")])

    error = capsys.readouterr().err
    warning = f"cotenancy: warning: {trace} spans about 3.0 days: it is simulated whole (864 rounds)"
    assert warning in error
    assert error.index(warning) < error.index("simulating")
