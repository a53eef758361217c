"""Idempotency keys: the first answer to a POST sent with an ``Idempotency-Key``, so a client that
retries after losing the answer gets that answer back instead of storing the request twice.

Kept in the history store's ``api_idempotency_keys`` table (migration 0006), so a retry reaching
another API process, or one restarted since, is recognised too. The table's key (path, key) makes
racing requests with one key store one request: the loser's insert fails and it reads the winner's
answer. A key is kept for a lifetime (``[api] idempotency_key_lifetime``) and may then be used
again; keys past it are deleted whenever a new one is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cotenancy.exceptions import CotenancyError
from cotenancy.store import schema


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key and the path it was sent to (its scope: one key may serve each path)."""

    scope: str
    value: str


@dataclass(frozen=True, slots=True)
class Remembered:
    """The answer to the first request with a key; ``replayed`` when this request repeated it."""

    request_id: str
    answer: dict[str, Any]
    created_at: float
    replayed: bool


class KeyReused(CotenancyError):
    """A key in its lifetime sent again with another body: a client bug, never a retry."""

    def __init__(self, key: IdempotencyKey, first_used_at: float) -> None:
        self.key = key
        self.first_used_at = first_used_at
        when = dt.datetime.fromtimestamp(first_used_at, dt.UTC).isoformat(timespec="seconds")
        super().__init__(
            f"this Idempotency-Key was used for POST {key.scope} at {when} with a different body; "
            "send a new key for a new request"
        )


def fingerprint(body: object) -> str:
    """Digest of a parsed JSON body: the same request sent again, with its fields in another order
    or other spacing, has the same one."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find(
    connection: sa.Connection, key: IdempotencyKey, digest: str, now: float, lifetime: float
) -> Remembered | None:
    """The answer remembered under ``key`` within its lifetime (replayed), else None;
    :class:`KeyReused` when it was given to another body."""
    t = schema.api_idempotency_keys
    row = (
        connection.execute(
            sa.select(t).where(t.c.scope == key.scope, t.c.key == key.value, t.c.created_at > now - lifetime)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    if row["fingerprint"] != digest:
        raise KeyReused(key, row["created_at"])
    return Remembered(row["request_id"], dict(row["answer"]), row["created_at"], replayed=True)


def remember(
    connection: sa.Connection,
    key: IdempotencyKey,
    digest: str,
    answer: Remembered,
    lifetime: float,
) -> None:
    """Store ``answer`` under ``key``, after deleting the keys past their lifetime (this one's too,
    if it was used that long ago). Raises :class:`sqlalchemy.exc.IntegrityError` when the key is
    taken: another request with it was stored first."""
    t = schema.api_idempotency_keys
    connection.execute(t.delete().where(t.c.created_at <= answer.created_at - lifetime))
    connection.execute(
        t.insert(),
        {
            "scope": key.scope,
            "key": key.value,
            "fingerprint": digest,
            "request_id": answer.request_id,
            "answer": answer.answer,
            "created_at": answer.created_at,
        },
    )
