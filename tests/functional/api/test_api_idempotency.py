"""A POST with an ``Idempotency-Key`` header is carried out once: a client that retries after a
timeout (the request was stored, the answer lost) gets the first answer back and nothing new is
stored; the same key with another body is refused; malformed keys are refused."""

from __future__ import annotations

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_helpers import NOW, Answer

KEY = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
BODIES = {
    "hints": {"vm_ids": ["web-1"], "start": NOW, "end": NOW + 3600, "demand": {"cpu": 2.0}},
    "rules": {"type": "anti_affinity", "vm_ids": ["web-1", "web-2"], "name": "apart"},
    "drains": {"host_id": "h2", "reason": "BIOS update", "expires_at": NOW + 3600},
    "critical": {"vm_id": "db-1", "created_by": "jdoe"},
}
DAY = 86400.0


def keyed(key: str = KEY) -> dict[str, str]:
    return {"Idempotency-Key": key}


def stored(client, collection: str) -> list[dict]:
    return client.get(f"/v1/{collection}?all=true").json["items"]


@pytest.mark.parametrize("collection", sorted(BODIES))
def test_a_retried_post_with_the_same_key_gets_the_first_answer_and_stores_nothing_new(
    client, clock, collection: str
) -> None:
    first = client.post(f"/v1/{collection}", BODIES[collection], headers=keyed())
    assert first.status == 201, first.raw
    assert "idempotent-replayed" not in first.headers
    clock.now = NOW + 30
    again = client.post(f"/v1/{collection}", BODIES[collection], headers=keyed())
    assert again.status == 201, again.raw
    assert again.json == first.json
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [r["id"] for r in stored(client, collection)] == [first.json["id"]]


def test_a_retried_drain_is_its_first_answer_not_a_conflict_with_itself(client) -> None:
    first = client.post("/v1/drains", {"host_id": "h1"}, headers=keyed())
    again = client.post("/v1/drains", {"host_id": "h1"}, headers=keyed())
    assert (first.status, again.status) == (201, 201)
    assert again.json["id"] == first.json["id"]
    # without the key the same body is a second drain of the host
    assert client.post("/v1/drains", {"host_id": "h1"}).status == 409


def test_a_retry_is_recognised_once_the_body_would_no_longer_be_accepted(client, clock) -> None:
    """The first answer is given back before validation: a hint whose end has passed since, or a
    request withdrawn since, is not refused nor created again."""
    hint = {"app_type": "web", "start": NOW, "end": NOW + 60, "demand": {"cpu": 2}}
    first = client.post("/v1/hints", hint, headers=keyed())
    assert client.delete(first.headers["location"]).status == 204
    clock.now = NOW + 120
    again = client.post("/v1/hints", hint, headers=keyed())
    assert again.status == 201 and again.json == first.json
    assert stored(client, "hints") == []


def test_the_same_key_with_another_body_is_refused_naming_the_key(client) -> None:
    first = client.post("/v1/rules", BODIES["rules"], headers=keyed())
    other = client.post("/v1/rules", BODIES["rules"] | {"hard": False}, headers=keyed())
    assert other.status == 422, other.raw
    assert other.error["field"] == "Idempotency-Key"
    assert "different body" in other.error["message"]
    assert [r["id"] for r in stored(client, "rules")] == [first.json["id"]]


def test_the_same_body_in_another_key_order_and_spacing_is_the_same_request(client) -> None:
    first = client.post("/v1/critical", {"vm_id": "db-1", "reason": "payments"}, headers=keyed())
    again = client.call(
        "POST",
        "/v1/critical",
        raw=b'{ "reason" : "payments",\n "vm_id": "db-1" }',
        headers=keyed() | {"Content-Type": "application/json"},
    )
    assert again.status == 201 and again.json["id"] == first.json["id"]


def test_a_key_belongs_to_the_path_it_was_sent_to(client) -> None:
    rule = client.post("/v1/rules", BODIES["rules"], headers=keyed())
    drain = client.post("/v1/drains", BODIES["drains"], headers=keyed())
    assert (rule.status, drain.status) == (201, 201)
    assert len(stored(client, "rules")) == 1 and len(stored(client, "drains")) == 1


def test_a_key_is_kept_for_its_lifetime_and_may_then_be_used_again(client, clock) -> None:
    first = client.post("/v1/rules", BODIES["rules"], headers=keyed())
    clock.now = NOW + DAY - 1
    assert client.post("/v1/rules", BODIES["rules"], headers=keyed()).json["id"] == first.json["id"]
    clock.now = NOW + DAY
    later = client.post("/v1/rules", BODIES["rules"] | {"name": "again"}, headers=keyed())
    assert later.status == 201 and later.json["id"] != first.json["id"]
    assert "idempotent-replayed" not in later.headers
    assert len(stored(client, "rules")) == 2


def test_the_lifetime_of_keys_is_configurable(start_server, clock) -> None:
    client = start_server(idempotency_key_lifetime=600)
    first = client.post("/v1/rules", BODIES["rules"], headers=keyed())
    clock.now = NOW + 600
    assert client.post("/v1/rules", BODIES["rules"], headers=keyed()).json["id"] != first.json["id"]


def test_a_refused_request_does_not_use_up_its_key(client) -> None:
    refused = client.post("/v1/rules", {"type": "affinity", "vm_ids": ["web-1"]}, headers=keyed())
    assert refused.status == 400
    assert client.post("/v1/drains", {"host_id": "h1"}).status == 201
    conflict = client.post("/v1/drains", {"host_id": "h1"}, headers=keyed())
    assert conflict.status == 409
    assert client.post("/v1/rules", BODIES["rules"], headers=keyed()).status == 201


def test_a_retry_reaching_another_api_server_on_the_store_is_recognised(start_server) -> None:
    first = start_server().post("/v1/rules", BODIES["rules"], headers=keyed())
    again = start_server().post("/v1/rules", BODIES["rules"], headers=keyed())
    assert again.status == 201 and again.json == first.json
    assert again.headers["idempotent-replayed"] == "true"


def _drain_h1_at_once(client, key: str, racers: int) -> list[Answer]:
    """What ``racers`` clients sending one keyed drain at the same moment were answered."""
    barrier = threading.Barrier(racers)

    def post(_: int) -> Answer:
        barrier.wait(timeout=30)
        return client.post("/v1/drains", {"host_id": "h1"}, headers=keyed(key))

    with ThreadPoolExecutor(max_workers=racers) as pool:
        return list(pool.map(post, range(racers)))


def test_simultaneous_requests_with_one_key_store_one_and_all_get_its_answer(client) -> None:
    for round_ in range(5):
        answers = _drain_h1_at_once(client, f"race-{round_}", 8)
        assert [a.status for a in answers] == [201] * 8, [a.raw for a in answers]
        assert len({a.json["id"] for a in answers}) == 1
        assert sum("idempotent-replayed" in a.headers for a in answers) == 7
        (drain,) = stored(client, "drains")
        assert client.delete(f"/v1/drains/{drain['id']}").status == 204


def test_posts_without_a_key_are_each_stored(client) -> None:
    assert client.post("/v1/rules", BODIES["rules"]).status == 201
    assert client.post("/v1/rules", BODIES["rules"]).status == 201
    assert len(stored(client, "rules")) == 2


def test_a_quoted_key_as_the_ietf_draft_writes_it_is_the_same_key(client) -> None:
    first = client.post("/v1/rules", BODIES["rules"], headers=keyed(f'"{KEY}"'))
    again = client.post("/v1/rules", BODIES["rules"], headers=keyed(KEY))
    assert again.json["id"] == first.json["id"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param('""', id="empty-quoted"),
        pytest.param("k" * 256, id="too-long"),
        pytest.param("a\x01b", id="control-character"),
        pytest.param("a\x7fb", id="delete"),
        pytest.param("a\tb", id="tab"),
        pytest.param("cl\xe9", id="not-ascii"),
        pytest.param('"open', id="unterminated-quote"),
    ],
)
def test_a_malformed_key_is_refused_and_nothing_is_stored(client, key: str) -> None:
    answer = client.post("/v1/rules", BODIES["rules"], headers=keyed(key))
    assert answer.status == 400, answer.raw
    assert answer.error["field"] == "Idempotency-Key"
    assert stored(client, "rules") == []


def test_a_key_given_twice_is_refused(client) -> None:
    host, port = client.server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    body = b'{"host_id": "h1"}'
    try:
        connection.putrequest("POST", "/v1/drains")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Idempotency-Key", "one")
        connection.putheader("Idempotency-Key", "two")
        connection.endheaders(body)
        response = connection.getresponse()
        assert response.status == 400
        assert b"Idempotency-Key" in response.read()
    finally:
        connection.close()
    assert stored(client, "drains") == []


def test_a_key_of_255_printable_characters_is_accepted(client) -> None:
    key = ("aZ09 !~" * 40)[:255]
    first = client.post("/v1/rules", BODIES["rules"], headers=keyed(key))
    again = client.post("/v1/rules", BODIES["rules"], headers=keyed(key))
    assert first.status == 201 and again.json["id"] == first.json["id"]
