"""Pebble expressions: a tokenizer, a Pratt parser with Pebble's precedence table, and the tree it builds,
which evaluates itself against an Env."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from runner.expressions.library import FILTERS, FUNCTIONS, TESTS, bind, range_values
from runner.expressions.methods import call_method
from runner.expressions.values import (
    Env,
    EvalError,
    ExpressionError,
    Missing,
    arithmetic,
    compare,
    contains,
    equals,
    is_map,
    java_str,
    to_bool,
    to_text,
)


class Token(NamedTuple):
    kind: str  # name, num, str, istr (interpolated string), op, end
    value: Any
    line: int


# longest first, so that `???` is not read as `??` then `?`
_OPS = (
    "???", "??", "..", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "~", "|", "?", ":",
    "(", ")", "[", "]", "{", "}", ",", ".", "=",
)  # fmt: skip
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"(\d+)L|\d+(\.\d+)?")
_SPACE = re.compile(r"\s*")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_T = TypeVar("_T")


def syntax_error(source: str, line: int, detail: str) -> ExpressionError:
    return ExpressionError(f"Syntax error in the expression `{source}` at line {line}: {detail}")


def tokenize(
    source: str, pos: int, line: int, close: str | None, trim: bool = True
) -> tuple[list[Token], int, int]:
    """Tokens from `pos` up to `close` (only outside brackets, as Pebble's lexer does) or the end of the
    text. Returns the tokens, ending with an `end` token whose value is the delimiter, the position after
    it and the line there. With `trim`, `-close` is also a delimiter (whitespace control)."""
    tokens: list[Token] = []
    brackets: list[str] = []
    while True:
        space = _SPACE.match(source, pos)
        assert space is not None
        line += space.group().count("\n")
        pos = space.end()
        if close is not None and not brackets:
            for delimiter in ("-" + close, close) if trim else (close,):
                if source.startswith(delimiter, pos):
                    tokens.append(Token("end", delimiter, line))
                    return tokens, pos + len(delimiter), line
        if pos >= len(source):
            if close is not None:
                raise syntax_error(source, line, f"missing `{brackets[-1] if brackets else close}`")
            tokens.append(Token("end", "", line))
            return tokens, pos, line
        char = source[pos]
        if char in "'\"":
            token, pos, end_line = _string(source, pos, line)
            tokens.append(token)
            line = end_line
        elif number := _NUMBER.match(source, pos):
            text = number.group()
            value = int(number[1]) if number[1] else float(text) if number[2] else int(text)
            tokens.append(Token("num", value, line))
            pos = number.end()
        elif name := _NAME.match(source, pos):
            tokens.append(Token("name", name.group(), line))
            pos = name.end()
        else:
            op = next((op for op in _OPS if source.startswith(op, pos)), None)
            if op is None:
                raise syntax_error(source, line, f"unexpected character `{char}`")
            if op in _PAIRS:
                brackets.append(_PAIRS[op])
            elif op in ")]}":
                expected = brackets.pop() if brackets else None
                if expected != op:
                    raise syntax_error(
                        source, line, f"missing `{expected}`" if expected else f"unexpected `{op}`"
                    )
            tokens.append(Token("op", op, line))
            pos += len(op)


def _string(source: str, pos: int, line: int) -> tuple[Token, int, int]:
    """A quoted string. Like Pebble, a backslash only escapes the enclosing quote and is otherwise kept;
    double-quoted strings may interpolate `#{expression}`."""
    quote, start_line = source[pos], line
    parts: list[str | list[Token]] = []
    text: list[str] = []
    pos += 1
    while pos < len(source):
        char = source[pos]
        if char == "\\" and pos + 1 < len(source):
            following = source[pos + 1]
            text.append(following if following == quote else char + following)
            line += following == "\n"
            pos += 2
            continue
        if char == quote:
            if not parts:
                return Token("str", "".join(text), start_line), pos + 1, line
            parts.append("".join(text))
            return Token("istr", parts, start_line), pos + 1, line
        if quote == '"' and source.startswith("#{", pos):
            parts.append("".join(text))
            text = []
            inner, pos, line = tokenize(source, pos + 2, line, "}", trim=False)
            parts.append(inner)
            continue
        line += char == "\n"
        text.append(char)
        pos += 1
    raise syntax_error(source, start_line, "unterminated string")


# --- tree ------------------------------------------------------------------------------------------


class Node:
    line = 0

    def eval(self, env: Env) -> Any:
        raise NotImplementedError


class Literal(Node):
    def __init__(self, value: Any) -> None:
        self.value = value

    def eval(self, env: Env) -> Any:
        return self.value


class Var(Node):
    def __init__(self, name: str, line: int) -> None:
        self.name, self.line = name, line

    def eval(self, env: Env) -> Any:
        try:
            return env.scope[self.name]
        except KeyError:
            raise Missing(self.name, self.line) from None


class Attr(Node):
    """`a.b` and `a[b]`. Strict mode: a missing key, an index out of range or a null parent is an error
    that names the attribute (or the variable, when the parent is a null variable)."""

    def __init__(self, target: Node, key: Node, line: int) -> None:
        self.target, self.key, self.line = target, key, line

    def eval(self, env: Env) -> Any:
        target, key = self.target.eval(env), self.key.eval(env)
        if target is None:
            raise Missing(self.target.name if isinstance(self.target, Var) else java_str(key), self.line)
        if is_map(target):
            if key in target:
                return target[key]
        elif isinstance(target, list | tuple):
            index = key if isinstance(key, int) else int(key) if re.fullmatch(r"-?\d+", str(key)) else None
            if index is not None and not isinstance(index, bool) and 0 <= index < len(target):
                return target[index]
        elif isinstance(key, str) and not key.startswith("_") and not isinstance(target, str | int | float):
            value = getattr(target, key, None)
            if value is not None and not callable(value):
                return value
        raise Missing(java_str(key), self.line)


class Unary(Node):
    def __init__(self, op: str, operand: Node, line: int) -> None:
        self.op, self.operand, self.line = op, operand, line

    def eval(self, env: Env) -> Any:
        value = self.operand.eval(env)
        if self.op == "not":
            return not to_bool(value, "not")
        return arithmetic("*", -1 if self.op == "-" else 1, value)


class Binary(Node):
    def __init__(self, op: str, left: Node, right: Node, line: int) -> None:
        self.op, self.left, self.right, self.line = op, left, right, line

    def eval(self, env: Env) -> Any:
        op = self.op
        if op in ("??", "???"):
            try:
                value = self.left.eval(env)
            except Missing:
                return self.right.eval(env)
            return self.right.eval(env) if value is None and op == "??" else value
        left = self.left.eval(env)
        if op == "and":
            return to_bool(left, "and") and to_bool(self.right.eval(env), "and")
        if op == "or":
            return to_bool(left, "or") or to_bool(self.right.eval(env), "or")
        if op == "contains" and left is None:
            return False
        right = self.right.eval(env)
        if op in ("==", "equals"):
            return equals(left, right)
        if op == "!=":
            return not equals(left, right)
        if op in ("<", "<=", ">", ">="):
            return compare(op, left, right)
        if op == "contains":
            return contains(left, right)
        if op == "~":
            return to_text(left) + to_text(right)
        if op == "..":
            return range_values(left, right, 1)
        return arithmetic(op, left, right)


class Ternary(Node):
    def __init__(self, condition: Node, then: Node, otherwise: Node) -> None:
        self.condition, self.then, self.otherwise = condition, then, otherwise

    def eval(self, env: Env) -> Any:
        condition = self.condition.eval(env)
        chosen = condition is not None and to_bool(condition, "a ternary condition")
        return (self.then if chosen else self.otherwise).eval(env)


class Invocation(Node):
    """Shared by filters, functions and tests: arguments are positional nodes and named nodes."""

    def __init__(self, name: str, args: list[Node], named: dict[str, Node], line: int) -> None:
        self.name, self.args, self.named, self.line = name, args, named, line

    def arguments(self, env: Env) -> tuple[list[Any], dict[str, Any]]:
        return [arg.eval(env) for arg in self.args], {key: arg.eval(env) for key, arg in self.named.items()}


def _guard(kind: str, name: str, exc: Exception) -> EvalError:
    return EvalError(f"{kind.capitalize()} `{name}` failed: {exc}")


class Filter(Invocation):
    def __init__(self, target: Node, name: str, args: list[Node], named: dict[str, Node], line: int) -> None:
        super().__init__(name, args, named, line)
        self.target = target

    def eval(self, env: Env) -> Any:
        if self.name not in FILTERS:
            raise EvalError(f"Unknown filter `{self.name}`")
        params, nulls, function = FILTERS[self.name]
        args = bind("filter", self.name, params, *self.arguments(env))
        if self.name == "default":  # the one filter that tolerates an undefined input
            try:
                value = self.target.eval(env)
            except Missing:
                value = None
        else:
            value = self.target.eval(env)
        if value is None and not nulls:
            return None
        try:
            return function(value, args)
        except (TypeError, ValueError, ArithmeticError, LookupError, re.error) as exc:
            raise _guard("filter", self.name, exc) from exc


class Call(Invocation):
    def eval(self, env: Env) -> Any:
        if self.name not in FUNCTIONS:
            raise EvalError(f"Unknown function `{self.name}`")
        params, function = FUNCTIONS[self.name]
        args = bind("function", self.name, params, *self.arguments(env))
        try:
            return function(env, args)
        except (TypeError, ValueError, ArithmeticError, LookupError, re.error) as exc:
            raise _guard("function", self.name, exc) from exc


class MethodCall(Node):
    """`value.method(args)`: the Java methods Pebble allows on strings, lists and maps."""

    def __init__(self, target: Node, name: str, args: list[Node], line: int) -> None:
        self.target, self.name, self.args, self.line = target, name, args, line

    def eval(self, env: Env) -> Any:
        return call_method(self.target.eval(env), self.name, [arg.eval(env) for arg in self.args])


class IsTest(Invocation):
    def __init__(
        self, target: Node, name: str, negate: bool, line: int, args: list[Node] | None = None
    ) -> None:
        super().__init__(name, args or [], {}, line)
        self.target, self.negate = target, negate

    def eval(self, env: Env) -> bool:
        if self.name == "defined":  # Pebble's DefinedTest is `not null`, evaluated leniently
            try:
                result = self.target.eval(env) is not None
            except Missing:
                result = False
        elif self.name in TESTS:
            args = [arg.eval(env) for arg in self.args]
            try:
                result = TESTS[self.name](self.target.eval(env), *args)
            except TypeError as exc:
                raise EvalError(f"Test `{self.name}` takes other arguments: {exc}") from exc
        else:
            raise EvalError(f"Unknown test `{self.name}`")
        return result != self.negate


class ListLiteral(Node):
    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def eval(self, env: Env) -> list[Any]:
        return [item.eval(env) for item in self.items]


class MapLiteral(Node):
    """Keys are expressions, as in Pebble: `{'k': 1}` has a string key, `{k: 1}` uses the variable k."""

    def __init__(self, entries: list[tuple[Node, Node]]) -> None:
        self.entries = entries

    def eval(self, env: Env) -> dict[Any, Any]:
        return {key.eval(env): value.eval(env) for key, value in self.entries}


class Interpolation(Node):
    def __init__(self, parts: list[Node]) -> None:
        self.parts = parts

    def eval(self, env: Env) -> str:
        return "".join(to_text(part.eval(env)) for part in self.parts)


# --- parser ----------------------------------------------------------------------------------------

# Pebble's CoreExtension table plus Kestra's `??`/`???`; all left-associative.
BINARY = {
    "or": 10, "and": 15, "is": 20, "contains": 20,
    "==": 30, "equals": 30, "!=": 30, "<": 30, ">": 30, "<=": 30, ">=": 30,
    "+": 40, "-": 40, "*": 60, "/": 60, "%": 60, "|": 100, "~": 110, "..": 120, "??": 120, "???": 120,
}  # fmt: skip
UNARY_PRECEDENCE = 500
_WORD_OPERATORS = {"or", "and", "is", "contains", "equals"}
_CONSTANTS = {"true": True, "TRUE": True, "false": False, "FALSE": False}
_NULLS = {"null", "NULL", "none", "NONE"}


class Parser:
    def __init__(self, tokens: list[Token], source: str) -> None:
        self.tokens, self.source, self.index = tokens, source, 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        return token.kind == kind and (value is None or token.value == value)

    def expect(self, kind: str, value: Any = None) -> Token:
        if not self.at(kind, value):
            raise self.error(f"expected `{value or kind}`")
        return self.advance()

    def error(self, detail: str, token: Token | None = None) -> ExpressionError:
        token = token or self.peek()
        found = "the end" if token.kind == "end" else f"`{token.value}`"
        return syntax_error(self.source, token.line, f"{detail}, found {found}")

    def parse_all(self) -> Node:
        node = self.expression()
        if not self.at("end"):
            raise self.error("unexpected token")
        return node

    def expression(self, min_precedence: int = 0) -> Node:
        token = self.peek()
        if token[:2] in (("op", "-"), ("op", "+"), ("name", "not")):
            self.advance()
            node: Node = Unary(token.value, self.expression(UNARY_PRECEDENCE), token.line)
        else:
            node = self.primary()
        while True:
            token = self.peek()
            is_operator = token.kind == "op" or (token.kind == "name" and token.value in _WORD_OPERATORS)
            precedence = BINARY.get(token.value) if is_operator else None
            if precedence is None or precedence < min_precedence:
                break
            self.advance()
            if token.value == "|":
                name = self.expect("name")
                args, named = self.arguments() if self.at("op", "(") else ([], {})
                node = Filter(node, name.value, args, named, name.line)
            elif token.value == "is":
                negate = self.at("name", "not")
                if negate:
                    self.advance()
                name = self.expect("name")
                test_args: list[Node] = []
                if self.at("op", "("):  # `is empty()`, `is divisibleby(3)`
                    test_args, named = self.arguments()
                    if named:
                        raise self.error("a test takes positional arguments only", name)
                node = IsTest(node, name.value, negate, name.line, test_args)
            else:
                node = Binary(token.value, node, self.expression(precedence + 1), token.line)
        if min_precedence == 0 and self.at("op", "?"):
            self.advance()
            then = self.expression()
            self.expect("op", ":")
            node = Ternary(node, then, self.expression())
        return node

    def primary(self) -> Node:
        token = self.advance()
        node: Node
        if token.kind in ("num", "str"):
            node = Literal(token.value)
        elif token.kind == "istr":
            parts = token.value
            node = Interpolation(
                [Literal(p) if isinstance(p, str) else Parser(p, self.source).parse_all() for p in parts]
            )
        elif token.kind == "name" and token.value in _CONSTANTS:
            node = Literal(_CONSTANTS[token.value])
        elif token.kind == "name" and token.value in _NULLS:
            node = Literal(None)
        elif token.kind == "name" and self.at("op", "("):
            node = Call(token.value, *self.arguments(), token.line)
        elif token.kind == "name":
            node = Var(token.value, token.line)
        elif token.value == "(" and token.kind == "op":
            node = self.expression()
            self.expect("op", ")")
        elif token.value == "[" and token.kind == "op":
            node = ListLiteral(self.sequence("]", self.expression))
        elif token.value == "{" and token.kind == "op":
            node = MapLiteral(self.sequence("}", self.entry))
        else:
            raise self.error("expected a value", token)
        return self.postfix(node)

    def entry(self) -> tuple[Node, Node]:
        key = self.expression()
        self.expect("op", ":")
        return key, self.expression()

    def sequence(self, closing: str, item: Callable[[], _T]) -> list[_T]:
        items: list[_T] = []
        while not self.at("op", closing):
            items.append(item())
            if not self.at("op", closing):
                self.expect("op", ",")
        self.advance()
        return items

    def arguments(self) -> tuple[list[Node], dict[str, Node]]:
        self.expect("op", "(")
        args: list[Node] = []
        named: dict[str, Node] = {}
        while not self.at("op", ")"):
            if self.at("name") and self.tokens[self.index + 1][:2] == ("op", "="):
                name = self.advance().value
                self.advance()
                named[name] = self.expression()
            elif named:
                raise self.error("positional arguments must come before named ones")
            else:
                args.append(self.expression())
            if not self.at("op", ")"):
                self.expect("op", ",")
        self.advance()
        return args, named

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("op", "."):
                self.advance()
                name = self.expect("name")
                if self.at("op", "("):
                    args, named = self.arguments()
                    if named:
                        raise self.error("a method takes positional arguments only", name)
                    node = MethodCall(node, name.value, args, name.line)
                    continue
                node = Attr(node, Literal(name.value), name.line)
            elif self.at("op", "["):
                line = self.advance().line
                key = self.expression()
                self.expect("op", "]")
                node = Attr(node, key, line)
            else:
                return node


def parse_expression(source: str) -> Node:
    tokens, _, _ = tokenize(source, 0, 1, None)
    return Parser(tokens, source).parse_all()
