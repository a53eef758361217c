"""Reading inventory, plans and events over HTTP: what the store holds comes back as JSON."""

from __future__ import annotations

import threading

from api_helpers import NOW, T0, Client

from cotenancy.api import make_server
from cotenancy.model import Inventory


def test_version_document_lists_the_routes(client) -> None:
    answer = client.get("/v1")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["version"] == "v1"
    assert "/v1/predictions/pairs" in answer.json["links"]
    assert client.get("/v1/").status == 200


def test_hosts_and_vms_are_the_last_known_inventory(client) -> None:
    hosts = client.get("/v1/hosts").json["hosts"]
    assert [h["id"] for h in hosts] == ["h1", "h2"]
    assert hosts[0]["capacity"]["cpu"] == 8000.0
    assert hosts[0]["drain_requested"] is False

    vms = client.get("/v1/vms").json["vms"]
    assert {v["id"] for v in vms} == {"web-1", "web-2", "batch-1", "db-1", "idle-1"}
    on_h2 = client.get("/v1/vms?host_id=h2").json["vms"]
    assert {v["id"] for v in on_h2} == {"db-1", "idle-1"}

    vm = client.get("/v1/vms/web-1").json
    assert vm["host_id"] == "h1"
    assert vm["workload"]["app_type"] == "web"
    assert vm["size"]["memory"] == 4096.0
    assert client.get("/v1/hosts/h2").json["name"] == "host-2"


def test_a_vm_deleted_from_the_cloud_is_neither_listed_nor_scored(client, seeded_store) -> None:
    """The last inventory is the cloud now; the store keeps the deleted VM's record for training."""
    still_there = {k: v for k, v in seeded_store.vms().items() if k != "web-2"}
    seeded_store.upsert_inventory(Inventory(hosts=seeded_store.hosts(), vms=still_there), NOW)

    assert "web-2" not in {v["id"] for v in client.get("/v1/vms").json["vms"]}
    assert client.get("/v1/vms/web-2").status == 404
    pairs = client.get("/v1/predictions/pairs").json
    assert pairs["pairs_scored"] == 2  # web-1 with batch-1 on h1, db-1 with idle-1 on h2
    assert all("web-2" not in p["vm_ids"] for p in pairs["pairs"])
    assert "web-2" in seeded_store.vms()


def test_unknown_ids_are_404_naming_the_parameter(client) -> None:
    for path, field in [
        ("/v1/vms/nope", "vm_id"),
        ("/v1/hosts/nope", "host_id"),
        ("/v1/plans/nope", "plan_id"),
        ("/v1/rules/nope", "request_id"),
    ]:
        answer = client.get(path)
        assert answer.status == 404, path
        assert answer.error["field"] == field


def test_plans_newest_first_with_steps_reasons_benefit_and_status(client) -> None:
    plans = client.get("/v1/plans").json["plans"]
    assert [p["id"] for p in plans] == ["plan-new", "plan-old"]
    assert plans[0]["status"] == "empty"
    assert plans[1] == {
        "id": "plan-old",
        "strategy": "predictive",
        "created_at": T0 + 600,
        "status": "done",
        "steps": 1,
        "expected_benefit": 0.6,
        "stats": {},
    }
    assert [p["id"] for p in client.get("/v1/plans?limit=1").json["plans"]] == ["plan-new"]

    plan = client.get("/v1/plans/plan-old").json
    assert plan["status"] == "done"
    (step,) = plan["actions"]
    assert step["kind"] == "live_migrate"
    assert step["source_host_id"] == "h1" and step["target_host_id"] == "h2"
    assert step["reason"] == "pair web-1/batch-1 risk 0.81 within 30 min"
    assert step["expected_benefit"] == 0.6
    assert step["status"] == "succeeded"


def test_events_by_kind_and_time(client) -> None:
    answer = client.get("/v1/events")
    assert answer.status == 200
    assert [e["kind"] for e in answer.json["events"]] == ["degradation", "anomaly", "migration"]
    assert answer.json["truncated"] is False

    kinds = client.get("/v1/events?kind=degradation,anomaly").json["events"]
    assert [e["message"] for e in kinds] == ["web-1 starved", "db-1 spiked"]
    repeated = client.get("/v1/events?kind=degradation&kind=anomaly").json["events"]
    assert repeated == kinds

    later = client.get(f"/v1/events?since={T0 + 3700}").json["events"]
    assert [e["kind"] for e in later] == ["anomaly", "migration"]
    # T0 + 3700 .. T0 + 4800 in ISO 8601
    iso = client.get("/v1/events?since=2023-11-14T23:15:00Z&until=2023-11-14T23:33:20%2B00:00").json["events"]
    assert [e["kind"] for e in iso] == ["anomaly"]
    limited = client.get("/v1/events?limit=1")
    assert limited.json["truncated"] is True and len(limited.json["events"]) == 1
    assert client.get(f"/v1/events?until={NOW}&vm_id=db-1").json["events"][0]["vm_ids"] == ["db-1"]


def test_the_default_window_of_events_follows_a_store_fed_by_a_simulated_clock(
    api_conf_obj, seeded_store
) -> None:
    """The simulated driver stamps samples and events with its own clock (years before the wall
    clock): the last day of events is the day before the newest sample, as for predictions, so
    ?kind=anomaly lists what the loop flagged. The server runs on the real clock, as the product."""
    server = make_server(api_conf_obj, seeded_store, listen="127.0.0.1:0")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = Client(server)
        anomalies = client.get("/v1/events?kind=anomaly").json["events"]
        assert [e["message"] for e in anomalies] == ["db-1 spiked"]
        assert len(client.get("/v1/events").json["events"]) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_events_reject_unknown_kind_and_bad_times(client) -> None:
    answer = client.get("/v1/events?kind=explosion")
    assert answer.status == 400 and answer.error["field"] == "kind"
    answer = client.get("/v1/events?since=yesterday")
    assert answer.status == 400 and answer.error["field"] == "since"
    answer = client.get("/v1/events?limit=0")
    assert answer.status == 400 and answer.error["field"] == "limit"


def test_swapped_time_bounds_are_refused_not_answered_with_no_events(client) -> None:
    answer = client.get(f"/v1/events?since={T0 + 60}&until={T0}")
    assert answer.status == 400 and answer.error["field"] == "since"
    assert client.get(f"/v1/events?since={T0}&until={T0}").status == 200


def test_an_empty_kind_filter_is_refused_not_read_as_every_kind(client) -> None:
    """A client joining an empty list of kinds must not get every event instead of none."""
    for query in ("kind=", "kind=,", "kind=,,&kind="):
        answer = client.get(f"/v1/events?since={T0}&{query}")
        assert answer.status == 400, query
        assert answer.error["field"] == "kind"
    assert client.get(f"/v1/events?since={T0}&kind=anomaly,").json["events"][0]["kind"] == "anomaly"
