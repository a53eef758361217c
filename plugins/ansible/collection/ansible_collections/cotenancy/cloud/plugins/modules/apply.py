#!/usr/bin/python
"""Ansible module: carry out a stored cotenancy plan."""

from __future__ import annotations

DOCUMENTATION = r"""
module: apply
short_description: Apply a stored cotenancy action plan
description:
  - Loads a plan that M(cotenancy.cloud.plan) stored and carries out its pending steps in their
    safe order through the driver, recording each step's status in the history store.
  - Steps that already finished are not run again, so re-running the task after a failure resumes.
  - In check mode nothing is changed; the module reports the steps that would run.
version_added: "0.1.0"
author: cotenancy developers
options:
  plan_id:
    description: Identifier returned by M(cotenancy.cloud.plan).
    type: str
    required: true
  on_step_failure:
    description:
      - What to do with the rest of the plan when a step fails. Unset, the C([DEFAULT] on_step_failure)
        option of the configuration files applies (C(skip_dependents) unless configured).
    type: str
    choices: [skip_dependents, abort, continue]
extends_documentation_fragment:
  - cotenancy.cloud.common
notes:
  - Runs on the controller; use C(hosts=localhost) in the play.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Apply the approved plan
  cotenancy.cloud.apply:
    driver: vsphere
    plan_id: "{{ plan.plan_id }}"
    config_files: [/etc/cotenancy/cotenancy.conf]
"""

RETURN = r"""
steps:
  description: The plan's steps with their final status and message.
  returned: always
  type: list
  elements: dict
failed_steps:
  description: Number of steps that failed.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cotenancy.cloud.plugins.module_utils.cotenancy_common import (  # noqa: E402
    COMMON_ARGS,
    build,
    step_to_dict,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **COMMON_ARGS,
            "plan_id": {"type": "str", "required": True},
            "on_step_failure": {"type": "str", "choices": ["skip_dependents", "abort", "continue"]},
        },
        supports_check_mode=True,
    )
    try:
        from cotenancy.engine.executor import FINISHED, DriverExecutor
        from cotenancy.exceptions import CotenancyError

        conf, driver, store = build(module.params)
    except Exception as exc:  # noqa: BLE001 - report any setup failure to Ansible
        module.fail_json(msg=f"cotenancy setup failed: {exc}")
    try:
        plan = store.get_plan(module.params["plan_id"])
        pending = [a for a in plan.actions if a.status not in FINISHED]
        if module.check_mode:
            module.exit_json(changed=bool(pending), steps=[step_to_dict(a) for a in pending], failed_steps=0)
        if module.params["on_step_failure"]:
            conf.set_override("on_step_failure", module.params["on_step_failure"])
        DriverExecutor(conf, store=store).execute(plan, driver)
    except CotenancyError as exc:
        module.fail_json(msg=str(exc))
    finally:
        driver.close()
        store.close()
    steps = [step_to_dict(a) for a in plan.actions]
    failed = [s for s in steps if s["status"] == "failed"]
    if failed:
        module.fail_json(
            msg="; ".join(f"step {s['index']} {s['kind']} {s['vm_id']}: {s['message']}" for s in failed),
            steps=steps,
            failed_steps=len(failed),
        )
    module.exit_json(changed=bool(pending), steps=steps, failed_steps=0)


if __name__ == "__main__":
    main()
