"""The plug-in point for deciding what to do each round."""

from __future__ import annotations

import abc
from typing import ClassVar

from oslo_config import cfg

from cotenancy.model import ActionPlan, ClusterState


class Strategy(abc.ABC):
    """Turns a :class:`ClusterState` into an :class:`ActionPlan`. Pure: no driver calls.

    A strategy object lives for the whole control loop, so it may keep history between rounds
    (LR-MMT keeps host utilisation history, the predictive strategy keeps its models).
    """

    #: entry-point name in ``cotenancy.strategies``
    name: ClassVar[str] = ""
    #: oslo.config group of its options
    group: ClassVar[str] = ""

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return []

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        opts = self.list_opts()
        if opts:
            conf.register_opts(opts, group=self.group)

    @property
    def options(self) -> cfg.ConfigOpts.GroupAttr:
        return getattr(self.conf, self.group)

    @abc.abstractmethod
    def plan(self, state: ClusterState) -> ActionPlan:
        """Decide this round's steps."""
