"""``ansible-doc`` shows each cotenancy.cloud module's documentation, with the shared options of
the doc fragment, examples and return values; a module whose documentation does not parse would
show nothing, so this also guards the YAML in the modules."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from ansible_helpers import REPO

MODULES = ["plan", "apply", "step"]
SHARED_OPTIONS = {"driver", "config_files", "options", "store"}


def ansible_warnings(stderr: str) -> list[str]:
    """Ansible's own warnings (``[WARNING]:``, ``[DEPRECATION WARNING]:``) about what it loaded.

    Python warnings that libraries under Ansible print on import (a ``cryptography`` deprecation,
    say) are not about our documentation, so they do not count.
    """
    return [line for line in stderr.splitlines() if re.match(r"\[(DEPRECATION )?WARNING\]", line.strip())]


@pytest.fixture(scope="module")
def docs(ansible_env: dict[str, str]) -> dict[str, dict]:
    env = ansible_env | {"ANSIBLE_COLLECTIONS_PATH": str(REPO / "plugins" / "ansible" / "collection")}
    result = subprocess.run(
        ["ansible-doc", "--json", *(f"cotenancy.cloud.{m}" for m in MODULES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert not ansible_warnings(result.stderr), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_is_documented_with_the_shared_options(docs: dict[str, dict], module: str) -> None:
    entry = docs[f"cotenancy.cloud.{module}"]
    doc = entry["doc"]
    assert doc["short_description"]
    assert set(doc["options"]) >= SHARED_OPTIONS
    assert doc["options"]["driver"]["required"] is True
    assert all(option.get("description") for option in doc["options"].values())
    assert f"cotenancy.cloud.{module}:" in entry["examples"]
    assert entry["return"]


def test_plan_and_apply_document_check_mode(docs: dict[str, dict]) -> None:
    for module in ("plan", "apply"):
        text = json.dumps(docs[f"cotenancy.cloud.{module}"]["doc"]).lower()
        assert "check mode" in text


def test_the_text_view_lists_every_module(ansible_env: dict[str, str]) -> None:
    env = ansible_env | {"ANSIBLE_COLLECTIONS_PATH": str(REPO / "plugins" / "ansible" / "collection")}
    result = subprocess.run(
        ["ansible-doc", "--list", "cotenancy.cloud"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert listed == {f"cotenancy.cloud.{m}" for m in MODULES}
