"""Loading plugins from their entry-point namespaces, loudly."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from stevedore import driver

from cotenancy.exceptions import UnknownPluginError

DRIVERS = "cotenancy.drivers"
STRATEGIES = "cotenancy.strategies"
EXECUTORS = "cotenancy.executors"
RISK_MODELS = "cotenancy.predictors.risk"
FORECASTERS = "cotenancy.predictors.forecast"
DATASOURCES = "cotenancy.datasources"


def known_plugins(namespace: str) -> list[str]:
    """Names registered in ``namespace``, read from package metadata without importing them."""
    return sorted({ep.name for ep in entry_points(group=namespace)})


def plugin_class(namespace: str, name: str) -> type:
    """The class registered as ``name``; :class:`UnknownPluginError` lists the known names."""
    known = known_plugins(namespace)
    if name not in known:
        raise UnknownPluginError(namespace, name, known)
    manager = driver.DriverManager(namespace, name, invoke_on_load=False, on_load_failure_callback=_reraise)
    return manager.driver


def load_plugin(namespace: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Instantiate plugin ``name`` from ``namespace`` with the given arguments."""
    return plugin_class(namespace, name)(*args, **kwargs)


def _reraise(manager: object, entrypoint: object, exc: BaseException) -> None:
    raise exc
