"""Bad input to the ``cotenancy`` command: a one-line ``cotenancy...: error: ...`` on stderr and exit
code 2, never a traceback; checked before any work is done, nothing carried out is left unreported,
and no password is ever echoed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cotenancy.cli.main import main
from cotenancy.store import HistoryStore

SMALL_CLOUD = ["--set", "simulator.synthetic_vms=40"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``cotenancy argv``, whether it returns or exits."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) >= 1 and ": error: " in lines[-1], err
    assert all(text in lines[-1] for text in expected), err


@pytest.fixture(autouse=True)
def _state_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTENANCY_STATE_PATH", str(tmp_path / "state"))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.sqlite'}"


def stored_plan_ids(url: str) -> list[str]:
    store = HistoryStore(url)
    try:
        return [plan.id for plan in store.list_plans()]
    finally:
        store.close()


# --------------------------------------------------------------------------- configuration files


def test_a_missing_config_file_is_a_one_line_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent.conf"
    code, _out, err = run_cli(["--config-file", str(missing), "plan", "--dry-run"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert_one_line_error(err, str(missing))


def test_a_config_file_with_bad_syntax_is_a_one_line_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bad-syntax.conf"
    conf.write_text("no section here\n")
    code, _out, err = run_cli(["--config-file", str(conf), "plan", "--dry-run"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert_one_line_error(err, str(conf))


def test_a_config_file_with_a_bad_value_names_the_option_and_file_in_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    conf = tmp_path / "bad-value.conf"
    conf.write_text("[DEFAULT]\ninterval = abc\n")
    code, _out, err = run_cli(["--config-file", str(conf), "plan", "--dry-run", "--store", store_url], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert_one_line_error(err, "interval", str(conf), "'abc'")
    assert "LocationInfo" not in err


# --------------------------------------------------------------------------- store URLs and secrets


@pytest.mark.parametrize(
    "argv",
    [
        ["api", "--store", "postgresql://u:s3cret-pw@db:notaport/cotenancy"],
        ["--set", "store.connection=postgresql://u:s3cret-pw@db:notaport/cotenancy", "api"],
    ],
    ids=["option", "configured"],
)
def test_a_store_url_with_a_bad_port_is_a_clear_error_that_hides_the_password(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "port")
    assert "s3cret-pw" not in out + err


def test_a_set_override_of_a_misspelt_option_does_not_echo_its_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--set", "store.connectoin=postgresql://u:s3cret-pw@db/cotenancy", "plan", "--dry-run"]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "connectoin")
    assert "s3cret-pw" not in out + err


# --------------------------------------------------------------------------- numeric arguments


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["simulate", "--vms", "0", "--no-progress"], "--vms"),
        (["simulate", "--vms", "-3", "--no-progress"], "--vms"),
        (["simulate", "--days", "nan", "--vms", "5", "--no-progress"], "--days"),
        (["simulate", "--days", "inf", "--vms", "5", "--no-progress"], "--days"),
        (["simulate", "--seed", "-1", "--vms", "5", "--days", "0.05", "--no-progress"], "--seed"),
        (["train", "--step", "0"], "--step"),
        (["train", "--step", "nan"], "--step"),
        (["run", "--rounds", "-1", "--dry-run"], "--rounds"),
        (["run", "--rounds", "0", "--dry-run"], "--rounds"),
        (
            ["evaluate", "forecast", "--trace", "no-such-trace", "--json", "f.json", "--train-days", "nan"],
            "--train-days",
        ),
        (["evaluate", "forecast", "--trace", "no-such-trace", "--json", "f.json", "--limit", "0"], "--limit"),
    ],
)
def test_an_out_of_range_number_is_a_usage_error_with_exit_code_2(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli([*SMALL_CLOUD, *argv], capsys)
    assert code == 2
    assert "usage:" in err
    assert_one_line_error(err, option)
    assert out == ""


def test_a_negative_warmup_is_a_usage_error_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["plan", "--dry-run", "--warmup", "-1"], capsys)
    assert code == 2
    assert_one_line_error(err, "--warmup")


def test_a_train_window_given_as_nan_seconds_is_refused_by_name(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    code, _out, err = run_cli(["train", "--store", store_url, "--since", "nan"], capsys)
    assert code == 2
    assert_one_line_error(err, "'nan'")


# --------------------------------------------------------------------------- output files


def test_plan_refuses_a_json_target_that_is_a_folder_before_planning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    code, out, err = run_cli(
        [*SMALL_CLOUD, "plan", "--driver", "simulated", "--store", store_url, "--json", str(tmp_path)], capsys
    )
    assert code == 2
    assert_one_line_error(err, "--json", str(tmp_path))
    assert out == ""
    assert stored_plan_ids(store_url) == []


def test_plan_refuses_a_json_target_below_a_file_before_planning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    target = not_a_folder / "plan.json"
    code, out, err = run_cli(
        [*SMALL_CLOUD, "plan", "--driver", "simulated", "--store", store_url, "--json", str(target)], capsys
    )
    assert code == 2
    assert_one_line_error(err, "--json", f"{not_a_folder} is not a folder")
    assert out == ""
    assert stored_plan_ids(store_url) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, which fails every write")
def test_plan_that_cannot_write_its_json_after_carrying_out_reports_the_steps_then_the_error(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    code, out, err = run_cli(
        [
            *SMALL_CLOUD,
            "plan",
            "--driver",
            "simulated",
            "--warmup",
            "2",
            "--store",
            store_url,
            "--json",
            "/dev/full",
        ],
        capsys,
    )
    assert code != 0
    assert "carried out:" in out
    (plan_id,) = stored_plan_ids(store_url)
    assert_one_line_error(err, "--json", "/dev/full", plan_id)


def test_simulate_refuses_a_json_target_that_is_a_folder_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--vms", "5", "--days", "0.05", "--no-progress", "--json", str(tmp_path)]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "--json", str(tmp_path))
    assert out == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, which fails every write")
def test_simulate_that_cannot_write_its_json_prints_the_metrics_then_the_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["simulate", "--vms", "5", "--days", "0.05", "--no-progress", "--json", "/dev/full"]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert "VMs" in out and "rounds" in out
    assert_one_line_error(err, "--json", "/dev/full")


def test_evaluate_refuses_a_json_target_that_is_a_folder_before_reading_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "forecast", "--trace", str(tmp_path / "no-trace"), "--json", str(tmp_path)]
    code, _out, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "--json", str(tmp_path))
