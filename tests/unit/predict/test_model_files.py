"""Model files: a bad file is one typed error naming it, a bad replacement never stops serving the
last good model, and a saved file can be read by a server running as another user."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from predict_synthetic import STEP, make_state, small_config, synthetic_usage, toy_history

from cotenancy.exceptions import ModelFileError, SchemaMismatch
from cotenancy.predict import features as feats
from cotenancy.predict.forecast import HybridForecaster, TrainedForecaster, train_forecaster
from cotenancy.predict.history import build_pair_dataset
from cotenancy.predict.registry import ModelBundle, ReloadingModel, load_bundle, save_bundle, trained_when
from cotenancy.predict.risk import RiskTrainingConfig, XGBoostRiskModel, train_risk

Edit = Callable[[bytes], bytes]


@pytest.fixture(scope="module")
def forecast_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small but complete forecaster file."""
    u = synthetic_usage(n_vms=4, days=2)
    model = train_forecaster(
        u.values, u.timestamps, STEP, u.sizes, u.vm_ids, u.classes, small_config(rounds=3, parallel_trees=1)
    )
    path = tmp_path_factory.mktemp("forecast") / "forecast.json"
    HybridForecaster(model_path=path).save(model)
    return path.read_bytes()


@pytest.fixture(scope="module")
def risk_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small but complete risk model file."""
    dataset = build_pair_dataset(toy_history(), horizon_steps=6, window_steps=12)
    path = tmp_path_factory.mktemp("risk") / "risk.json"
    XGBoostRiskModel(model_path=path).save(train_risk(dataset, RiskTrainingConfig(rounds=5)))
    return path.read_bytes()


def _json_edit(change: Callable[[dict], object]) -> Edit:
    """An edit changing the parsed document in place (what ``change`` returns is ignored)."""

    def edit(good: bytes) -> bytes:
        document = json.loads(good)
        change(document)
        return json.dumps(document).encode()

    return edit


def _damage_first_booster(document: dict) -> None:
    name = next(iter(document["boosters"]))
    document["boosters"][name] = "AAAA" + document["boosters"][name][40:]


def _change_one_booster_byte(document: dict) -> None:
    name = next(iter(document["boosters"]))
    raw = bytearray(base64.b64decode(document["boosters"][name]))
    raw[len(raw) // 2] ^= 0x01
    document["boosters"][name] = base64.b64encode(bytes(raw)).decode("ascii")


FORECAST_DAMAGE: dict[str, tuple[Edit, str]] = {
    "truncated": (lambda good: good[: len(good) // 2], "not valid JSON"),
    "binary garbage": (lambda good: bytes(range(256)) * 4, "not UTF-8"),
    "a JSON list": (lambda good: b"[1, 2, 3]", "a JSON array, expected an object"),
    "empty": (lambda good: b"", "not valid JSON"),
    "no format": (_json_edit(lambda d: d.pop("format")), "unknown model file format"),
    "another kind": (_json_edit(lambda d: d.update(kind="risk")), "holds a 'risk' model"),
    "no boosters": (_json_edit(lambda d: d.pop("boosters")), "missing 'boosters'"),
    "boosters not a mapping": (
        _json_edit(lambda d: d.update(boosters=[1])),
        "'boosters' must be a JSON object",
    ),
    "no metadata alphas": (_json_edit(lambda d: d["metadata"].pop("alphas")), "missing metadata 'alphas'"),
    "alphas not numbers": (_json_edit(lambda d: d["metadata"].update(alphas="abc")), "'alphas' must be"),
    "window_steps null": (_json_edit(lambda d: d["metadata"].update(window_steps=None)), "'window_steps'"),
    "step_seconds text": (_json_edit(lambda d: d["metadata"].update(step_seconds="5m")), "'step_seconds'"),
    "damaged booster": (_json_edit(_damage_first_booster), "booster 'cpu' is damaged"),
    "booster not base64": (
        _json_edit(lambda d: d["boosters"].update(cpu="not base64 at all!")),
        "booster 'cpu' is not valid base64",
    ),
    "offsets missing": (_json_edit(lambda d: d["arrays"].pop("offsets/cpu")), "missing array 'offsets/cpu'"),
    "offsets of another shape": (
        _json_edit(lambda d: d["arrays"]["offsets/cpu"].update(shape=[1, 1], data=[0.0])),
        "array 'offsets/cpu' has shape (1, 1)",
    ),
    "array data not matching its shape": (
        _json_edit(lambda d: d["arrays"]["offsets/cpu"].update(data=[1.0])),
        "array 'offsets/cpu' does not match",
    ),
    "array of strings": (
        _json_edit(lambda d: d["arrays"]["offsets/cpu"].update(dtype="<U3")),
        "array 'offsets/cpu' has dtype",
    ),
}

RISK_DAMAGE: dict[str, tuple[Edit, str]] = {
    "truncated": (lambda good: good[: len(good) // 2], "not valid JSON"),
    "binary garbage": (lambda good: bytes(range(256)) * 4, "not UTF-8"),
    "a JSON number": (lambda good: b"3", "a JSON number, expected an object"),
    "no risk booster": (_json_edit(lambda d: d["boosters"].pop("risk")), "missing booster 'risk'"),
    "damaged booster": (_json_edit(_damage_first_booster), "booster 'risk' is damaged"),
    "one byte of the booster changed": (
        _json_edit(_change_one_booster_byte),
        "booster 'risk' is damaged (its bytes do not match their SHA-256)",
    ),
    "digests of other boosters": (
        _json_edit(lambda d: d.update(booster_sha256={"other": "0" * 64})),
        "booster 'risk' has no SHA-256 in 'booster_sha256'",
    ),
    "no calibration": (_json_edit(lambda d: d["arrays"].pop("calib_y")), "missing array 'calib_y'"),
    "calibration of unequal lengths": (
        _json_edit(lambda d: d["arrays"]["calib_y"].update(shape=[1], data=[0.5])),
        "array 'calib_y' has shape (1,)",
    ),
    "metadata not a mapping": (
        _json_edit(lambda d: d.update(metadata="x")),
        "'metadata' must be a JSON object",
    ),
}


DAMAGED_BOOSTERS_CHILD = """
import base64, json, random, sys
from pathlib import Path
from cotenancy.exceptions import ModelFileError
from cotenancy.predict.registry import load_bundle
good = Path(sys.argv[1])
document = json.loads(good.read_text())
raw = base64.b64decode(document["boosters"]["risk"])
rnd = random.Random(7)
refused = 0
for i in range(60):
    bad = bytearray(raw)
    if i % 2:
        bad = bad[: rnd.randrange(8, len(bad))]
    else:
        bad[rnd.randrange(len(bad))] = rnd.randrange(256)
    if bytes(bad) == raw:
        continue
    document["boosters"]["risk"] = base64.b64encode(bytes(bad)).decode()
    good.with_name("bad.json").write_text(json.dumps(document))
    try:
        load_bundle(good.with_name("bad.json"), "risk", document["schema_version"])
    except ModelFileError as exc:
        assert "damaged" in str(exc), exc
        refused += 1
print(refused)
"""


def test_damaged_booster_bytes_never_reach_xgboosts_parser(tmp_path: Path, risk_file: bytes) -> None:
    """XGBoost's parser can kill the process (SIGSEGV) or hang on damaged bytes: a file whose
    booster bytes were changed since they were saved is refused before they reach it."""
    (tmp_path / "risk.json").write_bytes(risk_file)
    done = subprocess.run(
        [sys.executable, "-c", DAMAGED_BOOSTERS_CHILD, str(tmp_path / "risk.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) >= 55


def write_damaged(path: Path, good: bytes, edit, fault: str) -> tuple[Path, str]:
    """Write a good model file with one kind of damage; the fault its error must name."""
    path.write_bytes(edit(good))
    return path, fault


@pytest.mark.parametrize("damage", list(FORECAST_DAMAGE), ids=list(FORECAST_DAMAGE))
def test_every_malformed_forecaster_file_is_one_typed_error_naming_file_and_fault(
    tmp_path: Path, forecast_file: bytes, damage: str
) -> None:
    path, fault = write_damaged(tmp_path / "forecast.json", forecast_file, *FORECAST_DAMAGE[damage])
    forecaster = HybridForecaster(model_path=path)
    with pytest.raises(ModelFileError) as raised:
        forecaster.forecast_arrays({"cpu": np.ones((4, 312))}, 0.0, STEP, (1,))
    assert str(path) in str(raised.value)
    assert fault in str(raised.value)


@pytest.mark.parametrize("damage", list(RISK_DAMAGE), ids=list(RISK_DAMAGE))
def test_every_malformed_risk_file_is_one_typed_error_naming_file_and_fault(
    tmp_path: Path, risk_file: bytes, damage: str
) -> None:
    path, fault = write_damaged(tmp_path / "risk.json", risk_file, *RISK_DAMAGE[damage])
    with pytest.raises(ModelFileError) as raised:
        _ = XGBoostRiskModel(model_path=path).model
    assert str(path) in str(raised.value)
    assert fault in str(raised.value)


def test_a_malformed_file_is_refused_like_a_schema_mismatch(tmp_path: Path) -> None:
    """Code that refuses a model of another schema refuses a damaged file the same way."""
    path = tmp_path / "forecast.json"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(SchemaMismatch):
        load_bundle(path, "forecast", feats.FORECAST_SCHEMA)


def test_the_predictor_reports_why_its_model_file_is_not_served(tmp_path: Path, forecast_file: bytes) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(forecast_file)
    bad.write_bytes(forecast_file[:100])
    served = HybridForecaster(model_path=good)
    assert served.trained and served.model_problem is None
    refused = HybridForecaster(model_path=bad)
    with pytest.raises(ModelFileError):
        _ = refused.model
    assert refused.model_problem is not None and str(bad) in refused.model_problem


# --------------------------------------------------------------------------------- reloading
def _load_forecaster(path: Path) -> TrainedForecaster:
    return TrainedForecaster.from_bundle(load_bundle(path, "forecast", feats.FORECAST_SCHEMA))


class CountingBuild:
    """``_load_forecaster`` that counts how often the file is read."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> TrainedForecaster:
        self.calls += 1
        return _load_forecaster(path)


def _replace(path: Path, content: bytes) -> None:
    """Put ``content`` in place the way a trainer or a copy does: atomically, as a new file."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(content)
    os.replace(tmp, path)


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    caplog.set_level(logging.ERROR, logger="cotenancy.predict.registry")
    yield lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_damaged_replacement_keeps_the_last_good_model_serving_and_is_logged_once(
    tmp_path: Path, forecast_file: bytes, errors: Callable[[], list[str]]
) -> None:
    path = tmp_path / "forecast.json"
    path.write_bytes(forecast_file)
    reloading = ReloadingModel(path, _load_forecaster, min_check_seconds=0.0)
    good = reloading.get()
    assert good is not None and reloading.problem is None
    _replace(path, forecast_file[:5000])
    assert [reloading.get() for _ in range(10)] == [good] * 10
    assert len(errors()) == 1 and str(path) in errors()[0]
    assert reloading.problem is not None and str(path) in reloading.problem


def test_a_damaged_file_is_read_again_only_when_it_changes(tmp_path: Path, forecast_file: bytes) -> None:
    path = tmp_path / "forecast.json"
    path.write_bytes(forecast_file)
    build = CountingBuild()
    reloading = ReloadingModel(path, build, min_check_seconds=0.0)
    reloading.get()
    _replace(path, b"garbage")
    for _ in range(5):
        reloading.get()
    assert build.calls == 2
    _replace(path, forecast_file)
    recovered = reloading.get()
    assert build.calls == 3
    assert recovered is not None and reloading.problem is None


@pytest.mark.parametrize("min_check_seconds", [0.0, 3600.0])
def test_without_a_good_model_every_use_raises_the_same_error(
    tmp_path: Path, min_check_seconds: float, errors: Callable[[], list[str]]
) -> None:
    """Never an alternation of error and no model, whether or not the file is checked again."""
    path = tmp_path / "forecast.json"
    path.write_bytes(b"garbage")
    reloading = ReloadingModel(path, _load_forecaster, min_check_seconds=min_check_seconds)
    messages = set()
    for _ in range(5):
        with pytest.raises(ModelFileError) as raised:
            reloading.get()
        messages.add(str(raised.value))
    assert len(messages) == 1 and str(path) in messages.pop()
    assert len(errors()) == 1


def test_a_removed_file_means_no_model_and_no_problem(tmp_path: Path, forecast_file: bytes) -> None:
    path = tmp_path / "forecast.json"
    path.write_bytes(b"garbage")
    reloading = ReloadingModel(path, _load_forecaster, min_check_seconds=0.0)
    with pytest.raises(ModelFileError):
        reloading.get()
    path.unlink()
    assert reloading.get() is None and reloading.problem is None


# --------------------------------------------------------------------------------- file mode
def _bundle() -> ModelBundle:
    return ModelBundle("forecast", feats.FORECAST_SCHEMA, {}, {}, {"a": np.zeros(2)})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664], ids=oct)
def test_saving_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "forecast.json"
    path.write_text("{}")
    path.chmod(mode)
    save_bundle(_bundle(), path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.parametrize(
    ("umask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)], ids=["022", "027", "077"]
)
def test_a_first_model_file_is_0644_less_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    path = tmp_path / "forecast.json"
    previous = os.umask(umask)
    try:
        save_bundle(_bundle(), path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_saving_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    save_bundle(_bundle(), path)
    save_bundle(_bundle(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.json"]


def test_a_replacement_trained_on_another_step_keeps_the_last_good_forecaster_serving(
    tmp_path: Path, errors: Callable[[], list[str]]
) -> None:
    """A service forecasting from 300 s telemetry keeps its model when the file is replaced by one
    trained on 600 s steps (a ``cotenancy train --step 600`` by mistake): that file cannot serve
    this telemetry, like a damaged one, so it must not stop the service either."""
    u = synthetic_usage(n_vms=4, days=2)
    config = small_config(rounds=3, parallel_trees=1)
    forecaster = HybridForecaster(model_path=tmp_path / "forecast.json")
    forecaster.save(train_forecaster(u.values, u.timestamps, STEP, u.sizes, u.vm_ids, u.classes, config))
    state = make_state(u, upto=500)
    good = forecaster.forecast(state, (1,)).values["cpu"]

    coarse = {r: v[:, ::2] for r, v in u.values.items()}
    forecaster.save(
        train_forecaster(coarse, u.timestamps[::2], 2 * STEP, u.sizes, u.vm_ids, u.classes, config)
    )
    for _ in range(2):
        served = forecaster.forecast(state, (1,))
        assert served.source["cpu"] == "trained"
        np.testing.assert_array_equal(served.values["cpu"], good)
    assert "600 s" in (forecaster.model_problem or "")
    assert len([e for e in errors() if "600 s" in e]) == 1


def test_a_replacement_trained_on_another_step_keeps_the_last_good_risk_model_serving(
    tmp_path: Path, errors: Callable[[], list[str]]
) -> None:
    """The same for the risk model: its features count steps of the telemetry it serves."""
    risk = XGBoostRiskModel(model_path=tmp_path / "risk.json")
    config = RiskTrainingConfig(rounds=5)
    risk.save(train_risk(risk.training_rows(toy_history()), config))
    usage = synthetic_usage(n_vms=4, days=2)
    pairs = np.array([[0, 2], [1, 3]])
    good = risk.score_pairs(make_state(usage, upto=500), pairs)

    risk.save(train_risk(risk.training_rows(toy_history(step=2 * STEP)), config))
    for _ in range(2):
        np.testing.assert_array_equal(risk.score_pairs(make_state(usage, upto=500), pairs), good)
    assert "step_seconds=600" in (risk.model_problem or "")
    assert len([e for e in errors() if "step_seconds=600" in e]) == 1


def test_the_load_log_gives_when_a_model_was_trained_as_a_utc_time():
    assert trained_when({"trained_at": 1_767_225_600.5}) == "2026-01-01T00:00:00Z"
    assert trained_when({}) == trained_when({"trained_at": "yesterday"}) == "at an unknown time"
