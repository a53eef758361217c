"""A non-editable install carries the step playbooks and the ``cotenancy.cloud`` collection, and the
ansible executor finds them in the installed package by default.

The wheel is built (offline, without build isolation) from a copy of the files setup.cfg builds
from, so the shared checkout gets no ``build/`` or ``*.egg-info`` folders. The "installed" package is
the unpacked wheel, put first on ``PYTHONPATH`` of a fresh interpreter, where it shadows the
editable install of the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILD_INPUTS = ("setup.cfg", "setup.py", "pyproject.toml", "README.md")
BUILD_TREES = ("cotenancy", "drivers", "plugins", "playbooks")
COLLECTION = Path("plugins/ansible/collection")
INSTALLED_ANSIBLE = Path("cotenancy/plugins/ansible")
CLOUDS = ("simulated", "vsphere", "nova", "hyperv")


def source_files(root: Path) -> set[str]:
    """Files below ``root`` (relative, POSIX), without byte-code caches."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        shutil.copy2(REPO / name, source / name)
    for name in BUILD_TREES:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [built] = dist.glob("cotenancy-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked wheel: what ``pip install`` puts in site-packages."""
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def run_installed(site: Path, code: str, cwd: Path) -> dict:
    """Runs ``code`` in a fresh interpreter that imports cotenancy from ``site``; returns the JSON
    it prints."""
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_wheel_ships_every_playbook_and_every_collection_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    playbooks = {f"{INSTALLED_ANSIBLE}/playbooks/{name}" for name in source_files(REPO / "playbooks")}
    collection = {f"{INSTALLED_ANSIBLE}/collection/{name}" for name in source_files(REPO / COLLECTION)}
    assert any(name.endswith("cotenancy/cloud/plugins/modules/step.py") for name in collection)
    assert playbooks - shipped == set()
    assert collection - shipped == set()


def test_an_installed_executor_defaults_to_the_playbooks_in_the_package(
    installed: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cotenancy.conf"
    config.write_text(f"[ansible]\nplaybook_dir = {tmp_path / 'reviewed-playbooks'}\n")
    found = run_installed(
        installed,
        "import json\n"
        "from cotenancy.conf import make_conf\n"
        "from cotenancy.plugins.ansible import executor\n"
        "default = executor.AnsibleExecutor(make_conf([], config_files=[]))\n"
        f"configured = executor.AnsibleExecutor(make_conf([], config_files=[{str(config)!r}]))\n"
        "print(json.dumps({'module': executor.__file__, 'default': default.conf.ansible.playbook_dir,\n"
        "    'configured': configured.conf.ansible.playbook_dir}))\n",
        cwd=tmp_path,
    )
    package = installed / INSTALLED_ANSIBLE
    assert Path(found["module"]).parent == package
    assert Path(found["default"]) == package / "playbooks"
    for cloud in CLOUDS:
        for kind in ("live_migrate", "resize", "set_allocation", "set_maintenance"):
            assert (package / "playbooks" / cloud / f"{kind}.yml").is_file(), f"{cloud}/{kind}.yml"
    assert Path(found["configured"]) == tmp_path / "reviewed-playbooks"


def test_ansible_resolves_every_shipped_playbook_against_the_installed_collection(
    installed: Path, tmp_path: Path
) -> None:
    """Run outside the checkout (its ansible.cfg would point Ansible at the source collection),
    with the environment the installed executor gives ansible-runner."""
    env = run_installed(
        installed,
        "import json, pathlib\n"
        "from cotenancy.plugins.ansible.executor import _ansible_env\n"
        f"print(json.dumps(_ansible_env(pathlib.Path({str(tmp_path)!r}))))\n",
        cwd=tmp_path,
    )
    package = installed / INSTALLED_ANSIBLE
    assert env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0] == str(package / "collection")
    # vcenter_connection.yml is a vars file of the vSphere playbooks, not a playbook
    playbooks = sorted(
        str(p) for p in (package / "playbooks").rglob("*.yml") if p.name != "vcenter_connection.yml"
    )
    assert str(package / "playbooks" / "ci" / "plan_approve_apply.yml") in playbooks
    check_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")} | env
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", *playbooks],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=check_env,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
