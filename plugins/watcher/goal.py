"""The Watcher goal ``cotenancy``: keep co-located VMs from hurting each other.

Watcher validates every solution against its goal's efficacy specification, and shows the
indicators next to each action plan; an operator approving a plan sees how many conflicts the
strategy predicted, how many the plan avoids, and what it costs in migrations and resizes.
"""

from __future__ import annotations

from watcher.decision_engine.goal import base
from watcher.decision_engine.goal.efficacy import base as efficacy_base
from watcher.decision_engine.goal.efficacy import indicators
from watcher.decision_engine.solution import efficacy

GOAL_NAME = "cotenancy"


class _CountIndicator(indicators.IndicatorSpecification):
    """A non-negative count; the subclasses only name and describe it."""

    NAME = ""
    DESCRIPTION = ""

    def __init__(self) -> None:
        super().__init__(name=self.NAME, description=self.DESCRIPTION, unit=None)

    @property
    def schema(self) -> dict:
        return {"type": "integer", "minimum": 0}


class ConflictsPredicted(_CountIndicator):
    NAME = "conflicts_predicted"
    DESCRIPTION = "Co-tenancy conflicts (hosts whose VMs would starve each other) predicted in the horizon."


class ConflictsAvoided(_CountIndicator):
    NAME = "conflicts_avoided"
    DESCRIPTION = "Predicted conflicts that the action plan removes."


class InstancesResizedCount(_CountIndicator):
    NAME = "instances_resized_count"
    DESCRIPTION = "The number of VMs the action plan resizes."


class CotenancyEfficacy(efficacy_base.EfficacySpecification):
    """Conflicts predicted and avoided, migrations and resizes."""

    def get_indicators_specifications(self) -> list[indicators.IndicatorSpecification]:
        return [
            ConflictsPredicted(),
            ConflictsAvoided(),
            indicators.InstanceMigrationsCount(),
            InstancesResizedCount(),
        ]

    def get_global_efficacy_indicator(self, indicators_map=None) -> list[efficacy.Indicator]:
        """Share of predicted conflicts the plan avoids (100 % when none were predicted)."""
        value = 100.0
        if indicators_map and indicators_map.conflicts_predicted > 0:
            value = 100.0 * indicators_map.conflicts_avoided / indicators_map.conflicts_predicted
        return [
            efficacy.Indicator(
                name="conflicts_avoided_ratio",
                description="Predicted co-tenancy conflicts avoided by the plan.",
                unit="%",
                value=value,
            )
        ]


class CotenancyGoal(base.Goal):
    """Cotenancy

    Predict conflicts between VMs that share a host and act before they happen, moving or
    resizing as few VMs as possible.
    """

    @classmethod
    def get_name(cls) -> str:
        return GOAL_NAME

    @classmethod
    def get_display_name(cls) -> str:
        return "Co-tenancy conflict avoidance"

    @classmethod
    def get_translatable_display_name(cls) -> str:
        return "Co-tenancy conflict avoidance"

    @classmethod
    def get_efficacy_specification(cls) -> CotenancyEfficacy:
        return CotenancyEfficacy()
