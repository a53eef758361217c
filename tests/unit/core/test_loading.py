"""Plugins load by name from their entry points, and unknown names fail loudly."""

import pytest

from cotenancy import loading
from cotenancy.exceptions import UnknownPluginError

NAMESPACES_AND_EXPECTED = {
    loading.DRIVERS: {"simulated", "vsphere", "nova", "hyperv"},
    loading.STRATEGIES: {"noop", "reactive-threshold", "lr-mmt", "predictive"},
    loading.EXECUTORS: {"driver", "vcenter-scheduled", "ansible"},
    loading.RISK_MODELS: {"xgboost"},
    loading.FORECASTERS: {"default"},
    loading.DATASOURCES: {"driver", "prometheus"},
}


@pytest.mark.parametrize("namespace", sorted(NAMESPACES_AND_EXPECTED))
def test_every_declared_plugin_imports(namespace):
    names = set(loading.known_plugins(namespace))
    assert NAMESPACES_AND_EXPECTED[namespace] <= names
    for name in names:
        assert isinstance(loading.plugin_class(namespace, name), type)


def test_unknown_driver_lists_the_known_ones():
    with pytest.raises(UnknownPluginError) as err:
        loading.plugin_class(loading.DRIVERS, "openstack-classic")
    message = str(err.value)
    assert "openstack-classic" in message
    for known in ("hyperv", "nova", "simulated", "vsphere"):
        assert known in message


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownPluginError, match="lr-mmt"):
        loading.plugin_class(loading.STRATEGIES, "magic")
