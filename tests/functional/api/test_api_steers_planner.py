"""End to end: what a client asks through the API changes what the predictive strategy plans."""

from __future__ import annotations

from api_helpers import NOW

from cotenancy.model import ActionKind, Host, Inventory, Resources
from cotenancy.strategies.predictive import PredictiveStrategy


def test_a_drain_requested_over_http_makes_the_planner_evacuate_the_host(
    client, seeded_store, api_conf_obj
) -> None:
    # the cloud gains an empty, roomy host to move to
    roomy = Host("h3", "host-3", Resources(cpu=16000, memory=65536))
    seeded_store.upsert_inventory(
        Inventory(hosts={**seeded_store.hosts(), "h3": roomy}, vms=seeded_store.vms()), NOW
    )
    strategy = PredictiveStrategy(api_conf_obj)
    state = client.server.api.predictions.state(None)
    before = {a.vm_id for a in strategy.plan(state).actions if a.kind is ActionKind.LIVE_MIGRATE}
    assert not before & {"db-1", "idle-1"}

    assert client.post("/v1/drains", {"host_id": "h2", "reason": "firmware"}).status == 201
    state = client.server.api.predictions.state(None)
    assert state.inventory.hosts["h2"].maintenance
    moves = {a.vm_id: a for a in strategy.plan(state).actions if a.kind is ActionKind.LIVE_MIGRATE}
    for vm_id in ("db-1", "idle-1"):
        assert moves[vm_id].source_host_id == "h2" and moves[vm_id].target_host_id != "h2"
        assert "host h2 is in maintenance" in moves[vm_id].reason
