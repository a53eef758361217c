"""The log ``cotenancy`` writes: one line per record, whatever the cloud named its VMs or put in
its error messages, and a traceback's lines indented under the record that carries it, so no text
from the cloud starts a line that reads as a record of its own."""

from __future__ import annotations

import io
import logging

from cotenancy.cli.main import OneLineFormatter
from cotenancy.exceptions import ActionFailed
from cotenancy.text import CONTROL_CHARACTERS

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NAME = "web\n2026-12-07 23:59:59,000 WARNING cotenancy: FORGED\x1b[2J\u2028"


def _logged(emit) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    log = logging.getLogger("cotenancy.test.log_lines")
    log.addHandler(handler)
    log.propagate = False
    try:
        emit(log)
    finally:
        log.removeHandler(handler)
    return stream.getvalue().rstrip("\n").split("\n")


def test_a_message_naming_a_hostile_vm_is_one_line_with_its_controls_escaped() -> None:
    (line,) = _logged(lambda log: log.warning("step 1 (live_migrate %s) failed", NAME))

    assert (
        line.endswith("failed")
        and "web\\n2026-12-07 23:59:59,000 WARNING cotenancy: FORGED\\x1b[2J\\u2028" in line
    )


def test_a_traceback_quoting_a_hostile_name_stays_indented_under_its_record() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ActionFailed(f"live migration of {NAME} refused")
        except ActionFailed:
            log.exception("step 1 raised an unexpected error")

    first, *rest = _logged(emit)

    assert first.endswith("ERROR cotenancy.test.log_lines: step 1 raised an unexpected error")
    assert rest and all(line.startswith("  ") for line in rest), rest
    assert not [line for line in [first, *rest] if CONTROL_CHARACTERS.search(line)]
    assert any(
        line.startswith("  2026-12-07 23:59:59,000 WARNING cotenancy: FORGED\\x1b[2J") for line in rest
    )
