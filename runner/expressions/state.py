"""Bitbucket's expression language for `condition.state`: a boolean over variables, evaluated just before a
step runs.

`(COUNT > 0 && glob(BITBUCKET_BRANCH, "release/*")) || DEPLOY == true`: names are variables (without `$`;
an unset one is the empty string), literals are "strings", numbers and true/false; `==` and `!=` compare
text (true and false as their names, so `FLAG == true` holds for FLAG=true), `<`, `<=`, `>`, `>=` compare
numbers; `!`, `&&`, `||` and parentheses combine; glob(value, "pattern") matches as the file's globs do.
A result that is not true or false is an error, as on Bitbucket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.globs import matches

TOKEN = re.compile(
    r"\s*(?:(?P<string>\"(?:[^\"\\]|\\.)*\")|(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|>=|<=|&&|\|\||[<>!(),]))"
)
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


class StateError(Exception):
    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.column = column  # 0-based offset into the expression


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, name, op, end
    text: str
    column: int


Node = tuple[Any, ...]  # ("literal", value) | ("name", NAME) | ("glob", a, b) | ("not", a) | (op, a, b)


def tokens(expression: str) -> list[Token]:
    found: list[Token] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = TOKEN.match(expression, position)
        if match is None or match.end() == position:
            column = len(expression) - len(expression[position:].lstrip())
            raise StateError(f"unexpected {expression[column]!r}", column)
        kind = match.lastgroup or "op"
        text = match.group(kind)
        found.append(Token(kind, text, match.start(kind)))
        position = match.end()
    found.append(Token("end", "", len(expression)))
    return found


class Parser:
    def __init__(self, expression: str) -> None:
        self.tokens = tokens(expression)
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if text is not None and token.text != text:
            shown = repr(token.text) if token.text else "the end"
            raise StateError(f"expected {text!r}, found {shown}", token.column)
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.any()
        end = self.peek()
        if end.kind != "end":
            raise StateError(f"unexpected {end.text!r}", end.column)
        return node

    def any(self) -> Node:
        node = self.both()
        while self.peek().text == "||":
            self.take()
            node = ("||", node, self.both())
        return node

    def both(self) -> Node:
        node = self.negation()
        while self.peek().text == "&&":
            self.take()
            node = ("&&", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.peek().text == "!":
            self.take()
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        node = self.operand()
        if self.peek().text in COMPARISONS:
            operator = self.take().text
            node = (operator, node, self.operand())
        return node

    def operand(self) -> Node:
        token = self.take()
        if token.kind == "string":
            return ("literal", re.sub(r"\\(.)", r"\1", token.text[1:-1]))
        if token.kind == "number":
            return ("literal", float(token.text))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return ("literal", token.text == "true")
            if token.text == "glob" and self.peek().text == "(":
                self.take("(")
                value = self.any()
                self.take(",")
                pattern = self.any()
                self.take(")")
                return ("glob", value, pattern)
            return ("name", token.text)
        if token.text == "(":
            node = self.any()
            self.take(")")
            return node
        shown = repr(token.text) if token.text else "the end"
        raise StateError(f"expected a value, found {shown}", token.column)


def parse(expression: str) -> Node:
    """The expression's tree; a StateError says what is wrong and where."""
    return Parser(expression).parse()


def evaluate(expression: str, variables: Mapping[str, str]) -> bool:
    result = _value(parse(expression), variables)
    if not isinstance(result, bool):
        raise StateError(f"the expression gives {_text(result)!r}, not true or false")
    return result


def _value(node: Node, variables: Mapping[str, str]) -> object:
    kind = node[0]
    if kind == "literal":
        return node[1]
    if kind == "name":
        return variables.get(str(node[1]), "")
    if kind == "not":
        return not _truth(_value(node[1], variables))
    if kind == "glob":
        value = _text(_value(node[1], variables))
        pattern = _text(_value(node[2], variables))
        return matches(value, (pattern,))
    left = _value(node[1], variables)
    if kind == "&&":
        return _truth(left) and _truth(_value(node[2], variables))
    if kind == "||":
        return _truth(left) or _truth(_value(node[2], variables))
    right = _value(node[2], variables)
    if kind == "==":
        return _same(left, right)
    if kind == "!=":
        return not _same(left, right)
    a, b = _number(left), _number(right)
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[str(kind)]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) or isinstance(right, float):
        try:
            return _number(left) == _number(right)
        except StateError:
            return False
    return _text(left) == _text(right)


def _number(value: object) -> float:
    if isinstance(value, float):
        return value
    try:
        return float(_text(value))
    except ValueError:
        raise StateError(f"{_text(value)!r} is not a number") from None


def _truth(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if _text(value) in ("true", "false"):
        return _text(value) == "true"
    raise StateError(f"{_text(value)!r} is not true or false")
