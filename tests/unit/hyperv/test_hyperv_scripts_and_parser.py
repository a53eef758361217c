"""The driver's scripts are fixed PowerShell; values only ever travel as base64 JSON on stdin."""

from __future__ import annotations

import base64
import json
import re

import pytest

from cotenancy.drivers.hyperv import scripts
from tests.harness.wsman import pwsh
from tests.harness.wsman.hyperv import HyperVResponder

BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


@pytest.mark.parametrize("name", sorted(scripts.SCRIPTS))
def test_every_script_parses_in_the_supported_subset(name):
    assert pwsh.parse(scripts.SCRIPTS[name])


@pytest.mark.parametrize("name", sorted(scripts.SCRIPTS))
def test_scripts_hold_no_interpolation_or_placeholders(name):
    text = scripts.SCRIPTS[name]
    assert '"' not in text, "double-quoted strings interpolate in PowerShell"
    assert "$(" not in text and "{}" not in text and "%s" not in text
    assert "Invoke-Expression" not in text and "iex " not in text


def test_parameters_are_base64_json_whatever_they_hold():
    hostile = {"VMId": "x'; Remove-VM *; \"$(y)`\n|&", "Hosts": ["h1;h2"]}
    encoded = scripts.encode_parameters(hostile)
    assert BASE64.match(encoded.decode())
    assert json.loads(base64.b64decode(encoded)) == hostile


def test_command_line_carries_only_the_encoded_fixed_script():
    arguments = scripts.command_arguments(scripts.MIGRATE)
    assert arguments[-2] == "-EncodedCommand"
    assert base64.b64decode(arguments[-1]).decode("utf-16-le") == scripts.MIGRATE
    assert {"-NoProfile", "-NonInteractive"} <= set(arguments)


@pytest.mark.parametrize(
    "source, reason",
    [
        ('Get-VM -Name "a$b"', "double-quoted"),
        ("Get-VM -Name $(Stop-Computer)", "sub-expression"),
        ("Get-VM -Name `$x", "unexpected character"),
        ("Get-VM & Stop-Computer", "unexpected character"),
    ],
)
def test_parser_rejects_what_the_driver_must_never_send(source, reason):
    with pytest.raises(pwsh.ParseError, match=reason):
        pwsh.parse(source)


def test_values_read_from_stdin_stay_data():
    calls: list[str] = []

    def recorder(invocation):
        calls.append(invocation.name)
        return [invocation.get("Name")]

    evil = "'; Stop-Computer; '$(Stop-Computer)"
    script = (
        "$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String(($input | Out-String)"
        ".Trim())) | ConvertFrom-Json\n"
        "Get-Thing -Name $p.Name"
    )
    interpreter = pwsh.Interpreter(
        {"Get-Thing": recorder, **HyperVResponder().cmdlets()},
        stdin=scripts.encode_parameters({"Name": evil}).decode(),
    )
    output = interpreter.run(pwsh.parse(script))
    assert output == [evil]
    assert "Stop-Computer" not in interpreter.calls
    assert calls == ["Get-Thing"]


def test_return_keeps_output_written_before_it():
    interpreter = pwsh.Interpreter(HyperVResponder().cmdlets())
    script = "if ($true) {\n@{ Status = 'NotFound' } | ConvertTo-Json -Compress\nreturn\n}\n'after'"
    assert interpreter.run(pwsh.parse(script)) == ['{"Status":"NotFound"}']


def test_comparison_binds_tighter_than_and():
    interpreter = pwsh.Interpreter({})
    [statement] = pwsh.parse("1 -eq 1 -and 2 -ne 3")
    assert interpreter.evaluate(statement) is True


def test_unknown_cmdlets_are_recorded_and_fail_like_powershell():
    interpreter = pwsh.Interpreter({})
    with pytest.raises(pwsh.PSError, match="is not recognized"):
        interpreter.run(pwsh.parse("Remove-VM -Name x"))
    assert interpreter.calls == ["Remove-VM"]
