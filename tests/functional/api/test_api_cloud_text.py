"""Names the cloud gave its VMs and hosts, as the open API answers them: exactly, and with every
control character and line separator written as a JSON escape (``\\u0085``, ``\\u2028``). JSON
itself escapes only U+0000-U+001F, so DEL, the C1 controls (U+009B starts a terminal escape as
ESC [ does) and U+2028 reached a ``curl`` in a terminal, or a client that evaluates JSON as
JavaScript, raw."""

from __future__ import annotations

import json

from api_helpers import T0

from cotenancy.model import VM, Host, Inventory, Resources
from cotenancy.store import HistoryStore
from cotenancy.text import CONTROL_CHARACTERS

NAME = "web\x7f\x85\x9b2J\u2028\u2029\n\x1b[2J"


def test_a_vm_named_with_control_characters_is_answered_exactly_in_escapes_only(
    client, seeded_store: HistoryStore
):
    host = Host("h\u2028x", f"host{NAME}", Resources(cpu=8000, memory=16384))
    vm = VM(f"vm{NAME}", NAME, host.id, Resources(cpu=1000, memory=1024))
    seeded_store.upsert_inventory(Inventory(hosts={host.id: host}, vms={vm.id: vm}), T0 + 60)

    for collection, record in (("vms", vm), ("hosts", host)):
        answer = client.get(f"/v1/{collection}")

        assert answer.status == 200, answer.raw
        assert not CONTROL_CHARACTERS.search(answer.raw.decode("utf-8").removesuffix("\n"))
        listed = {item["id"]: item["name"] for item in json.loads(answer.raw)[collection]}
        assert listed[record.id] == record.name
