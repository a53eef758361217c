"""What every configurable plug-in shares: a name, an option group, and its options registered."""

from __future__ import annotations

from typing import ClassVar

from oslo_config import cfg


class ConfigurablePlugin:
    """Base of drivers, strategies, executors, datasources and predictors.

    Each plug-in declares its options with :meth:`list_opts` under its own group (``group``, or
    ``name`` when no group is set), so that the generated sample configuration documents them and
    two plug-ins never fight over an option.
    """

    #: entry-point name in the plug-in's namespace
    name: ClassVar[str] = ""
    #: oslo.config group of its options; defaults to ``name``
    group: ClassVar[str] = ""

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return []

    @classmethod
    def option_group(cls) -> str:
        return cls.group or cls.name

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        opts = self.list_opts()
        if opts:
            conf.register_opts(opts, group=self.option_group())

    @property
    def options(self) -> cfg.ConfigOpts.GroupAttr:
        return getattr(self.conf, self.option_group())
