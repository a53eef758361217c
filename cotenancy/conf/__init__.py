"""Configuration (oslo.config). One module per area; :mod:`cotenancy.conf.opts` lists them all."""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

from cotenancy.conf.opts import register_all


def make_conf(args: Sequence[str] = (), config_files: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """A fresh, fully registered configuration object.

    A new object per call (rather than the global ``cfg.CONF``) keeps tests and embedded uses
    (Watcher, Ansible modules) from leaking options into each other.
    """
    conf = cfg.ConfigOpts()
    register_all(conf)
    conf(
        list(args),
        project="cotenancy",
        default_config_files=list(config_files) if config_files is not None else None,
        validate_default_values=True,
    )
    return conf
