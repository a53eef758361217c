"""All options, for ``oslo-config-generator`` (entry point ``oslo.config.opts``) and for registration.

Core areas declare options in their own module under :mod:`cotenancy.conf`; plugins (drivers,
strategies, executors, predictors) declare theirs with ``list_opts()`` on the plugin class, under
their own group, and are found through their entry points so that every installed plugin is
documented in the generated sample.
"""

from __future__ import annotations

import importlib
import logging

from oslo_config import cfg

from cotenancy import loading

LOG = logging.getLogger(__name__)

#: core option modules; each has ``GROUP`` and ``OPTS``
CORE_MODULES = [
    "cotenancy.conf.core",
    "cotenancy.conf.store",
    "cotenancy.conf.sim",
    "cotenancy.conf.predict",
    "cotenancy.conf.plan",
    "cotenancy.conf.api",
]

#: namespaces whose plugin classes carry ``list_opts()`` and an option group
PLUGIN_NAMESPACES = [
    loading.DRIVERS,
    loading.STRATEGIES,
    loading.EXECUTORS,
    loading.RISK_MODELS,
    loading.FORECASTERS,
    loading.DATASOURCES,
]


def core_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options of the core areas (not plugins), grouped."""
    found = []
    for module_name in CORE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found.append((module.GROUP, list(module.OPTS)))
    return found


def plugin_group(cls: type) -> str:
    return cls.option_group() if hasattr(cls, "option_group") else (getattr(cls, "group", "") or cls.name)


def _plugin_opts(strict: bool = True) -> list[tuple[str, list[cfg.Opt]]]:
    found = []
    for namespace in PLUGIN_NAMESPACES:
        for name in loading.known_plugins(namespace):
            try:
                cls = loading.plugin_class(namespace, name)
            except ImportError:
                if strict:
                    raise
                LOG.warning(
                    "plugin %s:%s cannot be imported; its options are not registered", namespace, name
                )
                continue
            opts = cls.list_opts() if hasattr(cls, "list_opts") else []
            if opts:
                found.append((plugin_group(cls), list(opts)))
    return found


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Every option, grouped, for the sample configuration."""
    merged: dict[str, list[cfg.Opt]] = {}
    for group, opts in core_opts() + _plugin_opts():
        bucket = merged.setdefault(group, [])
        bucket.extend(o for o in opts if o.dest not in {b.dest for b in bucket})
    return sorted(merged.items(), key=lambda item: (item[0] != "DEFAULT", item[0]))


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every option up front, so config files and ``--set`` may name any of them.

    A plugin whose module cannot be imported (an optional integration without its library) is
    reported and left out here; loading that plugin by name still fails loudly.
    """
    for group, opts in core_opts() + _plugin_opts(strict=False):
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
