"""Text from outside (the cloud, API clients) made safe to show on one line.

VM and host names, tenant and application types, flavor names and the messages of drivers and
clouds are chosen by whoever runs the cloud, or by its tenants. Shown raw, a newline forges a line
in the log or in the plan table ``cotenancy plan`` prints, and a terminal escape (``\\x1b[2J``)
rewrites the operator's screen. :func:`escape_controls` is the one place that defuses them.
"""

from __future__ import annotations

import re

#: control characters (C0, DEL, C1) and the separators Python and JavaScript end a line at: in an id
#: or a label they forge lines in a log and in the plan table ``cotenancy plan`` prints, and
#: PostgreSQL cannot store NUL at all
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with each control character or line separator written as its Python escape
    (``\\n``, ``\\x1b``, ``\\u2028``): printable, so it shows on one line and moves no cursor."""
    return CONTROL_CHARACTERS.sub(lambda m: repr(m.group())[1:-1], text)
