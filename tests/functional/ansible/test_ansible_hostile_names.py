"""A VM a tenant named with a Jinja template and a shell command substitution, through the CI
flow (``playbooks/ci/plan_approve_apply.yml``): the ``cotenancy.cloud.plan`` module returns it in
the plan, Ansible shows it as text and templates nothing of it (module results are unsafe data),
so the command in it never runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_helpers import REPO, SimCloud, trace_cloud
from test_ansible_ci_flow import run_unattended

HOSTILE = "web{{ lookup('pipe', 'echo PWNED$((6*7))') }}$(echo PWNED$((6*7)))"


@pytest.fixture
def hostile_cloud(tmp_path: Path) -> SimCloud:
    """A PlanetLab-format day of four VMs, the first named by a hostile tenant."""
    trace = tmp_path / "trace"
    trace.mkdir()
    for name in (HOSTILE, "vm-1", "vm-2", "vm-3"):
        (trace / name).write_text("30\n" * 288)
    cloud = trace_cloud(tmp_path, trace)
    assert HOSTILE in cloud.driver().get_inventory().vms
    return cloud


def test_a_vm_named_with_a_template_is_planned_and_shown_as_text_and_runs_nothing(
    hostile_cloud: SimCloud, ansible_env: dict[str, str]
) -> None:
    driver = hostile_cloud.driver()
    driver.set_host_maintenance(driver.get_inventory().vms[HOSTILE].host_id, True)
    env = {k: v for k, v in ansible_env.items() if k != "ANSIBLE_COLLECTIONS_PATH"}

    result = run_unattended(hostile_cloud, env, "--check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert HOSTILE in result.stdout  # the plan shown names the VM as it is named ...
    assert "PWNED42" not in result.stdout + result.stderr  # ... and nothing in the name ran


def test_the_same_template_in_trusted_text_would_have_run(ansible_env: dict[str, str]) -> None:
    """The control: where Ansible templates text, this name's lookup runs, so the test above
    would catch a name that is templated."""
    trusted = HOSTILE.replace("$(echo PWNED$((6*7)))", "")
    result = subprocess.run(
        ["ansible", "localhost", "-m", "ansible.builtin.debug", "-a", f"msg={trusted}"],
        cwd=REPO,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "webPWNED42" in result.stdout
