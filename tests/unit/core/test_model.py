"""The domain model: resource arithmetic, policies and rules."""

import pytest

from cotenancy.model import (
    VM,
    AffinityRule,
    CoTenancyPolicy,
    Inventory,
    MetricSample,
    PolicyAttribute,
    Resources,
    RuleKind,
    WorkloadClass,
    policies_allow,
)


def vm(vm_id: str, **kw) -> VM:
    return VM(id=vm_id, name=vm_id, host_id=kw.pop("host", "h1"), size=Resources(cpu=1000, memory=512), **kw)


def test_resources_add_subtract_and_fit():
    a = Resources(cpu=1000, memory=512)
    b = Resources(cpu=500, memory=256, gpu=1)
    assert a + b == Resources(cpu=1500, memory=768, gpu=1)
    assert (a + b) - b == a
    assert a.fits_within(Resources(cpu=1000, memory=512))
    assert not (a + b).fits_within(Resources(cpu=2000, memory=1000))  # no GPU on that host


def test_resources_from_dict_rejects_unknown_resources():
    with pytest.raises(ValueError, match="unknown resources"):
        Resources.from_dict({"cpu": 1, "bogomips": 2})


def test_isolation_policy_forbids_other_values_only():
    policy = CoTenancyPolicy("confidential-alone", PolicyAttribute.SECURITY_LEVEL, "confidential")
    secret_a = vm("a", workload=WorkloadClass(security_level="confidential"))
    secret_b = vm("b", workload=WorkloadClass(security_level="confidential"))
    public = vm("c", workload=WorkloadClass(security_level="public"))
    assert policies_allow([policy], secret_a, secret_b)
    assert not policies_allow([policy], secret_a, public)
    assert not policies_allow([policy], public, secret_a)


def test_tenant_policy_forbids_named_pairs_in_both_directions():
    policy = CoTenancyPolicy("rivals", PolicyAttribute.TENANT, "acme", forbidden_with=("globex",))
    acme, globex, other = vm("a", tenant="acme"), vm("b", tenant="globex"), vm("c", tenant="initech")
    assert not policies_allow([policy], globex, acme)
    assert policies_allow([policy], acme, other)


def test_affinity_and_anti_affinity_rules():
    anti = AffinityRule("spread", RuleKind.ANTI_AFFINITY, frozenset({"a", "b"}))
    together = AffinityRule("pack", RuleKind.AFFINITY, frozenset({"a", "b"}))
    assert anti.satisfied_by({"a": "h1", "b": "h2"})
    assert not anti.satisfied_by({"a": "h1", "b": "h1"})
    assert together.satisfied_by({"a": "h1", "b": "h1"})
    assert not together.satisfied_by({"a": "h1", "b": "h2"})


def test_inventory_sums_sizes_per_host():
    inv = Inventory(vms={"a": vm("a"), "b": vm("b"), "c": vm("c", host="h2")})
    assert inv.allocated_on("h1") == Resources(cpu=2000, memory=1024)
    assert {v.id for v in inv.vms_by_host()["h2"]} == {"c"}


@pytest.mark.parametrize(
    ("metric", "value", "valid"),
    [
        ("cpu", 10.0, True),
        ("cpu", float("nan"), False),
        ("cpu", float("inf"), False),
        ("memory", -1.0, False),
        ("cpu_ready", 0.5, True),
        ("cpu_ready", 1.5, False),
    ],
)
def test_metric_sample_validity(metric, value, valid):
    assert MetricSample("vm", 0.0, metric, value).is_valid() is valid
