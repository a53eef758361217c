"""``noop``: never acts. The baseline every other strategy is measured against."""

from __future__ import annotations

from cotenancy.model import ActionPlan, ClusterState
from cotenancy.strategies.base import Strategy


class NoopStrategy(Strategy):
    """Plans nothing, so a run shows what the initial placement alone costs."""

    name = "noop"
    group = "strategy_noop"

    def plan(self, state: ClusterState) -> ActionPlan:
        return ActionPlan(strategy=self.name)
