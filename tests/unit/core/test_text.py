"""Text from the cloud or an API client is shown on one line, in the order it was written."""

from __future__ import annotations

import pytest

from cotenancy.text import escape_controls


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("web\nFORGED", "web\\nFORGED"),
        ("db\x1b[2J", "db\\x1b[2J"),
        ("sep\u2028row", "sep\\u2028row"),
        ("nul\x00", "nul\\x00"),
        ("c1\x9b", "c1\\x9b"),
    ],
)
def test_control_characters_and_line_separators_are_shown_as_escapes(raw, shown):
    assert escape_controls(raw) == shown


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # "Trojan Source" (CVE-2021-42574): a right-to-left override shows "vm-evil" as "vm-live"
        ("vm-\u202elive\u202c", "vm-\\u202elive\\u202c"),
        ("isolate\u2067x\u2069", "isolate\\u2067x\\u2069"),
        ("mark\u200f", "mark\\u200f"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("bom\ufeff", "bom\\ufeff"),
    ],
)
def test_characters_that_reorder_or_hide_text_are_shown_as_escapes(raw, shown):
    """A name that displays as another VM's, or as its own text reversed, misleads whoever reads
    a plan row or a log line about which VM a step moves."""
    assert escape_controls(raw) == shown


def test_joiners_that_scripts_and_emoji_need_are_kept():
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert escape_controls(persian) == persian
    assert escape_controls(family) == family
