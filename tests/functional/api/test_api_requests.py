"""Steering allocation over HTTP: hints, rules, drains and critical marks are created, listed,
read, expire and are withdrawn; what the control loop then sees follows them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_helpers import NOW, Answer

from cotenancy.model import Inventory, RuleKind
from cotenancy.store.requests import active_hints, apply_requests


def stored_inventory(store) -> Inventory:
    return Inventory(hosts=store.hosts(), vms=store.vms())


def test_rule_lifecycle_create_read_list_delete(client) -> None:
    created = client.post(
        "/v1/rules",
        {"type": "anti_affinity", "vm_ids": ["web-1", "web-2"], "hard": False, "created_by": "ops-bot"},
    )
    assert created.status == 201
    rule = created.json
    assert created.headers["location"] == f"/v1/rules/{rule['id']}"
    assert rule["kind"] == "rule" and rule["type"] == "anti_affinity"
    assert rule["vm_ids"] == ["web-1", "web-2"] and rule["hard"] is False
    assert rule["created_by"] == "ops-bot" and rule["created_at"] == NOW
    assert rule["active"] is True and rule["unknown"] == []

    assert client.get(created.headers["location"]).json == rule
    assert [r["id"] for r in client.get("/v1/rules").json["items"]] == [rule["id"]]

    deleted = client.delete(created.headers["location"])
    assert deleted.status == 204 and deleted.raw == b""
    assert client.get(created.headers["location"]).status == 404
    assert client.delete(created.headers["location"]).status == 404
    assert client.get("/v1/rules?all=true").json["items"] == []


def test_ids_the_inventory_lacks_are_kept_and_reported(client) -> None:
    rule = client.post("/v1/rules", {"type": "affinity", "vm_ids": ["web-1", "vm-booting"]})
    assert rule.status == 201 and rule.json["unknown"] == ["vm-booting"]
    drain = client.post("/v1/drains", {"host_id": "h9"})
    assert drain.status == 201 and drain.json["unknown"] == ["h9"]
    critical = client.post("/v1/critical", {"vm_id": "db-1", "reason": "payments"})
    assert critical.status == 201 and critical.json["unknown"] == []


def test_a_workload_class_no_vm_has_is_reported_like_an_unknown_id(client) -> None:
    """A hint for app_type "wbe" would scale nothing, silently: the answer lists the class as it
    lists an id the inventory lacks, and the hint is kept for VMs of that class to come."""
    hint = {"start": NOW, "end": NOW + 3600, "demand": {"cpu": 2}}
    typo = client.post("/v1/hints", hint | {"app_type": "wbe"})
    assert typo.status == 201 and typo.json["unknown"] == ["wbe"]
    assert client.get(typo.headers["location"]).json["unknown"] == ["wbe"]
    known = client.post("/v1/hints", hint | {"app_type": "web"})
    assert known.status == 201 and known.json["unknown"] == []


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        ("rules", {"type": "affinity", "vm_ids": ["web-1"]}, "vm_ids"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", "web-1"]}, "vm_ids"),
        ("rules", {"type": "together", "vm_ids": ["web-1", "web-2"]}, "type"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", 7]}, "vm_ids[1]"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", "web-2"], "hard": "yes"}, "hard"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", "web-2"], "weight": 3}, "weight"),
        ("drains", {}, "host_id"),
        ("drains", {"host_id": ""}, "host_id"),
        ("drains", {"host_id": "h1", "expires_at": NOW - 1}, "expires_at"),
        ("drains", {"host_id": "h1", "expires_at": "next week"}, "expires_at"),
        ("critical", {"vm_id": ["db-1"]}, "vm_id"),
        ("hints", {"start": NOW, "end": NOW + 60, "demand": {"cpu": 2}}, "vm_ids"),
        (
            "hints",
            {"vm_ids": ["a"], "app_type": "web", "start": NOW, "end": NOW + 60, "demand": {"cpu": 2}},
            "vm_ids",
        ),
        ("hints", {"app_type": "web", "end": NOW + 60, "demand": {"cpu": 2}}, "start"),
        ("hints", {"app_type": "web", "start": NOW + 60, "end": NOW, "demand": {"cpu": 2}}, "end"),
        ("hints", {"app_type": "web", "start": NOW - 120, "end": NOW - 60, "demand": {"cpu": 2}}, "end"),
        ("hints", {"app_type": "web", "start": NOW, "end": NOW + 60, "demand": {"cpus": 2}}, "demand.cpus"),
        ("hints", {"app_type": "web", "start": NOW, "end": NOW + 60, "demand": {"cpu": 150}}, "demand.cpu"),
        ("hints", {"app_type": "web", "start": NOW, "end": NOW + 60, "demand": {"cpu": "2"}}, "demand.cpu"),
        ("hints", {"app_type": "web", "start": NOW, "end": NOW + 60, "demand": {}}, "demand"),
        ("hints", {"app_type": "web", "start": True, "end": NOW + 60, "demand": {"cpu": 2}}, "start"),
    ],
)
def test_invalid_requests_name_the_wrong_field(client, collection: str, body: dict, field: str) -> None:
    answer = client.post(f"/v1/{collection}", body)
    assert answer.status == 400, answer.json
    assert answer.error["field"] == field
    assert client.get(f"/v1/{collection}?all=true").json["items"] == []


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        ("drains", {"host_id": "h1", "expires_at": (NOW + 3600) * 1000}, "expires_at"),
        ("critical", {"vm_id": "db-1", "expires_at": int(NOW + 3600) * 1000}, "expires_at"),
        ("hints", {"app_type": "web", "start": NOW * 1000, "end": NOW + 60, "demand": {"cpu": 2}}, "start"),
        ("hints", {"app_type": "web", "start": NOW, "end": (NOW + 60) * 1000, "demand": {"cpu": 2}}, "end"),
    ],
)
def test_a_time_in_milliseconds_is_refused_saying_so_and_nothing_is_stored(
    client, collection: str, body: dict, field: str
) -> None:
    answer = client.post(f"/v1/{collection}", body)
    assert answer.status == 400, answer.json
    assert answer.error["field"] == field
    assert "looks like milliseconds" in answer.error["message"]
    assert client.get(f"/v1/{collection}?all=true").json["items"] == []


def test_a_query_time_in_milliseconds_is_refused_saying_so(client) -> None:
    answer = client.get(f"/v1/events?since={int(NOW) * 1000}")
    assert answer.status == 400, answer.json
    assert answer.error["field"] == "since"
    assert "looks like milliseconds" in answer.error["message"]


def test_expired_requests_stop_counting_but_stay_listed_on_request(client, clock, seeded_store) -> None:
    drain = client.post("/v1/drains", {"host_id": "h1", "expires_at": NOW + 60, "reason": "firmware"}).json
    assert drain["expires_at"] == NOW + 60
    assert client.get("/v1/hosts/h1").json["drain_requested"] is True
    assert apply_requests(seeded_store, stored_inventory(seeded_store), clock()).hosts["h1"].maintenance

    clock.now = NOW + 61
    assert client.get("/v1/drains").json["items"] == []
    (listed,) = client.get("/v1/drains?all=true").json["items"]
    assert listed["id"] == drain["id"] and listed["active"] is False
    assert client.get("/v1/hosts/h1").json["drain_requested"] is False
    assert not apply_requests(seeded_store, stored_inventory(seeded_store), clock()).hosts["h1"].maintenance
    # once expired, the host may be drained again
    assert client.post("/v1/drains", {"host_id": "h1"}).status == 201


def test_a_second_drain_of_one_host_is_a_conflict(client) -> None:
    first = client.post("/v1/drains", {"host_id": "h2"}).json
    second = client.post("/v1/drains", {"host_id": "h2"})
    assert second.status == 409
    assert second.error["existing_id"] == first["id"]
    assert client.post("/v1/critical", {"vm_id": "db-1"}).status == 201
    assert client.post("/v1/critical", {"vm_id": "db-1"}).status == 409


def test_simultaneous_drains_of_one_host_create_one_and_withdrawing_it_undrains_the_host(client) -> None:
    barrier = threading.Barrier(8)

    def drain(_: int) -> Answer:
        barrier.wait(timeout=30)
        return client.post("/v1/drains", {"host_id": "h1"})

    for _ in range(5):
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(drain, range(8)))
        created = [a.json for a in answers if a.status == 201]
        assert len(created) == 1, f"{len(created)} of 8 simultaneous drains of h1 created"
        assert sorted(a.status for a in answers) == [201] + [409] * 7
        assert {a.error["existing_id"] for a in answers if a.status == 409} == {created[0]["id"]}
        assert client.delete(f"/v1/drains/{created[0]['id']}").status == 204
        assert client.get("/v1/hosts/h1").json["drain_requested"] is False


def test_the_control_loop_sees_what_was_requested(client, clock, seeded_store) -> None:
    client.post("/v1/drains", {"host_id": "h1"})
    client.post("/v1/critical", {"vm_id": "db-1"})
    client.post("/v1/rules", {"type": "anti_affinity", "vm_ids": ["web-1", "web-2"], "name": "spread-web"})
    client.post(
        "/v1/hints",
        {"app_type": "web", "start": "2023-11-15T00:00:00Z", "end": NOW + 7200, "demand": {"cpu": 1.5}},
    )
    before = stored_inventory(seeded_store)
    after = apply_requests(seeded_store, before, clock())
    assert after.hosts["h1"].maintenance and not after.hosts["h2"].maintenance
    assert after.vms["db-1"].critical and not after.vms["web-1"].critical
    (rule,) = after.rules
    assert rule.name == "spread-web" and rule.kind is RuleKind.ANTI_AFFINITY and rule.hard
    assert rule.vm_ids == frozenset({"web-1", "web-2"})
    assert not before.hosts["h1"].maintenance and before.rules == []  # the input is left alone
    hints = active_hints(seeded_store, clock())
    assert sorted(h.vms for h in hints) == ["web-1", "web-2"]
    assert {(h.resource, h.factor) for h in hints} == {("cpu", 1.5)}

    critical_vm = client.get("/v1/vms/db-1").json
    assert critical_vm["critical"] is False and critical_vm["critical_requested"] is True


def test_concurrent_clients_are_served_and_every_write_is_kept(client) -> None:
    def work(i: int) -> tuple[int, int]:
        created = client.post("/v1/rules", {"type": "affinity", "vm_ids": [f"v{i}", f"w{i}"]})
        return created.status, client.get("/v1/vms").status

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(24)))
    assert results == [(201, 200)] * 24
    assert len(client.get("/v1/rules").json["items"]) == 24
