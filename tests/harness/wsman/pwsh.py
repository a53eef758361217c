"""A parser and interpreter for the small, fixed subset of PowerShell the hyperv driver emits.

Why not a real PowerShell: none runs here. Why not string matching: the responder must show that
the script is interpreted by its *structure*, so a value smuggled into the script text would be
parsed as code and fail (or be recorded), while values read from ``$input`` stay data forever.

Deliberately unsupported: double-quoted (interpolating) strings, ``Invoke-Expression``, ``&`` and
``.`` invocation, sub-expressions ``$( )``, backtick escapes. The parser rejects them, so a driver
that started to build scripts by interpolation would fail the harness instead of passing silently.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class ParseError(Exception):
    """The script uses syntax outside the supported subset."""


class PSError(Exception):
    """A PowerShell error record: message, category and fully qualified error id."""

    def __init__(self, message: str, category: str = "NotSpecified", error_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.error_id = error_id


class ReturnSignal(Exception):
    """``return`` at script level: stop, keep the output produced so far."""


class CIDict(dict):
    """A PowerShell object: properties looked up case-insensitively."""

    def lookup(self, name: str) -> Any:
        for key, value in self.items():
            if key.lower() == name.lower():
                return value
        return None

    def has(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key in self)


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<newline>\r?\n)
  | (?P<ws>[ \t]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>'(?:[^']|'')*')
  | (?P<dstring>")
  | (?P<subexpr>\$\()
  | (?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<type>\[[A-Za-z][A-Za-z0-9_.]*\])
  | (?P<number>\d+(?:\.\d+)?(?:KB|MB|GB|TB)?(?![A-Za-z0-9_]))
  | (?P<dashword>-[A-Za-z][A-Za-z0-9]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<dcolon>::)
  | (?P<arrayopen>@\()
  | (?P<hashopen>@\{)
  | (?P<punct>[(){}|=,;.:])
  """,
    re.VERBOSE,
)


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if match is None:
            raise ParseError(f"unexpected character {source[pos]!r} at offset {pos}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "dstring":
            raise ParseError(f"double-quoted (interpolating) string at offset {pos}")
        if kind == "subexpr":
            raise ParseError(f"sub-expression $( ) at offset {pos}")
        if kind not in ("ws", "comment"):
            tokens.append(Token(kind, text, pos))
        pos = match.end()
    tokens.append(Token("eof", "", pos))
    return tokens


# ---------------------------------------------------------------- syntax tree


@dataclass
class Node:
    pass


@dataclass
class Literal(Node):
    value: Any


@dataclass
class Variable(Node):
    name: str


@dataclass
class TypeLiteral(Node):
    name: str


@dataclass
class Member(Node):
    target: Node
    name: str
    static: bool = False
    arguments: list[Node] | None = None


@dataclass
class ArrayExpr(Node):
    statements: list[Node]


@dataclass
class HashExpr(Node):
    entries: list[tuple[str, Node]]


@dataclass
class ListExpr(Node):
    items: list[Node]


@dataclass
class Unary(Node):
    operator: str
    operand: Node


@dataclass
class Binary(Node):
    operator: str
    left: Node
    right: Node


@dataclass
class ScriptBlock(Node):
    parameters: list[str]
    statements: list[Node]


@dataclass
class Command(Node):
    name: str
    arguments: list[tuple[str | None, Node | None]] = field(default_factory=list)


@dataclass
class Pipeline(Node):
    stages: list[Node]


@dataclass
class Assignment(Node):
    variable: str
    value: Node


@dataclass
class If(Node):
    branches: list[tuple[Node, list[Node]]]
    otherwise: list[Node] | None


@dataclass
class Foreach(Node):
    variable: str
    collection: Node
    body: list[Node]


@dataclass
class Return(Node):
    value: Node | None


_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LOGICAL_OPERATORS = {"-and", "-or"}
_COMPARISON_OPERATORS = {"-eq", "-ne", "-gt", "-lt", "-ge", "-le", "-contains"}


class Parser:
    """Recursive descent over the token list; one method per construct."""

    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.current
        if token.kind != kind or (text is not None and token.text.lower() != text.lower()):
            wanted = text or kind
            raise ParseError(f"expected {wanted!r} at offset {token.pos}, found {token.text!r}")
        return self.advance()

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.current
        return token.kind == kind and (text is None or token.text.lower() == text.lower())

    def skip_separators(self) -> None:
        while self.at("newline") or self.at("punct", ";"):
            self.advance()

    def parse_script(self) -> list[Node]:
        statements = self.parse_statements(end=("eof",))
        self.expect("eof")
        return statements

    def parse_statements(self, end: tuple[str, ...]) -> list[Node]:
        statements: list[Node] = []
        self.skip_separators()
        while not self._at_end(end):
            statements.append(self.parse_statement())
            if not self._at_end(end) and not (self.at("newline") or self.at("punct", ";")):
                raise ParseError(
                    f"expected end of statement at offset {self.current.pos}, found {self.current.text!r}"
                )
            self.skip_separators()
        return statements

    def _at_end(self, end: tuple[str, ...]) -> bool:
        token = self.current
        return token.kind == "eof" or (token.kind == "punct" and token.text in end)

    def parse_block(self) -> list[Node]:
        self.expect("punct", "{")
        statements = self.parse_statements(end=("}",))
        self.expect("punct", "}")
        return statements

    def parse_statement(self) -> Node:
        token = self.current
        if token.kind == "word" and token.text.lower() == "if":
            return self.parse_if()
        if token.kind == "word" and token.text.lower() == "foreach":
            return self.parse_foreach()
        if token.kind == "word" and token.text.lower() == "return":
            self.advance()
            if self.at("newline") or self.at("eof") or self.at("punct", ";") or self.at("punct", "}"):
                return Return(None)
            return Return(self.parse_pipeline())
        if token.kind == "var" and self.tokens[self.index + 1].text == "=":
            self.advance()
            self.advance()
            return Assignment(token.text[1:], self.parse_pipeline())
        return self.parse_pipeline()

    def parse_if(self) -> If:
        self.advance()
        branches: list[tuple[Node, list[Node]]] = []
        self.expect("punct", "(")
        condition = self.parse_pipeline()
        self.expect("punct", ")")
        branches.append((condition, self.parse_block()))
        otherwise = None
        while True:
            saved = self.index
            while self.at("newline"):
                self.advance()
            if self.at("word", "elseif"):
                self.advance()
                self.expect("punct", "(")
                condition = self.parse_pipeline()
                self.expect("punct", ")")
                branches.append((condition, self.parse_block()))
            elif self.at("word", "else"):
                self.advance()
                otherwise = self.parse_block()
                break
            else:
                self.index = saved
                break
        return If(branches, otherwise)

    def parse_foreach(self) -> Foreach:
        self.advance()
        self.expect("punct", "(")
        variable = self.expect("var").text[1:]
        self.expect("word", "in")
        collection = self.parse_expression()
        self.expect("punct", ")")
        return Foreach(variable, collection, self.parse_block())

    def parse_pipeline(self) -> Node:
        stages = [self.parse_stage(first=True)]
        while self.at("punct", "|"):
            self.advance()
            while self.at("newline"):
                self.advance()
            stages.append(self.parse_stage(first=False))
        return stages[0] if len(stages) == 1 else Pipeline(stages)

    def parse_stage(self, first: bool) -> Node:
        if self.at("word") and self.current.text.lower() not in ("if", "foreach"):
            return self.parse_command()
        if not first:
            raise ParseError(f"expected a command after '|' at offset {self.current.pos}")
        return self.parse_expression()

    def parse_command(self) -> Command:
        name = self.advance().text
        command = Command(name)
        while not self._command_ends():
            if self.at("dashword"):
                parameter = self.advance().text[1:]
                if self._command_ends() or self.at("dashword"):
                    command.arguments.append((parameter, None))
                else:
                    command.arguments.append((parameter, self.parse_command_argument()))
            else:
                command.arguments.append((None, self.parse_command_argument()))
        return command

    def _command_ends(self) -> bool:
        token = self.current
        return token.kind in ("newline", "eof") or (
            token.kind == "punct" and token.text in (";", "|", ")", "}")
        )

    def parse_command_argument(self) -> Node:
        if self.at("word"):
            first: Node = Literal(self.advance().text)
        elif self.at("punct", "{"):
            first = self.parse_scriptblock()
        else:
            first = self.parse_postfix()
        if not self.at("punct", ","):
            return first
        items = [first]
        while self.at("punct", ","):
            self.advance()
            items.append(Literal(self.advance().text) if self.at("word") else self.parse_postfix())
        return ListExpr(items)

    def parse_scriptblock(self) -> ScriptBlock:
        self.expect("punct", "{")
        self.skip_separators()
        parameters: list[str] = []
        if self.at("word", "param"):
            self.advance()
            self.expect("punct", "(")
            while not self.at("punct", ")"):
                parameters.append(self.expect("var").text[1:])
                if self.at("punct", ","):
                    self.advance()
            self.expect("punct", ")")
        statements = self.parse_statements(end=("}",))
        self.expect("punct", "}")
        return ScriptBlock(parameters, statements)

    def parse_expression(self) -> Node:
        first = self.parse_logical()
        if not self.at("punct", ","):
            return first
        items = [first]
        while self.at("punct", ","):
            self.advance()
            items.append(self.parse_logical())
        return ListExpr(items)

    def parse_logical(self) -> Node:
        left = self.parse_comparison()
        while self.at("dashword") and self.current.text.lower() in _LOGICAL_OPERATORS:
            operator = self.advance().text.lower()
            left = Binary(operator, left, self.parse_comparison())
        return left

    def parse_comparison(self) -> Node:
        left = self.parse_unary()
        while self.at("dashword") and self.current.text.lower() in _COMPARISON_OPERATORS:
            operator = self.advance().text.lower()
            left = Binary(operator, left, self.parse_unary())
        return left

    def parse_unary(self) -> Node:
        if self.at("dashword", "-not"):
            self.advance()
            return Unary("-not", self.parse_unary())
        if self.at("type") and self.tokens[self.index + 1].kind != "dcolon":
            cast = self.advance().text[1:-1]
            return Unary("cast:" + cast.lower(), self.parse_unary())
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        while True:
            if self.at("dcolon") or (self.at("punct", ".") and not self._space_before_current()):
                static = self.advance().kind == "dcolon"
                name = self.expect("word").text
                arguments = None
                if self.at("punct", "(") and not self._space_before_current():
                    self.advance()
                    arguments = []
                    while not self.at("punct", ")"):
                        arguments.append(self.parse_logical())
                        if self.at("punct", ","):
                            self.advance()
                    self.expect("punct", ")")
                node = Member(node, name, static, arguments)
            else:
                return node

    def _space_before_current(self) -> bool:
        previous = self.tokens[self.index - 1]
        return previous.pos + len(previous.text) != self.current.pos

    def parse_primary(self) -> Node:
        token = self.current
        if token.kind == "var":
            self.advance()
            return Variable(token.text[1:].lower())
        if token.kind == "string":
            self.advance()
            return Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            self.advance()
            return Literal(_number(token.text))
        if token.kind == "type":
            self.advance()
            return TypeLiteral(token.text[1:-1].lower())
        if token.kind == "arrayopen":
            self.advance()
            statements = self.parse_statements(end=(")",))
            self.expect("punct", ")")
            return ArrayExpr(statements)
        if token.kind == "hashopen":
            return self.parse_hash()
        if token.kind == "punct" and token.text == "(":
            self.advance()
            inner = self.parse_pipeline()
            self.expect("punct", ")")
            return inner
        raise ParseError(f"unexpected {token.text!r} at offset {token.pos}")

    def parse_hash(self) -> HashExpr:
        self.advance()
        entries: list[tuple[str, Node]] = []
        self.skip_separators()
        while not self.at("punct", "}"):
            key = self.expect("word").text
            self.expect("punct", "=")
            entries.append((key, self.parse_pipeline()))
            self.skip_separators()
        self.expect("punct", "}")
        return HashExpr(entries)


def _number(text: str) -> int | float:
    for suffix, factor in _UNITS.items():
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return float(text) if "." in text else int(text)


def parse(source: str) -> list[Node]:
    return Parser(source).parse_script()


# ---------------------------------------------------------------- interpreter

CmdletFunction = Callable[["Invocation"], Iterable[Any]]


@dataclass
class Invocation:
    """One cmdlet call: its named and positional arguments and its pipeline input."""

    name: str
    named: dict[str, Any]
    positional: list[Any]
    pipeline_input: list[Any] | None
    interpreter: Interpreter

    def get(self, parameter: str, default: Any = None) -> Any:
        for key, value in self.named.items():
            if key.lower() == parameter.lower():
                return value
        return default

    def has(self, parameter: str) -> bool:
        return any(key.lower() == parameter.lower() for key in self.named)


class _Utf8:
    def GetString(self, data: bytes) -> str:  # noqa: N802 - PowerShell method name
        return data.decode("utf-8")


def truthy(value: Any) -> bool:
    if isinstance(value, list):
        return any(truthy(v) for v in value) if len(value) == 1 else bool(value)
    return bool(value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _unwrap(values: list[Any]) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class Interpreter:
    """Runs a parsed script against a table of cmdlets; every cmdlet call is recorded."""

    def __init__(
        self,
        cmdlets: dict[str, CmdletFunction],
        stdin: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.cmdlets = {name.lower(): fn for name, fn in cmdlets.items()}
        self.variables: dict[str, Any] = {
            "true": True,
            "false": False,
            "null": None,
            "input": [line for line in stdin.splitlines()],
            "erroractionpreference": "Continue",
        }
        self.calls: list[str] = []
        self.computer: str | None = None

    def run(self, statements: list[Node]) -> list[Any]:
        output: list[Any] = []
        try:
            for statement in statements:
                output.extend(self.statement(statement))
        except ReturnSignal as signal:
            output.extend(signal.args[0])
        return output

    def statement(self, node: Node) -> list[Any]:
        if isinstance(node, Assignment):
            value = self.evaluate(node.value)
            if node.variable.lower() != "null":
                self.variables[node.variable.lower()] = value
            return []
        if isinstance(node, If):
            for condition, body in node.branches:
                if truthy(self.evaluate(condition)):
                    return self.block(body)
            return self.block(node.otherwise or [])
        if isinstance(node, Foreach):
            output: list[Any] = []
            for item in as_list(self.evaluate(node.collection)):
                self.variables[node.variable.lower()] = item
                output.extend(self.block(node.body))
            return output
        if isinstance(node, Return):
            raise ReturnSignal([] if node.value is None else as_list(self.evaluate(node.value)))
        return self.outputs(node)

    def block(self, statements: list[Node]) -> list[Any]:
        output: list[Any] = []
        try:
            for statement in statements:
                output.extend(self.statement(statement))
        except ReturnSignal as signal:
            raise ReturnSignal(output + signal.args[0]) from None
        return output

    def outputs(self, node: Node) -> list[Any]:
        """What a statement writes to the pipeline (a list, unrolled like PowerShell does)."""
        if isinstance(node, Pipeline):
            values = self.outputs(node.stages[0])
            for stage in node.stages[1:]:
                assert isinstance(stage, Command)
                values = self.invoke(stage, values)
            return values
        if isinstance(node, Command):
            return self.invoke(node, None)
        return as_list(self.evaluate(node)) if not isinstance(node, HashExpr) else [self.evaluate(node)]

    def evaluate(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Variable):
            if node.name not in self.variables:
                return None
            return self.variables[node.name]
        if isinstance(node, TypeLiteral):
            return node
        if isinstance(node, ListExpr):
            return [self.evaluate(item) for item in node.items]
        if isinstance(node, ArrayExpr):
            return self.block(node.statements)
        if isinstance(node, HashExpr):
            return CIDict((key, self.evaluate(value)) for key, value in node.entries)
        if isinstance(node, ScriptBlock):
            return node
        if isinstance(node, Unary):
            value = self.evaluate(node.operand)
            if node.operator == "-not":
                return not truthy(value)
            return _cast(node.operator.removeprefix("cast:"), value)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Pipeline | Command):
            return _unwrap(self.outputs(node))
        raise PSError(f"cannot evaluate {type(node).__name__}")

    def binary(self, node: Binary) -> Any:
        left = self.evaluate(node.left)
        if node.operator == "-and":
            return truthy(left) and truthy(self.evaluate(node.right))
        if node.operator == "-or":
            return truthy(left) or truthy(self.evaluate(node.right))
        right = self.evaluate(node.right)
        if node.operator == "-contains":
            return any(_equal(item, right) for item in as_list(left))
        if node.operator == "-eq":
            return _equal(left, right)
        if node.operator == "-ne":
            return not _equal(left, right)
        comparisons = {
            "-gt": lambda a, b: a > b,
            "-lt": lambda a, b: a < b,
            "-ge": lambda a, b: a >= b,
            "-le": lambda a, b: a <= b,
        }
        return comparisons[node.operator](left, right)

    def member(self, node: Member) -> Any:
        target = self.evaluate(node.target)
        name = node.name.lower()
        if node.static:
            assert isinstance(target, TypeLiteral)
            return self.static_member(target.name, name, node.arguments)
        if node.arguments is not None:
            arguments = [self.evaluate(a) for a in node.arguments]
            return _call_method(target, name, arguments)
        if isinstance(target, list):
            return [_property(item, name) for item in target]
        return _property(target, name)

    def static_member(self, type_name: str, name: str, arguments: list[Node] | None) -> Any:
        values = [self.evaluate(a) for a in arguments or []]
        if type_name in ("text.encoding", "system.text.encoding") and name == "utf8":
            return _Utf8()
        if type_name in ("datetimeoffset", "system.datetimeoffset") and name == "utcnow":
            return _UtcNow(self.clock())
        if type_name in ("convert", "system.convert") and name == "frombase64string":
            try:
                return base64.b64decode(str(values[0]), validate=True)
            except ValueError as exc:
                raise PSError(f'Exception calling "FromBase64String": {exc}') from exc
        raise PSError(f"Unable to find type or member [{type_name}]::{name}")

    def invoke(self, command: Command, pipeline_input: list[Any] | None) -> list[Any]:
        function = self.cmdlets.get(command.name.lower())
        self.calls.append(command.name)
        if function is None:
            raise PSError(
                f"The term '{command.name}' is not recognized as the name of a cmdlet, function, "
                "script file, or operable program.",
                "ObjectNotFound",
                "CommandNotFoundException",
            )
        named: dict[str, Any] = {}
        positional: list[Any] = []
        for parameter, value in command.arguments:
            evaluated = True if value is None else self.evaluate(value)
            if parameter is None:
                positional.append(evaluated)
            else:
                named[parameter] = evaluated
        invocation = Invocation(command.name, named, positional, pipeline_input, self)
        preference = str(invocation.get("ErrorAction", "")).lower()
        try:
            return list(function(invocation))
        except PSError:
            if preference in ("silentlycontinue", "ignore"):
                return []
            raise

    def run_scriptblock(self, block: ScriptBlock, arguments: list[Any], item: Any = None) -> list[Any]:
        saved = dict(self.variables)
        try:
            for name, value in zip(block.parameters, arguments, strict=False):
                self.variables[name.lower()] = value
            self.variables["_"] = item
            return self.block(block.statements)
        finally:
            self.variables = saved


class PSEnum:
    """An enum value: compares by name like PowerShell, serialises as its number."""

    def __init__(self, name: str, number: int) -> None:
        self.name = name
        self.number = number

    def __repr__(self) -> str:
        return self.name


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, PSEnum):
        left = left.name if isinstance(right, str) else left.number
    if isinstance(right, PSEnum):
        right = right.name if isinstance(left, str) else right.number
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return bool(left == right)


class _UtcNow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def _property(target: Any, name: str) -> Any:
    if isinstance(target, CIDict):
        return target.lookup(name)
    if isinstance(target, dict):
        return next((v for k, v in target.items() if k.lower() == name), None)
    if name == "count" and isinstance(target, list):
        return len(target)
    return None


def _call_method(target: Any, name: str, arguments: list[Any]) -> Any:
    if isinstance(target, _Utf8) and name == "getstring":
        return target.GetString(arguments[0])
    if isinstance(target, _UtcNow) and name == "tounixtimemilliseconds":
        return int(target.seconds * 1000)
    if isinstance(target, str) and name == "trim":
        return target.strip()
    if isinstance(target, list) and name == "trim":
        return [str(item).strip() for item in target]
    raise PSError(f"Method invocation failed because it does not contain a method named '{name}'.")


def _cast(type_name: str, value: Any) -> Any:
    if type_name in ("int", "int32", "int64", "long"):
        return int(value or 0)
    if type_name == "bool":
        return truthy(value)
    if type_name == "string":
        return "" if value is None else str(value)
    raise PSError(f"Unable to find type [{type_name}].")
