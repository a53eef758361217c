"""The ``Idempotency-Key`` header's syntax: a bare key or a structured-field string."""

from __future__ import annotations

import pytest

from cotenancy.api.idempotency import parse_key
from cotenancy.store.idempotency import fingerprint


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ([], None),
        (["8e03978e-40d5"], "8e03978e-40d5"),
        (['"8e03978e-40d5"'], "8e03978e-40d5"),
        (['"say \\"hi\\" \\\\ bye"'], 'say "hi" \\ bye'),
        ([" \tpadded\t "], "padded"),
        (["inner space"], "inner space"),
    ],
)
def test_a_key_is_read_bare_or_quoted(values: list[str], key: str | None) -> None:
    assert parse_key(values) == key


@pytest.mark.parametrize(
    "values",
    [[""], ["   "], ['"   "'], ['"a"b"'], ['"a\\x"'], ["a\nb"], ["\u2028"], ["k" * 256], ["a", "a"]],
)
def test_a_malformed_key_says_what_a_key_is(values: list[str]) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        parse_key(values)


def test_a_body_has_one_fingerprint_whatever_its_field_order() -> None:
    assert fingerprint({"a": 1, "b": [1, "x"]}) == fingerprint({"b": [1, "x"], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
