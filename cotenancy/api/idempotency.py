"""The ``Idempotency-Key`` request header (IETF httpapi draft "The Idempotency-Key HTTP Header
Field", as Stripe's API uses it): its syntax. What a key does is :mod:`cotenancy.store.idempotency`.
"""

from __future__ import annotations

import re

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: what a key may hold: printable ASCII, so it cannot forge a log line nor differ by encoding
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
#: the draft's form, a Structured Field string (RFC 8941): quoted, with \\ and \" escapes
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
SYNTAX = (
    f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (U+0020-U+007E), "
    'bare or quoted as a structured-field string ("key"); a random UUID is a good key'
)


def parse_key(values: list[str]) -> str | None:
    """The key of a request's ``Idempotency-Key`` header values, None without the header;
    :class:`ValueError` saying why when it is given twice or malformed."""
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"give {HEADER} once")
    # surrounding spaces and tabs are not part of a field value (RFC 9110, 5.5)
    value = values[0].strip(" \t")
    quoted = _SF_STRING.fullmatch(value)
    if quoted is not None:
        value = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif value.startswith('"'):
        raise ValueError(SYNTAX)
    if not _PRINTABLE.fullmatch(value) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ValueError(SYNTAX)
    return value
