"""Declarative data classes of the domain. Units are documented in each module."""

from cotenancy.model.inventory import VM, Allocation, Host, Inventory, VMState, WorkloadClass
from cotenancy.model.plan import Action, ActionKind, ActionPlan, StepStatus
from cotenancy.model.policy import (
    AffinityRule,
    CoTenancyPolicy,
    PolicyAttribute,
    RuleKind,
    policies_allow,
)
from cotenancy.model.resources import RESOURCE_UNITS, ZERO, Resource, Resources
from cotenancy.model.state import ClusterState, TelemetryWindow
from cotenancy.model.telemetry import Event, EventKind, Metric, MetricSample

__all__ = [
    "RESOURCE_UNITS",
    "VM",
    "ZERO",
    "Action",
    "ActionKind",
    "ActionPlan",
    "AffinityRule",
    "Allocation",
    "ClusterState",
    "CoTenancyPolicy",
    "Event",
    "EventKind",
    "Host",
    "Inventory",
    "Metric",
    "MetricSample",
    "PolicyAttribute",
    "Resource",
    "Resources",
    "RuleKind",
    "StepStatus",
    "TelemetryWindow",
    "VMState",
    "WorkloadClass",
    "policies_allow",
]
