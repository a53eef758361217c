"""Co-tenancy policies and affinity rules: who may share a host with whom."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cotenancy.model.inventory import VM

ANY = "*"


class PolicyAttribute(enum.StrEnum):
    """The VM attribute a co-tenancy policy compares."""

    TENANT = "tenant"
    SECURITY_LEVEL = "security_level"
    APP_TYPE = "app_type"


def vm_attribute(vm: VM, attribute: PolicyAttribute) -> str:
    if attribute is PolicyAttribute.TENANT:
        return vm.tenant
    if attribute is PolicyAttribute.SECURITY_LEVEL:
        return vm.workload.security_level
    return vm.workload.app_type


@dataclass(frozen=True, slots=True)
class CoTenancyPolicy:
    """VMs whose ``attribute`` is ``value`` must not share a host with VMs whose same attribute is in
    ``forbidden_with``. ``forbidden_with=("*",)`` isolates ``value`` from every other value
    (e.g. ``security_level=confidential`` shares only with ``confidential``).
    """

    name: str
    attribute: PolicyAttribute
    value: str
    forbidden_with: tuple[str, ...] = (ANY,)

    def forbids(self, a: VM, b: VM) -> bool:
        va, vb = vm_attribute(a, self.attribute), vm_attribute(b, self.attribute)
        return self._forbids_values(va, vb) or self._forbids_values(vb, va)

    def _forbids_values(self, mine: str, theirs: str) -> bool:
        if mine != self.value:
            return False
        if ANY in self.forbidden_with:
            return theirs != self.value
        return theirs in self.forbidden_with


def policies_allow(policies: Iterable[CoTenancyPolicy], a: VM, b: VM) -> bool:
    """True when no policy forbids ``a`` and ``b`` on one host."""
    return not any(p.forbids(a, b) for p in policies)


def conflict_classes(vms: Iterable[VM], policies: Iterable[CoTenancyPolicy]) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, forbidden)``: each VM's class (VMs alike in every attribute a policy reads) and
    the ``(C, C)`` matrix of class pairs a policy keeps apart.

    Policies compare a handful of attributes, so thousands of VMs fall into a few classes and a
    pair check becomes a table lookup.
    """
    policies = list(policies)
    attributes = sorted({p.attribute for p in policies})
    keys: dict[tuple[str, ...], int] = {}
    representative: list[VM] = []
    classes = []
    for vm in vms:
        key = tuple(vm_attribute(vm, a) for a in attributes)
        if key not in keys:
            keys[key] = len(keys)
            representative.append(vm)
        classes.append(keys[key])
    forbidden = np.array(
        [[not policies_allow(policies, a, b) for b in representative] for a in representative], dtype=bool
    ).reshape(len(representative), len(representative))
    return np.array(classes, dtype=np.int64), forbidden


class RuleKind(enum.StrEnum):
    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti_affinity"


@dataclass(frozen=True, slots=True)
class AffinityRule:
    """Affinity: all ``vm_ids`` on one host. Anti-affinity: no two of them on one host.

    Soft rules (``hard=False``) are preferences the planner pays to break; hard ones are never broken.
    """

    name: str
    kind: RuleKind
    vm_ids: frozenset[str]
    hard: bool = True

    def satisfied_by(self, placement: dict[str, str | None]) -> bool:
        hosts = [placement.get(v) for v in self.vm_ids if placement.get(v) is not None]
        if self.kind is RuleKind.AFFINITY:
            return len(set(hosts)) <= 1
        return len(set(hosts)) == len(hosts)
