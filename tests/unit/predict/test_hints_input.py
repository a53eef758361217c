"""Hints input: a hint that could never apply, or applies with a value nobody wrote, is refused with
an error naming the hint and the field; well-formed hints still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotenancy.exceptions import ConfigurationError
from cotenancy.predict.hints import Hint, load_hints_file, parse_hint_line

START, END = "2025-11-28T08:00:00", "2025-11-28T20:00:00"

REFUSED_ITEMS: dict[str, tuple[str, str]] = {
    "NaN start": (f"- {{start: .nan, end: {END}, factor: 2}}\n", "start must be a finite time"),
    "NaN end": (f"- {{start: {START}, end: .nan, factor: 2}}\n", "end must be a finite time"),
    "infinite end": ("- {start: 0, end: .inf, factor: 3}\n", "end must be a finite time"),
    "negative infinite start": (f"- {{start: -.inf, end: {END}}}\n", "start must be a finite time"),
    "boolean start": (f"- {{start: true, end: {END}, factor: 2}}\n", "start must be a time, not the boolean"),
    "boolean end": (f"- {{start: {START}, end: false}}\n", "end must be a time, not the boolean"),
    "boolean factor": (
        f"- {{start: {START}, end: {END}, factor: true}}\n",
        "factor must be a number, not the boolean",
    ),
    "NaN factor": (f"- {{start: {START}, end: {END}, factor: .nan}}\n", "factor must be a finite number"),
    "infinite factor": (
        f"- {{start: {START}, end: {END}, factor: .inf}}\n",
        "factor must be a finite number",
    ),
    "list start": (f"- {{start: [1, 2], end: {END}}}\n", "cannot read start"),
    "item not a mapping": (f"- start={START},end={END}\n", "a hint must be a mapping"),
}


@pytest.mark.parametrize("case", list(REFUSED_ITEMS), ids=list(REFUSED_ITEMS))
def test_a_hints_file_item_that_is_not_a_usable_hint_is_refused(tmp_path: Path, case: str) -> None:
    text, reason = REFUSED_ITEMS[case]
    path = tmp_path / "hints.yaml"
    path.write_text(f"- {{start: {START}, end: {END}, factor: 1.5}}\n" + text)
    with pytest.raises(ConfigurationError) as raised:
        load_hints_file(path)
    assert f"{path} item 1" in str(raised.value)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"start={START},end={END},factor=nan", "factor must be a finite number"),
        (f"start={START},end={END},factor=inf", "factor must be a finite number"),
        (f"start=nan,end={END}", "cannot read start"),
        (f"start={START},end={END},factor=2,factor=3", "factor is given twice"),
    ],
)
def test_a_hint_line_that_is_not_a_usable_hint_is_refused(line: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_hint_line(line)
    assert repr(line) in str(raised.value)
    assert reason in str(raised.value)


def test_well_formed_hints_still_read(tmp_path: Path) -> None:
    path = tmp_path / "hints.yaml"
    path.write_text(
        "hints:\n"
        f"  - {{start: {START}, end: {END}, vms: 'web-*', resource: cpu, factor: 2, name: sale}}\n"
        "  - {start: 1764316800, end: 1764360000.5}\n"
        "  - {start: 2025-11-28, end: 2025-11-29, factor: 0}\n"
    )
    assert load_hints_file(path) == [
        Hint(1764316800.0, 1764360000.0, "web-*", "cpu", 2.0, "sale"),
        Hint(1764316800.0, 1764360000.5),
        Hint(1764288000.0, 1764374400.0, factor=0.0),
    ]
    assert parse_hint_line(f"start={START},end={END},factor=1.5") == Hint(
        1764316800.0, 1764360000.0, factor=1.5
    )
