"""Cloud drivers: one adapter per cloud behind the interface in :mod:`cotenancy.drivers.base`."""
