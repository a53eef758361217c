"""Side-by-side comparison helpers: which folders are days, and what a mean over days means."""

from __future__ import annotations

import pytest

from cotenancy.exceptions import ConfigurationError
from cotenancy.predict import risk
from cotenancy.predict.features import FORECAST_SCHEMA, PAIR_SCHEMA
from cotenancy.predict.forecast import TrainingConfig
from cotenancy.sim import compare
from cotenancy.sim.compare import COLUMNS, forecaster_file_name, means, risk_file_name, trace_days


def test_a_folder_of_day_folders_gives_each_day_in_order(tmp_path):
    for name in ("20110306", "20110303", ".hidden"):
        (tmp_path / name).mkdir()
    assert [p.name for p in trace_days(tmp_path)] == ["20110303", "20110306"]


def test_a_day_folder_or_a_file_is_one_day(tmp_path):
    (tmp_path / "vm-a").write_text("1\n")
    assert trace_days(tmp_path) == [tmp_path]
    assert trace_days(tmp_path / "vm-a") == [tmp_path / "vm-a"]


def test_a_missing_trace_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="no such trace"):
        trace_days(tmp_path / "absent")


def test_a_strategy_missing_on_one_day_has_no_mean_but_says_why():
    row = {key: 1.0 for key, _, _ in COLUMNS}
    metrics = {("d1", "a"): row, ("d2", "a"): {k: 3.0 for k in row}, ("d1", "b"): row}
    result = means(metrics, ["d1", "d2"], ["a", "b"])
    assert result["a"] == {key: 2.0 for key in row}
    assert result["b"] == "unavailable on 1 of 2 days"


def test_a_kept_forecaster_is_named_by_day_schema_and_training_settings(monkeypatch):
    name = forecaster_file_name("20110322")
    assert name.startswith(f"{FORECAST_SCHEMA}-") and name.endswith("-without-20110322.json")
    assert forecaster_file_name("20110325") != name
    monkeypatch.setattr(compare, "_training_config", lambda: TrainingConfig(rounds=61))
    assert forecaster_file_name("20110322") != name


def test_a_kept_risk_model_is_named_by_day_schema_and_training_settings(monkeypatch):
    name = risk_file_name("20110322")
    assert name.startswith(f"risk-{PAIR_SCHEMA}-") and name.endswith("-without-20110322.json")
    assert risk_file_name("20110325") != name
    monkeypatch.setitem(risk.BOOSTER_PARAMS, "eta", 0.3)
    assert risk_file_name("20110322") != name
