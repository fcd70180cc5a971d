"""Kestra's flavour of Pebble templates: `render`, `render_typed` and `evaluate`, and the truthiness rules
that `runIf`, `Fail` and `Assert` apply to rendered text."""

from runner.expressions.pebble import (
    ExpressionError,
    evaluate,
    is_falsy,
    is_truthy,
    render,
    render_typed,
    to_text,
)

__all__ = ["ExpressionError", "evaluate", "is_falsy", "is_truthy", "render", "render_typed", "to_text"]
