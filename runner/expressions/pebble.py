"""Rendering Kestra's Pebble templates: text with `{{ expr }}`, `{% tag %}` and `{# comment #}`, with
Kestra's engine settings (strict variables, no auto-escaping, no newline trimming)."""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from runner.expressions.parser import Node, Parser, Token, parse_expression, syntax_error, tokenize
from runner.expressions.values import (
    Env,
    EvalError,
    ExpressionError,
    Missing,
    is_falsy,
    is_list,
    is_map,
    is_truthy,
    java_str,
    to_bool,
    to_text,
)

__all__ = ["ExpressionError", "evaluate", "is_falsy", "is_truthy", "render", "render_typed", "to_text"]

_OPEN = re.compile(r"\{[{%#]")
# Kestra cuts raw blocks out with a regex before Pebble sees the text; `verbatim` is Pebble's own spelling.
_RAW = re.compile(
    r"\{%(-?)\s*(raw|verbatim)\s*(-?)%\}(.*?)\{%(-?)\s*end\2\s*(-?)%\}", re.DOTALL
)  # the dashes: whitespace control before and after each of the two tags
_T = TypeVar("_T")


class Block:
    line = 0

    def render(self, env: Env, out: list[str]) -> None:
        raise NotImplementedError


def render_blocks(blocks: list[Block], env: Env, out: list[str]) -> None:
    for block in blocks:
        try:
            block.render(env, out)
        except EvalError as exc:
            exc.line = exc.line or block.line
            raise


class Text(Block):
    def __init__(self, text: str) -> None:
        self.text = text

    def render(self, env: Env, out: list[str]) -> None:
        out.append(self.text)


class Print(Block):
    def __init__(self, expression: Node, line: int) -> None:
        self.expression, self.line = expression, line

    def render(self, env: Env, out: list[str]) -> None:
        out.append(to_text(self.expression.eval(env)))


class If(Block):
    def __init__(self, branches: list[tuple[Node, list[Block]]], otherwise: list[Block], line: int) -> None:
        self.branches, self.otherwise, self.line = branches, otherwise, line

    def render(self, env: Env, out: list[str]) -> None:
        for condition, body in self.branches:
            value = condition.eval(env)
            if value is None:
                raise EvalError("null value given to if statement and strict variables is set to true")
            if to_bool(value, "if statement"):
                render_blocks(body, env, out)
                return
        render_blocks(self.otherwise, env, out)


class For(Block):
    """Pebble's loop: `loop.index` counts from 0, maps yield key/value entries, null renders nothing."""

    def __init__(
        self, name: str, iterable: Node, body: list[Block], otherwise: list[Block], line: int
    ) -> None:
        self.name, self.iterable, self.line = name, iterable, line
        self.body, self.otherwise = body, otherwise

    def render(self, env: Env, out: list[str]) -> None:
        value = self.iterable.eval(env)
        if value is None:
            return
        if is_map(value):
            items = [{"key": key, "value": item} for key, item in value.items()]
        elif is_list(value):
            items = list(value)
        else:
            raise EvalError(f"Not an iterable object. Value = [{java_str(value)}]")
        if not items:
            render_blocks(self.otherwise, env, out)
            return
        outer, env.scope = env.scope, env.scope.new_child()
        try:
            for index, item in enumerate(items):
                env.scope["loop"] = {
                    "index": index,
                    "first": index == 0,
                    "last": index == len(items) - 1,
                    "length": len(items),
                    "revindex": len(items) - index - 1,
                }
                env.scope[self.name] = item
                render_blocks(self.body, env, out)
        finally:
            env.scope = outer


class Set(Block):
    def __init__(self, name: str, expression: Node, line: int) -> None:
        self.name, self.expression, self.line = name, expression, line

    def render(self, env: Env, out: list[str]) -> None:
        """Pebble sets the variable in the nearest scope that has it (a `set` in a `for` loop updates a
        variable set before the loop), else in the current one."""
        value = self.expression.eval(env)
        for scope in env.scope.maps:
            if self.name in scope:
                scope[self.name] = value
                return
        env.scope[self.name] = value


Item = tuple[str, Any, int]  # ("text", str, line) or ("print" | "tag", tokens, line)


def _scan(source: str) -> list[Item]:
    """Split a template into text and the token lists of its `{{ }}` and `{% %}` parts, applying
    `-` whitespace control and dropping comments."""
    items: list[Item] = []
    pos, line, trim_next = 0, 1, False
    while True:
        match = _OPEN.search(source, pos)
        end = match.start() if match else len(source)
        text, text_line = source[pos:end], line
        line += text.count("\n")
        if trim_next:
            text = text.lstrip()
        if match is None:
            if text:
                items.append(("text", text, text_line))
            return items
        start, trim_next = match.end(), False
        if raw := _RAW.match(source, end):
            before, _, after_open, body, before_close, after = raw.groups()
            body = body.lstrip() if after_open else body
            body = body.rstrip() if before_close else body
            items += [("text", text.rstrip() if before else text, text_line), ("text", body, line)]
            line += raw[0].count("\n")
            pos, trim_next = raw.end(), bool(after)
            continue
        if source.startswith("-", start):
            text, start = text.rstrip(), start + 1
        if text:
            items.append(("text", text, text_line))
        if match.group() == "{#":
            close = source.find("#}", start)
            if close < 0:
                raise syntax_error(source, line, "unclosed comment")
            trim_next = close > start and source[close - 1] == "-"
            line += source[start:close].count("\n")
            pos = close + 2
            continue
        kind = "print" if match.group() == "{{" else "tag"
        tokens, pos, end_line = tokenize(source, start, line, "}}" if kind == "print" else "%}")
        items.append((kind, tokens, line))
        line, trim_next = end_line, tokens[-1].value.startswith("-")


class _Builder:
    """Nests the scanned items into blocks: if/elseif/else/endif, for/else/endfor, set."""

    def __init__(self, items: list[Item], source: str) -> None:
        self.items, self.source, self.index = items, source, 0

    def block(self, stops: tuple[str, ...] = ()) -> tuple[list[Block], str, Parser]:
        blocks: list[Block] = []
        while self.index < len(self.items):
            kind, value, line = self.items[self.index]
            self.index += 1
            if kind == "text":
                blocks.append(Text(value))
                continue
            parser = Parser(value, self.source)
            if kind == "print":
                blocks.append(Print(parser.parse_all(), line))
                continue
            name = parser.expect("name").value
            if name in stops:
                return blocks, name, parser
            blocks.append(self.tag(name, parser, line))
        if stops:
            last_line = self.items[-1][2] if self.items else 1
            raise syntax_error(self.source, last_line, f"missing {{% {stops[-1]} %}}")
        return blocks, "", Parser([Token("end", "", 1)], self.source)

    @staticmethod
    def close(parser: Parser) -> None:
        if not parser.at("end"):
            raise parser.error("expected the end of the tag")

    def tail(self, parser: Parser, end: str) -> list[Block]:
        """After `{% else %}`: the blocks up to the closing tag."""
        self.close(parser)
        blocks, _, parser = self.block((end,))
        self.close(parser)
        return blocks

    def tag(self, name: str, parser: Parser, line: int) -> Block:
        if name == "if":
            branches, otherwise = [], []
            condition = parser.expression()
            while True:
                self.close(parser)
                body, stop, parser = self.block(("elseif", "else", "endif"))
                branches.append((condition, body))
                if stop != "elseif":
                    break
                condition = parser.expression()
            if stop == "else":
                otherwise = self.tail(parser, "endif")
            else:
                self.close(parser)
            return If(branches, otherwise, line)
        if name == "for":
            variable = parser.expect("name").value
            parser.expect("name", "in")
            iterable = parser.expression()
            self.close(parser)
            body, stop, parser = self.block(("else", "endfor"))
            otherwise = self.tail(parser, "endfor") if stop == "else" else []
            if stop == "endfor":
                self.close(parser)
            return For(variable, iterable, body, otherwise, line)
        if name == "set":
            variable = parser.expect("name").value
            parser.expect("op", "=")
            expression = parser.expression()
            self.close(parser)
            return Set(variable, expression, line)
        raise syntax_error(self.source, line, f"unknown or unexpected tag `{name}`")


@lru_cache(maxsize=512)
def _compile(template: str) -> tuple[Block, ...]:
    blocks, _, _ = _Builder(_scan(template), template).block()
    return tuple(blocks)


_parse = lru_cache(maxsize=512)(parse_expression)


def _env(context: Mapping[str, Any]) -> Env:
    return Env(ChainMap(dict(context)), context, render)


def _located(source: str, action: Callable[[], _T], line: int = 1) -> _T:
    """Turn evaluation failures into Kestra-style messages naming the whole template."""
    try:
        return action()
    except Missing as exc:
        message = f"Unable to find `{exc.name}` used in the expression `{source}` at line {exc.line}"
        raise ExpressionError(message) from None
    except EvalError as exc:
        message = f"{exc.message} in the expression `{source}` at line {exc.line or line}"
        raise ExpressionError(message) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        # values Pebble would reject in some other way, such as a list used as a map key
        raise ExpressionError(f"{type(exc).__name__}: {exc} in the expression `{source}`") from exc


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a template to text, as Kestra's VariableRenderer.render does."""
    if "{" not in template:
        return template
    blocks, env, out = list(_compile(template)), _env(context), list[str]()
    _located(template, lambda: render_blocks(blocks, env, out))
    return "".join(out)


def render_typed(template: str, context: Mapping[str, Any]) -> Any:
    """A template that is a single `{{ expr }}` (surrounding whitespace aside) yields the value itself."""
    if "{" not in template:
        return template
    blocks = [b for b in _compile(template) if not (isinstance(b, Text) and not b.text.strip())]
    if len(blocks) == 1 and isinstance(blocks[0], Print):
        node, env = blocks[0], _env(context)
        return _located(template, lambda: node.expression.eval(env), node.line)
    return render(template, context)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a bare expression, without delimiters."""
    node, env = _parse(expression), _env(context)
    return _located(expression, lambda: node.eval(env))
