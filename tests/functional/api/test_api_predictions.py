"""Predictions on demand from the store: pair risks with their reasons, demand forecasts that
follow the hints requested through the API."""

from __future__ import annotations

import json

import numpy as np
from api_helpers import NOW, STEP

from cotenancy.model import Inventory, VMState

FORECAST_ORIGIN = NOW - STEP  # the last interval with samples


def test_pairs_sharing_a_host_are_scored_highest_risk_first_with_reasons(client) -> None:
    answer = client.get("/v1/predictions/pairs")
    assert answer.status == 200
    body = answer.json
    assert body["at"] == NOW
    assert body["trained"] is False  # no model file: the labelled cold-start heuristic serves
    assert body["horizon_seconds"] == 1800.0
    # h1 holds web-1, web-2, batch-1 (3 pairs); h2 holds db-1, idle-1 (1 pair)
    assert body["pairs_scored"] == 4
    pairs = body["pairs"]
    risks = [p["risk"] for p in pairs]
    assert risks == sorted(risks, reverse=True)
    assert all(0.0 <= r <= 1.0 for r in risks)
    hot = [p for p in pairs if p["host_id"] == "h1"]
    quiet = [p for p in pairs if p["host_id"] == "h2"]
    assert len(hot) == 3 and len(quiet) == 1
    assert min(p["risk"] for p in hot) > quiet[0]["risk"]  # the hot host's pairs rank above
    for pair in pairs:
        assert pair["explanation"], pair
        assert {"feature", "contribution"} == set(pair["explanation"][0])
    assert pairs[0]["explanation"][0]["feature"] == "host_demand"


def test_pairs_of_one_vm_and_limit(client) -> None:
    pairs = client.get("/v1/predictions/pairs?vm_id=db-1").json["pairs"]
    assert [p["vm_ids"] for p in pairs] == [["db-1", "idle-1"]]
    assert len(client.get("/v1/predictions/pairs?limit=2").json["pairs"]) == 2
    too_many = client.get("/v1/predictions/pairs?limit=201")
    assert too_many.status == 400 and too_many.error["field"] == "limit"
    missing = client.get("/v1/predictions/pairs?vm_id=ghost")
    assert missing.status == 404 and missing.error["field"] == "vm_id"


def test_a_vm_migrating_between_hosts_is_paired_on_its_source_and_on_the_host_it_lands_on(
    client, seeded_store
) -> None:
    """As the planner counts it: until the move ends the VM weighs on both hosts."""
    inventory = Inventory(hosts=seeded_store.hosts(), vms=seeded_store.vms())
    moving = inventory.vms["db-1"]
    moving.state, moving.migration_target = VMState.MIGRATING, "h1"
    seeded_store.upsert_inventory(inventory, NOW)

    body = client.get("/v1/predictions/pairs?vm_id=db-1").json

    assert body["pairs_scored"] == 4
    where = {tuple(p["vm_ids"]): p["host_id"] for p in body["pairs"]}
    assert where == {
        ("db-1", "idle-1"): "h2",
        ("batch-1", "db-1"): "h1",
        ("db-1", "web-1"): "h1",
        ("db-1", "web-2"): "h1",
    }
    risk = {tuple(p["vm_ids"]): p["risk"] for p in body["pairs"]}
    # scored for the host it lands on, with it added: the hot host's pairs rank above
    assert min(risk[pair] for pair, host in where.items() if host == "h1") > risk[("db-1", "idle-1")]
    shown = client.get("/v1/vms/db-1").json
    assert (shown["state"], shown["host_id"], shown["migration_target"]) == ("migrating", "h2", "h1")


def test_forecast_of_one_vm_per_interval_and_quantile(client) -> None:
    answer = client.get("/v1/predictions/forecast/web-1?horizon=3&quantiles=0.1,0.5,0.9")
    assert answer.status == 200
    body = answer.json
    assert body["vm_id"] == "web-1"
    assert body["origin"] == FORECAST_ORIGIN and body["step_seconds"] == STEP
    assert body["quantiles"] == [0.1, 0.5, 0.9]
    assert body["source"]["cpu"] == "fallback"
    assert [p["horizon"] for p in body["points"]] == [1, 2, 3]
    assert [p["time"] for p in body["points"]] == [FORECAST_ORIGIN + STEP * h for h in (1, 2, 3)]
    for point in body["points"]:
        cpu = point["cpu"]
        assert set(cpu) == {"0.1", "0.5", "0.9"}
        assert cpu["0.1"] <= cpu["0.5"] <= cpu["0.9"]
        assert 2000.0 < cpu["0.5"] < 3000.0  # web-1 ran at 2600..2715 MHz


def test_a_hint_requested_through_the_api_scales_the_forecast_while_it_lasts(client) -> None:
    before = client.get("/v1/predictions/forecast/web-1?horizon=4").json["points"]
    hint = client.post(
        "/v1/hints",
        {
            "vm_ids": ["web-1"],
            "start": FORECAST_ORIGIN + 2 * STEP,
            "end": FORECAST_ORIGIN + 3.5 * STEP,
            "demand": {"cpu": 2.0},
            "name": "black-friday",
        },
    )
    assert hint.status == 201
    after = client.get("/v1/predictions/forecast/web-1?horizon=4").json
    assert "black-friday" in after["source"]["hints"]
    factors = [a["cpu"]["0.95"] / b["cpu"]["0.95"] for a, b in zip(after["points"], before, strict=True)]
    assert factors == [1.0, 2.0, 2.0, 1.0]
    assert [a["memory"] for a in after["points"]] == [b["memory"] for b in before]
    # another VM is untouched
    other = client.get("/v1/predictions/forecast/web-2?horizon=4").json
    assert "hints" not in other["source"]

    client.delete(hint.headers["location"])
    again = client.get("/v1/predictions/forecast/web-1?horizon=4").json["points"]
    assert again == before


def test_forecast_rejects_bad_parameters(client) -> None:
    for query, field in [
        ("horizon=0", "horizon"),
        ("horizon=100000", "horizon"),
        ("quantiles=0.5,1.5", "quantiles"),
        ("quantiles=median", "quantiles"),
        ("at=soon", "at"),
    ]:
        answer = client.get(f"/v1/predictions/forecast/web-1?{query}")
        assert answer.status == 400, query
        assert answer.error["field"] == field
    missing = client.get("/v1/predictions/forecast/ghost")
    assert missing.status == 404 and missing.error["field"] == "vm_id"


def test_forecast_values_are_keyed_by_exactly_the_levels_listed_in_quantiles(client) -> None:
    for query, levels in [
        ("0.5,0.5000001", [0.5]),  # levels that round alike are one level, not two under one key
        ("0.1234567", [0.1235]),
        ("0.95,0.05,0.95", [0.05, 0.95]),
    ]:
        answer = client.get(f"/v1/predictions/forecast/web-1?horizon=2&quantiles={query}")
        assert answer.status == 200, query
        body = answer.json
        assert body["quantiles"] == levels, query
        keys = [json.dumps(level) for level in body["quantiles"]]
        for point in body["points"]:
            per_resource = {k: v for k, v in point.items() if k not in ("horizon", "time")}
            assert "cpu" in per_resource
            for resource, values in per_resource.items():
                assert list(values) == keys, (query, resource)


def test_forecast_refuses_levels_that_round_to_0_or_1(client) -> None:
    for query in ("quantiles=0.00001", "quantiles=0.5,0.99999"):
        answer = client.get(f"/v1/predictions/forecast/web-1?{query}")
        assert answer.status == 400, query
        assert answer.error["field"] == "quantiles"


def test_a_damaged_model_file_with_no_good_model_before_it_is_a_503_saying_why(
    start_server, api_conf_obj, tmp_path
) -> None:
    models = tmp_path / "state" / "models"
    models.mkdir(parents=True)
    for name in ("risk.json", "forecast.json"):
        (models / name).write_bytes(b"\x80 not a model")
    client = start_server()
    for route in ("/v1/predictions/pairs", "/v1/predictions/forecast/web-1"):
        answer = client.get(route)
        assert answer.status == 503, route
        assert answer.error["field"] == "model"
        assert answer.error["message"].startswith("the model cannot be served: ")
        assert str(models) in answer.error["message"]


def test_answers_say_there_is_no_model_problem_when_the_model_serves(client) -> None:
    assert client.get("/v1/predictions/pairs").json["model_problem"] is None
    assert client.get("/v1/predictions/forecast/web-1").json["model_problem"] is None


def test_a_trained_model_sees_recent_migrations_in_the_api_as_in_the_control_loop(
    client, api_conf_obj
) -> None:
    """The loop hands the risk model migration events as well as degradations (placement churn
    features); the API's pair risks must come from the same history. A model trained so that a
    pair with a VM moved in the last hour conflicts scores db-1/idle-1 (idle-1 moved half an hour
    before the newest sample) high and the pairs of h1, where nothing moved, low."""
    from cotenancy import loading
    from cotenancy.predict import features as feats
    from cotenancy.predict.history import PairDataset
    from cotenancy.predict.risk import RiskTrainingConfig, train_risk

    risk = loading.load_plugin(loading.RISK_MODELS, "xgboost", api_conf_obj)
    rng = np.random.default_rng(0)
    rows = 4000
    x = rng.uniform(0.0, 300.0, (rows, len(feats.PAIR_FEATURES)))
    since = feats.PAIR_FEATURES.index("pair_since_migration_min")
    x[:, since] = rng.choice([0.0, 5.0, 7.0, 10.0, 288.0], rows)
    dataset = PairDataset(
        x=x,
        y=(x[:, since] <= 12).astype(np.int8),
        step=np.arange(rows) // 10,
        keys=np.zeros(rows, dtype=np.int64),
        host_used=np.zeros(rows),
        host_lr=np.zeros(rows),
        telemetry=risk.telemetry_shape(STEP),
    )
    risk.save(train_risk(dataset, RiskTrainingConfig(rounds=20)))

    body = client.get("/v1/predictions/pairs").json
    assert body["trained"] is True and body["model_problem"] is None
    by_pair = {tuple(p["vm_ids"]): p["risk"] for p in body["pairs"]}
    assert by_pair[("db-1", "idle-1")] > 0.9
    assert max(r for pair, r in by_pair.items() if pair != ("db-1", "idle-1")) < 0.1
