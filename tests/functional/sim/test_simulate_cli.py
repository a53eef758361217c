"""``cotenancy simulate`` end to end: real traces, JSON, HTML report, and clear errors."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request

import pytest

from cotenancy.api import make_server
from cotenancy.cli.main import main
from cotenancy.conf import api as api_conf
from cotenancy.conf import make_conf
from cotenancy.model import EventKind
from cotenancy.predict.forecast import HybridForecaster
from cotenancy.predict.risk import XGBoostRiskModel
from cotenancy.sim.compare import forecaster_file_name
from cotenancy.store import HistoryStore

KEYS = {"energy_kwh", "slatah", "pdm", "slav", "esv", "migrations", "conflict_minutes", "wall_seconds"}


def test_synthetic_default_run_writes_json_and_a_self_contained_report(tmp_path, capsys):
    out, report = tmp_path / "result.json", tmp_path / "report.html"
    code = main(
        [
            "simulate",
            "--strategy",
            "lr-mmt",
            "--vms",
            "40",
            "--days",
            "0.2",
            "--json",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) >= KEYS
    assert result["setup"] == "default" and result["vms"] == 40
    assert result["energy_kwh"] > 0
    assert result["anomalies_flagged"] == len(result["anomalies"])
    assert all({"time", "vms", "host", "resource", "message"} <= set(a) for a in result["anomalies"])
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 4
    for title in ("Active hosts", "utilisation", "Migrations", "degraded", "Anomalies"):
        assert title in page
    assert "http://" not in page and "https://" not in page
    printed = capsys.readouterr().out
    assert "energy" in printed and "SLATAH" in printed


def test_planetlab_folder_is_detected_and_run_in_the_cloudsim_setup(tmp_path, shared_dir, capsys):
    day = shared_dir / "traces" / "planetlab" / "20110303"
    trace = tmp_path / "20110303"
    trace.mkdir()
    for path in sorted(day.iterdir())[:60]:
        shutil.copy(path, trace / path.name)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "simulate",
                "--trace",
                str(trace),
                "--setup",
                "cloudsim",
                "--days",
                "0.25",
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["hosts"] == 800 and result["vms"] == 60
    assert result["workload"].startswith("planetlab:")
    assert result["migrations"] > 0


def test_bitbrains_folder_is_detected(tmp_path, shared_dir):
    month = shared_dir / "traces" / "bitbrains-rnd" / "2013-7"
    trace = tmp_path / "bb"
    trace.mkdir()
    for name in ("1.csv.gz", "2.csv.gz", "3.csv.gz"):
        shutil.copy(month / name, trace / name)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "simulate",
                "--trace",
                str(trace),
                "--strategy",
                "noop",
                "--days",
                "0.1",
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["workload"].startswith("bitbrains:") and result["vms"] == 3
    assert result["migrations"] == 0


def test_malformed_trace_names_file_and_line(tmp_path, capsys):
    trace = tmp_path / "day"
    trace.mkdir()
    (trace / "vm-a").write_text("\n".join(["10"] * 288) + "\n")
    (trace / "vm-b").write_text("10\n12\nabc\n" + "\n".join(["10"] * 285) + "\n")
    assert main(["simulate", "--trace", str(trace), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cotenancy: error:")
    assert f"{trace / 'vm-b'}:3" in err


def test_unknown_strategy_lists_the_known_ones(capsys):
    assert main(["simulate", "--strategy", "no-such-thing", "--no-progress"]) == 2
    err = capsys.readouterr().err
    for known in ("lr-mmt", "noop", "reactive-threshold"):
        assert known in err


@pytest.mark.parametrize("strategy", ["noop", "reactive-threshold"])
def test_baselines_run_through_the_control_loop(tmp_path, strategy):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "simulate",
                "--strategy",
                strategy,
                "--vms",
                "30",
                "--days",
                "0.1",
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["strategy"] == strategy


def _two_small_days(shared_dir, tmp_path):
    """The first 60 VMs of two PlanetLab days, as a folder of day folders."""
    root = tmp_path / "planetlab"
    for name in ("20110303", "20110306"):
        day = root / name
        day.mkdir(parents=True)
        for path in sorted((shared_dir / "traces" / "planetlab" / name).iterdir())[:60]:
            shutil.copy(path, day / path.name)
    return root


def test_a_folder_of_days_compares_every_strategy_on_every_day_and_prints_the_mean(
    tmp_path, shared_dir, capsys
):
    trace, out, models = _two_small_days(shared_dir, tmp_path), tmp_path / "cmp.json", tmp_path / "models"
    argv = ["simulate", "--setup", "cloudsim", "--trace", str(trace), "--days", "0.1", "--no-progress"]
    argv += ["--strategy", "noop,lr-mmt,predictive", "--json", str(out), "--model-dir", str(models)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["days"]) == {"20110303", "20110306"}
    for day in result["days"].values():
        assert set(day) == {"noop", "lr-mmt", "predictive"}
        assert day["noop"]["migrations"] == 0 and day["lr-mmt"]["energy_kwh"] < day["noop"]["energy_kwh"]
    for strategy, mean in result["mean"].items():
        days = [result["days"][d][strategy] for d in result["days"]]
        assert mean["energy_kwh"] == pytest.approx(sum(d["energy_kwh"] for d in days) / 2)
    # the forecaster that served each day was trained on the other day only
    assert sorted(p.name for p in models.iterdir()) == [
        forecaster_file_name("20110303"),
        forecaster_file_name("20110306"),
    ]
    printed = capsys.readouterr().out
    assert "20110303 (cloudsim setup)" in printed and "mean over 2 days" in printed


def test_a_comparison_refuses_an_html_report_and_unknown_strategies_before_running(
    tmp_path, shared_dir, capsys
):
    trace = _two_small_days(shared_dir, tmp_path)
    base = ["simulate", "--setup", "cloudsim", "--trace", str(trace), "--days", "0.1"]
    assert main([*base, "--strategy", "noop,lr-mmt", "--report", str(tmp_path / "r.html")]) == 2
    assert "--report is for one strategy on one day" in capsys.readouterr().err
    assert main([*base, "--strategy", "noop,no-such-strategy"]) == 2
    assert "no-such-strategy" in capsys.readouterr().err


def test_a_missing_trace_folder_is_a_clear_error(tmp_path, capsys):
    argv = ["simulate", "--trace", str(tmp_path / "absent"), "--strategy", "noop,lr-mmt"]
    assert main(argv) == 2
    assert "no such trace file or folder" in capsys.readouterr().err


def _recorded(url: str) -> dict[str, list]:
    """Everything a history store holds about a cloud, in an order that does not depend on how
    it was written (plan ids are random, so plans are compared by their steps, oldest first)."""
    with HistoryStore(url) as store:
        return {
            "samples": sorted(
                (s.vm_id, s.timestamp, str(s.metric), s.value) for s in store.samples(0, 2**33)
            ),
            "events": sorted(
                (e.timestamp, e.kind.value, e.vm_ids, e.host_id, e.message) for e in store.events(0, 2**33)
            ),
            "plans": [
                [(a.kind.value, a.vm_id, a.target_host_id, a.status.value) for a in plan.actions]
                for plan in reversed(store.list_plans(limit=10_000))
            ],
            "vms": sorted((v.id, v.host_id, v.state.value) for v in store.vms().values()),
            "hosts": sorted(store.hosts()),
        }


def test_simulate_with_a_store_records_what_cotenancy_run_on_the_simulated_driver_records(tmp_path):
    sizes = ["--set", "simulator.synthetic_vms=20", "--set", "simulator.days=0.1"]
    sizes += ["--set", "simulator.setup=default"]
    simulated, ran = f"sqlite:///{tmp_path / 'simulate.sqlite'}", f"sqlite:///{tmp_path / 'run.sqlite'}"

    assert main([*sizes, "simulate", "--strategy", "lr-mmt", "--no-progress", "--store", simulated]) == 0
    recorded = _recorded(simulated)
    rounds = str(len(recorded["plans"]))
    # a step that fails (a VM still migrating) makes run exit 1; both runs record it alike
    assert main(
        [*sizes, "run", "--driver", "simulated", "--strategy", "lr-mmt", "--rounds", rounds, "--store", ran]
    ) in (0, 1)

    assert recorded == _recorded(ran)
    kinds = {kind for _, kind, *_ in recorded["events"]}
    assert {"degradation", "migration", "anomaly"} <= kinds
    assert len(recorded["vms"]) == 20 and recorded["samples"]
    assert any(recorded["plans"])


def test_a_simulated_trace_slice_recorded_in_a_store_is_read_back_and_trained_from(
    tmp_path, shared_dir, capsys
):
    """Half a day of 120 real PlanetLab VMs: cotenancy train learns both models from its store,
    in the trace's time (2011-03-03)."""
    day = shared_dir / "traces" / "planetlab" / "20110303"
    trace = tmp_path / "20110303"
    trace.mkdir()
    for path in sorted(day.iterdir())[:120]:
        shutil.copy(path, trace / path.name)
    url, models = f"sqlite:///{tmp_path / 'history.sqlite'}", tmp_path / "models"
    argv = ["simulate", "--setup", "cloudsim", "--trace", str(trace), "--days", "0.5", "--no-progress"]
    assert main([*argv, "--store", url]) == 0
    start, end = 1299110400.0, 1299110400.0 + 43200

    with HistoryStore(url) as store:
        samples = store.samples(start, end, metrics=["cpu"])
        degradations = store.events(start, end, kinds=[EventKind.DEGRADATION])
        migrations = store.events(start, end, kinds=[EventKind.MIGRATION])
    assert len({s.vm_id for s in samples}) == 120
    assert min(s.timestamp for s in samples) == start and max(s.timestamp for s in samples) < end
    assert degradations and migrations

    capsys.readouterr()
    train = ["--set", f"predict.model_dir={models}", "train", "--store", url]
    assert main([*train, "--since", "2011-03-03", "--until", "2011-03-04"]) == 0
    out = capsys.readouterr().out
    # the last round reads the interval before it: the next one would read the last
    assert "history: 120 VMs, 143 intervals" in out and "risk model saved" in out
    conf = make_conf([], config_files=[])
    conf.set_override("model_dir", str(models), group="predict")
    assert HybridForecaster(conf).trained and XGBoostRiskModel(conf).trained

    # what cotenancy api --store URL serves from it: the day's events and the trained models' risks
    conf.register_opts(api_conf.OPTS, group=api_conf.GROUP)
    with HistoryStore(url) as store:
        server = make_server(conf, store, listen="127.0.0.1:0")
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            events = _get(server, "/v1/events?kind=migration&limit=5")["events"]
            risks = _get(server, "/v1/predictions/pairs?limit=5")
        finally:
            server.shutdown()
            server.server_close()
    assert len(events) == 5 and all(start <= e["timestamp"] < end for e in events)
    assert risks["trained"] and risks["pairs_scored"] > 0 and len(risks["pairs"]) == 5


def _get(server, path: str) -> dict:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=60) as answer:
        return json.loads(answer.read())


def test_simulate_without_a_store_records_nothing(tmp_path):
    state = tmp_path / "state"
    argv = ["--set", f"DEFAULT.state_path={state}", "simulate", "--vms", "10", "--days", "0.05"]
    assert main([*argv, "--no-progress"]) == 0
    assert not state.exists()


def test_a_comparison_refuses_a_store_before_running(tmp_path, shared_dir, capsys):
    trace, history = _two_small_days(shared_dir, tmp_path), tmp_path / "history.sqlite"
    argv = ["simulate", "--setup", "cloudsim", "--trace", str(trace), "--strategy", "noop,lr-mmt"]
    assert main([*argv, "--store", f"sqlite:///{history}"]) == 2
    assert "--store records one strategy on one day" in capsys.readouterr().err
    assert not history.exists()
