"""Two normalisations of what clients send: text must be valid Unicode before anything is
stored, and requested quantile levels are rounded and deduplicated so each names one key."""

from __future__ import annotations

import json

import pytest

from cotenancy.api.predictions import quantile_key, quantile_levels
from cotenancy.store.requests import InvalidRequest, RequestKind, unencodable_field, validate

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vm_id": "db-1\ud800"}, "vm_id"),
        ({"vm_ids": ["a", "b\udfff"]}, "vm_ids[1]"),
        ({"demand": {"cpu": "\ud800"}}, "demand.cpu"),
        ({"demand": {"cpu\ud800": 2}}, "demand"),
        ({"\ud800": 1}, "body"),
        (["ok", "\ud800"], "body[1]"),
        ("\ud800", "body"),
    ],
)
def test_text_that_is_not_valid_unicode_is_found_by_its_field(body: object, field: str) -> None:
    assert unencodable_field(body) == field


def test_valid_text_numbers_and_deep_nesting_have_no_unencodable_field() -> None:
    assert unencodable_field({"vm_id": "db-1 \N{GRINNING FACE}", "n": [1, 2.5, None, True]}) is None
    deep: list = []
    for _ in range(10_000):  # far deeper than Python's recursion limit: the walk is iterative
        deep = [deep]
    assert unencodable_field(deep) is None


def test_the_first_unencodable_text_in_document_order_is_named() -> None:
    assert unencodable_field({"a": "ok", "b": "\ud800", "c": "\udfff"}) == "b"


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (RequestKind.CRITICAL, {"vm_id": "db-1\ud800"}, "vm_id"),
        (RequestKind.DRAIN, {"host_id": "h1", "created_by": "\ud800"}, "created_by"),
        (RequestKind.DRAIN, {"host_id": "h1", "\ud800": 1}, "body"),
    ],
)
def test_validation_refuses_text_that_is_not_valid_unicode(kind: RequestKind, body: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(kind, body, NOW)
    assert caught.value.field == field
    assert "not valid Unicode" in caught.value.message


@pytest.mark.parametrize(
    ("requested", "levels"),
    [
        ([0.5, 0.95], [0.5, 0.95]),
        ([0.5, 0.5000001], [0.5]),
        ([0.1234567], [0.1235]),
        ([0.9, 0.1, 0.9], [0.1, 0.9]),
        ([0.00001, 0.99999], [0.0, 1.0]),
    ],
)
def test_quantile_levels_are_rounded_to_4_decimals_deduplicated_and_sorted(
    requested: list[float], levels: list[float]
) -> None:
    assert quantile_levels(requested) == levels


@pytest.mark.parametrize("level", [0.5, 0.95, 0.1235, 0.0001, 0.9999, 0.3])
def test_a_quantile_key_is_the_level_as_json_writes_it(level: float) -> None:
    assert quantile_key(level) == json.dumps(level)
    assert json.loads(quantile_key(level)) == level
