"""Bodies that are valid JSON text but no good as a request: text that is not valid Unicode and
nesting deeper than the parser goes. Each gets a 400 naming the part at fault and stores nothing;
and a reply the server cannot encode is a logged 500, never a dropped connection."""

from __future__ import annotations

import logging

import pytest
from api_helpers import INTERNAL_ERROR

from cotenancy.store import schema

JSON_HEADERS = {"Content-Type": "application/json"}
NOT_UNICODE = "text is not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text"


@pytest.mark.parametrize(
    ("collection", "raw", "field"),
    [
        ("critical", rb'{"vm_id": "db-1\ud800"}', "vm_id"),
        ("critical", rb'{"vm_id": "db-1", "reason": "\udfff"}', "reason"),
        ("rules", rb'{"type": "anti_affinity", "vm_ids": ["web-1", "web-2"], "name": "x\udfff"}', "name"),
        ("rules", rb'{"type": "affinity", "vm_ids": ["web-1", "web-2\ud800"]}', "vm_ids[1]"),
        ("drains", rb'{"host_id": "h1", "created_by": "\ud800"}', "created_by"),
        ("drains", rb'{"host_id": "h1", "\ud800": 1}', "body"),
        ("hints", rb'{"app_type": "web", "start": 0, "end": 2e9, "demand": {"cpu\ud800": 2}}', "demand"),
        ("hints", rb'{"app_type": "web", "start": 0, "end": 2e9, "demand": {"cpu": "\ud800"}}', "demand.cpu"),
    ],
)
def test_a_body_with_an_unencodable_string_is_refused_and_nothing_is_stored(
    client, collection: str, raw: bytes, field: str
) -> None:
    answer = client.call("POST", f"/v1/{collection}", raw=raw, headers=JSON_HEADERS)
    assert answer.status == 400
    assert answer.error["field"] == field
    assert answer.error["message"] == NOT_UNICODE
    listed = client.get(f"/v1/{collection}?all=true")
    assert listed.status == 200 and listed.json["items"] == []


def test_the_same_text_as_a_valid_surrogate_pair_is_accepted(client) -> None:
    answer = client.call(
        "POST", "/v1/critical", raw=rb'{"vm_id": "db-1", "reason": "\ud83d\ude00"}', headers=JSON_HEADERS
    )
    assert answer.status == 201
    assert answer.json["reason"] == "\N{GRINNING FACE}"
    assert client.get("/v1/critical").json["items"][0]["reason"] == "\N{GRINNING FACE}"


def test_a_body_nested_too_deeply_is_refused_as_invalid_json(client) -> None:
    raw = b'{"host_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert len(raw) < 65536  # well under [api] max_body_bytes: the nesting alone is at fault
    answer = client.call("POST", "/v1/drains", raw=raw, headers=JSON_HEADERS)
    assert answer.status == 400
    assert answer.error["message"] == "not valid JSON: nested too deeply"
    assert answer.error["field"] == "body"
    assert client.get("/v1/drains?all=true").json["items"] == []


def test_a_reply_that_cannot_be_encoded_is_a_logged_500_not_a_dropped_connection(
    client, seeded_store, caplog
) -> None:
    # a row written before bodies were checked, or by another program sharing the store
    with seeded_store.engine.begin() as connection:
        connection.execute(
            schema.api_requests.insert(),
            {
                "id": "legacy",
                "kind": "critical",
                "spec": {"vm_id": "db-1\ud800", "reason": ""},
                "created_at": 0.0,
                "expires_at": None,
                "created_by": "api",
            },
        )
    caplog.set_level(logging.ERROR, logger="cotenancy.api")
    answer = client.get("/v1/critical")
    assert answer.status == 500
    assert answer.error == INTERNAL_ERROR
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert failures, "the operator's log has the failure with its traceback"
    assert "GET /v1/critical failed" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], UnicodeEncodeError)
    assert client.get("/v1/drains").status == 200  # and the server keeps serving
