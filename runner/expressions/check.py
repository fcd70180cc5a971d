"""What can be told about a template before it runs: a syntax error, and the functions, filters, tests and
root names it uses that do not exist. `runner validate` reports them with their place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.expressions import ExpressionError
from runner.expressions import parser as nodes
from runner.expressions.library import FILTERS, FUNCTIONS, TESTS
from runner.expressions.pebble import For, Set, _compile

BUILTIN_TESTS = {"defined", "null", "none"}


def problems(template: str, roots: Iterable[str]) -> list[str]:
    """Why the template will fail whatever the run's values are; [] when it may work."""
    if "{{" not in template and "{%" not in template:
        return []
    try:
        blocks = _compile(template)
    except ExpressionError as exc:
        return [str(exc)]
    bound: set[str] = {"loop"}
    found: list[str] = []
    known_roots = set(roots)

    def visit(item: Any) -> None:
        if isinstance(item, For | Set):
            bound.add(item.name)
        if isinstance(item, nodes.Var) and item.name not in known_roots and item.name not in bound:
            found.append(f"`{item.name}` is not a name a template can use here")
        elif isinstance(item, nodes.Call) and item.name not in FUNCTIONS:
            found.append(f"unknown function `{item.name}()`")
        elif isinstance(item, nodes.Filter) and item.name not in FILTERS:
            found.append(f"unknown filter `{item.name}`")
        elif isinstance(item, nodes.IsTest) and item.name not in TESTS and item.name not in BUILTIN_TESTS:
            found.append(f"unknown test `{item.name}`")
        for value in _children(item):
            visit(value)

    # names bound anywhere (a `for` variable, a `set`) count everywhere: a later use may be in a loop
    for block in _walk_blocks(blocks):
        if isinstance(block, For | Set):
            bound.add(block.name)
    for block in blocks:
        visit(block)
    return list(dict.fromkeys(found))


def _walk_blocks(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        yield item
        yield from _walk_blocks(value for value in _children(item) if hasattr(value, "render"))


def _children(item: Any) -> Iterable[Any]:
    if isinstance(item, list | tuple):
        yield from item
        return
    if not hasattr(item, "__dict__"):
        return
    for value in vars(item).values():
        if isinstance(value, list | tuple):
            for element in value:
                yield from (element if isinstance(element, tuple) else (element,))
        elif isinstance(value, dict):
            yield from value.values()
        elif hasattr(value, "__dict__") and not isinstance(value, str | int | float | bool):
            yield value
