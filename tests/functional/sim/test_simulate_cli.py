"""``cotenancy simulate`` end to end: real traces, JSON, HTML report, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest

from cotenancy.cli.main import main
from cotenancy.sim.compare import forecaster_file_name

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
