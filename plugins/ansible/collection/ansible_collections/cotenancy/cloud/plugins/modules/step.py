#!/usr/bin/python
"""Ansible module: one plan step through a cotenancy driver."""

from __future__ import annotations

DOCUMENTATION = r"""
module: step
short_description: Live-migrate, resize, re-allocate a VM or set host maintenance through cotenancy
description:
  - Carries out one step through a cotenancy driver, for clouds with no Ansible module for it
    (OpenStack has no live-migration or resize module in openstack.cloud; no Hyper-V collection
    ships). The step playbooks in C(playbooks/nova) and C(playbooks/hyperv) use it.
  - Idempotent where the cloud tells; a VM already on the target host, or already of the
    requested size, is reported unchanged.
version_added: "0.1.0"
author: cotenancy developers
options:
  kind:
    description: The step.
    type: str
    required: true
    choices: [live_migrate, resize, set_allocation, set_maintenance]
  vm_id:
    description: The VM (driver identifier). Required except for C(set_maintenance).
    type: str
  target_host_id:
    description: Destination host for C(live_migrate); the host for C(set_maintenance).
    type: str
  size:
    description: New size for C(resize), in cotenancy units (C(cpu) MHz, C(memory) MiB).
    type: dict
  allocation:
    description: For C(set_allocation), C(shares), C(reservation) and C(limit) (dicts of resources).
    type: dict
  maintenance:
    description: For C(set_maintenance), enter (true) or leave (false) maintenance.
    type: bool
  timeout:
    description: Seconds the step may take.
    type: float
    default: 600
extends_documentation_fragment:
  - cotenancy.cloud.common
notes:
  - Check mode reports whether the step would change anything and changes nothing.
  - The step is not recorded in the history store (the ansible executor that runs the step
    playbooks records it); I(store) is accepted for symmetry and ignored.
"""

EXAMPLES = r"""
- name: Live-migrate a server with the nova driver
  cotenancy.cloud.step:
    driver: nova
    kind: live_migrate
    vm_id: "{{ vm_id }}"
    target_host_id: "{{ target_host_id }}"
"""

RETURN = r"""
vm:
  description: The VM after the step (host and size), when the step concerns a VM.
  returned: when vm_id is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cotenancy.cloud.plugins.module_utils.cotenancy_common import (  # noqa: E402
    COMMON_ARGS,
    build,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **COMMON_ARGS,
            "kind": {
                "type": "str",
                "required": True,
                "choices": ["live_migrate", "resize", "set_allocation", "set_maintenance"],
            },
            "vm_id": {"type": "str"},
            "target_host_id": {"type": "str"},
            "size": {"type": "dict"},
            "allocation": {"type": "dict"},
            "maintenance": {"type": "bool"},
            "timeout": {"type": "float", "default": 600.0},
        },
        required_if=[
            ("kind", "live_migrate", ("vm_id", "target_host_id")),
            ("kind", "resize", ("vm_id", "size")),
            ("kind", "set_allocation", ("vm_id", "allocation")),
            ("kind", "set_maintenance", ("target_host_id", "maintenance")),
        ],
        supports_check_mode=True,
    )
    try:
        from cotenancy.engine.executor import apply_action
        from cotenancy.exceptions import CotenancyError
        from cotenancy.model import Action, ActionKind, Allocation, Resources

        conf, driver, _ = build(module.params, with_store=False)
    except Exception as exc:  # noqa: BLE001 - report any setup failure to Ansible
        module.fail_json(msg=f"cotenancy setup failed: {exc}")
    params = module.params
    kind = ActionKind(params["kind"])
    try:
        inventory = driver.get_inventory()
        vm = inventory.vms.get(params["vm_id"]) if params["vm_id"] else None
        if params["vm_id"] and vm is None:
            module.fail_json(msg=f"VM {params['vm_id']!r} not found on {params['driver']}")
        size = Resources.from_dict(params["size"]) if params["size"] else None
        allocation = None
        if params["allocation"]:
            raw = params["allocation"]
            allocation = Allocation(
                reservation=Resources.from_dict(raw.get("reservation") or {}),
                limit=Resources.from_dict(raw["limit"]) if raw.get("limit") else None,
                shares=int(raw.get("shares", 1000)),
            )
        changed = _would_change(kind, vm, inventory, params, size, allocation)
        if changed and not module.check_mode:
            action = Action(
                index=0,
                kind=kind,
                vm_id=params["vm_id"],
                target_host_id=params["target_host_id"] if kind is ActionKind.LIVE_MIGRATE else None,
                host_id=params["target_host_id"] if kind is ActionKind.SET_MAINTENANCE else None,
                size=size,
                allocation=allocation,
                maintenance=params["maintenance"],
            )
            apply_action(driver, action, params["timeout"])
            inventory = driver.get_inventory()
            vm = inventory.vms.get(params["vm_id"]) if params["vm_id"] else None
    except CotenancyError as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}")
    finally:
        driver.close()
    result = {"changed": changed}
    if vm is not None:
        result["vm"] = {"id": vm.id, "name": vm.name, "host_id": vm.host_id, "size": vm.size.as_dict()}
    module.exit_json(**result)


def _would_change(kind, vm, inventory, params, size, allocation) -> bool:
    if kind.value == "live_migrate":
        return vm.host_id != params["target_host_id"]
    if kind.value == "resize":
        return (vm.size.cpu, vm.size.memory) != (size.cpu, size.memory)
    if kind.value == "set_allocation":
        return vm.allocation != allocation
    host = inventory.hosts.get(params["target_host_id"])
    return host is None or host.maintenance != params["maintenance"]


if __name__ == "__main__":
    main()
