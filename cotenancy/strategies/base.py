"""The plug-in point for deciding what to do each round."""

from __future__ import annotations

import abc

from cotenancy.model import ActionPlan, ClusterState
from cotenancy.plugin import ConfigurablePlugin


class Strategy(ConfigurablePlugin, abc.ABC):
    """Turns a :class:`ClusterState` into an :class:`ActionPlan`. Pure: no driver calls.

    A strategy object lives for the whole control loop, so it may keep history between rounds
    (LR-MMT keeps host utilisation history, the predictive strategy keeps its models).
    """

    @abc.abstractmethod
    def plan(self, state: ClusterState) -> ActionPlan:
        """Decide this round's steps."""
