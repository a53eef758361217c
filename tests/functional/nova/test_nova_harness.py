"""The Nova harness itself: a real Nova and placement on a loopback port, guarded by a token."""

from __future__ import annotations

import requests


def test_the_harness_serves_nova_and_placement_on_loopback(nova):
    assert nova.endpoint.startswith("http://127.0.0.1:")
    assert nova.alive()
    headers = {"X-Auth-Token": nova.token}
    services = requests.get(f"{nova.compute}/os-services", headers=headers, timeout=30).json()
    computes = sorted(s["host"] for s in services["services"] if s["binary"] == "nova-compute")
    assert computes[: len(nova.hosts)] == nova.hosts
    providers = requests.get(f"{nova.placement}/resource_providers", headers=headers, timeout=30)
    assert {p["name"] for p in providers.json()["resource_providers"]} >= set(nova.hosts)


def test_requests_without_the_token_are_refused_but_versions_are_public(nova):
    assert requests.get(f"{nova.compute}/servers", timeout=30).status_code == 401
    wrong = {"X-Auth-Token": "not-the-token"}
    assert requests.get(f"{nova.placement}/resource_providers", headers=wrong, timeout=30).status_code == 401
    assert requests.get(f"{nova.control}/", timeout=30).status_code == 401
    version = requests.get(nova.compute, timeout=30).json()["version"]
    assert version["id"] == "v2.1" and version["status"] == "CURRENT"
    assert "versions" in requests.get(nova.placement, timeout=30).json()


def test_fault_injection_is_reported_and_cleared(nova):
    nova.fail_next_live_migrations(2)
    nova.slow_live_migrations(1.5)
    assert nova.status()["faults"]["live_migration"] == {"fail": 2, "fail_precheck": 0, "delay": 1.5}
    nova.clear_faults()
    assert nova.status()["faults"]["live_migration"] == {"fail": 0, "fail_precheck": 0, "delay": 0.0}
