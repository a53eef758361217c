"""Text from outside (the cloud, API clients) made safe to show on one line.

VM and host names, tenant and application types, flavor names and the messages of drivers and
clouds are chosen by whoever runs the cloud, or by its tenants. Shown raw, a newline forges a line
in the log or in the plan table ``cotenancy plan`` prints, and a terminal escape (``\\x1b[2J``)
rewrites the operator's screen. :func:`escape_controls` is the one place that defuses them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: control characters (C0, DEL, C1) and the separators Python and JavaScript end a line at: in an id
#: or a label they forge lines in a log and in the plan table ``cotenancy plan`` prints, and
#: PostgreSQL cannot store NUL at all; and the characters that reorder or hide text without
#: showing themselves (bidirectional marks, embeddings, overrides and isolates, zero-width space,
#: word joiner, byte-order mark): "Trojan Source" (CVE-2021-42574) names, such as one that shows
#: as another VM's. The joiners some scripts and emoji need (U+200C, U+200D) are kept.
CONTROL_CHARACTERS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def escape_controls(text: str) -> str:
    """``text`` with each control character, line separator or invisible reordering character
    written as its Python escape (``\\n``, ``\\x1b``, ``\\u2028``, ``\\u202e``): printable, so it shows
    on one line, in the order it was written, and moves no cursor."""
    return CONTROL_CHARACTERS.sub(lambda m: repr(m.group())[1:-1], text)


def first_named(names: Sequence[str], shown: int) -> str:
    """The first ``shown`` of ``names``, comma-separated, with how many more there are: a long list
    (a workload's VMs rising together) cut to fit a line or a table cell."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
