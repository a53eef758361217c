"""Small pieces of the API: time parsing, request validation, plan status, listen addresses."""

from __future__ import annotations

import fnmatch

import pytest

from cotenancy.api.server import is_loopback, parse_listen, plan_status
from cotenancy.exceptions import ConfigurationError
from cotenancy.model import ActionKind, ActionPlan, StepStatus
from cotenancy.store.requests import (
    MAX_POSIX_SECONDS,
    InvalidRequest,
    Request,
    RequestKind,
    hints_of,
    parse_time,
    validate,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1_800_000_000, 1_800_000_000.0),
        (1_800_000_000.5, 1_800_000_000.5),
        ("2027-01-15T08:00:00Z", NOW),
        ("2027-01-15T08:00:00", NOW),  # no zone: UTC
        ("2027-01-15T09:30:00+01:30", NOW),
        ("2027-01-15 08:00", NOW),
    ],
)
def test_times_are_posix_seconds_or_iso_8601(given: object, expected: float) -> None:
    assert parse_time(given, "start") == expected


@pytest.mark.parametrize("given", [True, None, [1], "tomorrow", "", float("nan"), float("inf"), 10**400])
def test_other_times_are_refused_naming_the_field(given: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_time(given, "end")
    assert caught.value.field == "end"


@pytest.mark.parametrize("given", [1_800_000_000_000, 1_800_000_000_000.5, MAX_POSIX_SECONDS + 1])
def test_a_posix_time_after_the_year_3000_is_refused_as_milliseconds(given: float) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_time(given, "expires_at")
    assert caught.value.field == "expires_at"
    assert "milliseconds" in caught.value.message


def test_posix_times_up_to_the_year_3000_are_seconds() -> None:
    assert (
        parse_time(MAX_POSIX_SECONDS, "end") == 32_503_680_000.0 == parse_time("3000-01-01T00:00:00Z", "end")
    )


def test_validation_normalises_and_keeps_common_fields_apart() -> None:
    spec, expires_at, created_by = validate(
        RequestKind.RULE,
        {"type": "affinity", "vm_ids": ["b", "a", "b"], "expires_at": "2027-01-16T08:00:00Z"},
        NOW,
    )
    assert spec == {"type": "affinity", "vm_ids": ["b", "a"], "hard": True, "name": ""}
    assert expires_at == NOW + 86400 and created_by == "api"


def test_a_demand_multiplier_too_large_for_a_float_is_refused_naming_it() -> None:
    body = {"vm_ids": ["v1"], "start": NOW, "end": NOW + 3600, "demand": {"cpu": 10**400}}
    with pytest.raises(InvalidRequest) as caught:
        validate(RequestKind.HINT, body, NOW)
    assert caught.value.field == "demand.cpu"


def test_limits_on_sizes() -> None:
    with pytest.raises(InvalidRequest, match="at most 1000"):
        validate(RequestKind.RULE, {"type": "affinity", "vm_ids": [str(i) for i in range(1001)]}, NOW)
    with pytest.raises(InvalidRequest) as caught:
        validate(RequestKind.DRAIN, {"host_id": "h" * 256}, NOW)
    assert caught.value.field == "host_id"
    with pytest.raises(InvalidRequest) as caught:
        validate(RequestKind.DRAIN, "h1", NOW)
    assert caught.value.field == "body"


def test_a_request_is_active_until_it_expires_and_a_hint_until_it_ends() -> None:
    drain = Request("d", RequestKind.DRAIN, {"host_id": "h"}, NOW, NOW + 10, "me")
    assert drain.active(NOW + 9.9) and not drain.active(NOW + 10)
    forever = Request("d", RequestKind.DRAIN, {"host_id": "h"}, NOW, None, "me")
    assert forever.active(NOW + 1e9)
    hint = Request("h", RequestKind.HINT, {"end": NOW + 5}, NOW, NOW + 100, "me")
    assert hint.active(NOW + 4) and not hint.active(NOW + 5)


def test_hint_globs_match_exactly_the_vm_ids_given() -> None:
    spec, _, _ = validate(
        RequestKind.HINT,
        {"vm_ids": ["web-[1]", "db?"], "start": NOW, "end": NOW + 60, "demand": {"cpu": 2}},
        NOW,
    )
    hints = hints_of([Request("x", RequestKind.HINT, spec, NOW, None, "api")], {})
    patterns = [h.vms for h in hints]
    assert [fnmatch.fnmatchcase("web-[1]", p) for p in patterns] == [True, False]
    assert not any(fnmatch.fnmatchcase("web-1", p) for p in patterns)
    assert [fnmatch.fnmatchcase("db?", p) for p in patterns] == [False, True]
    assert not any(fnmatch.fnmatchcase("db1", p) for p in patterns)
    assert {h.name for h in hints} == {"api-x"}


def _plan(*statuses: StepStatus) -> ActionPlan:
    plan = ActionPlan("test")
    for status in statuses:
        plan.add(ActionKind.LIVE_MIGRATE, vm_id="v", status=status)
    return plan


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), "empty"),
        ((StepStatus.PENDING, StepStatus.PENDING), "pending"),
        ((StepStatus.SUCCEEDED, StepStatus.RUNNING), "running"),
        ((StepStatus.SUCCEEDED, StepStatus.PENDING), "running"),
        ((StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED), "failed"),
        ((StepStatus.SUCCEEDED, StepStatus.SKIPPED), "done"),
        ((StepStatus.SCHEDULED, StepStatus.SUCCEEDED), "scheduled"),
    ],
)
def test_plan_status_summarises_its_steps(statuses: tuple[StepStatus, ...], expected: str) -> None:
    assert plan_status(_plan(*statuses)) == expected


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8780") == ("127.0.0.1", 8780)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in ("127.0.0.1", "::1:80", "127.0.0.1:99999", ":80"):
        with pytest.raises(ConfigurationError):
            parse_listen(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")
