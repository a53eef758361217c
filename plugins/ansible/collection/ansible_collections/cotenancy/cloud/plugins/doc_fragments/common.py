"""Options shared by every cotenancy.cloud module."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  driver:
    description: Name of the cotenancy driver (C(simulated), C(vsphere), C(nova), C(hyperv)).
    type: str
    required: true
  config_files:
    description: cotenancy configuration files (oslo.config) to read, in order.
    type: list
    elements: path
    default: []
  options:
    description:
      - Option overrides as C(GROUP.OPTION) keys, for example C(vsphere.host) or C(DEFAULT.interval).
      - Put secrets in a configuration file readable only by the controller user, not here.
    type: dict
    default: {}
  store:
    description: History store URL (SQLAlchemy); default is the C([store]) option.
    type: str
requirements:
  - cotenancy installed in the controller's Python (the module runs on the controller).
"""
