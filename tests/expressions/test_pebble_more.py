"""Pebble as Kestra flows use it, beyond the core: jq (by libjq), method calls on values, tests with
parentheses, yaml, numberFormat, escapeChar, renderOnce, `set` inside `for`, whitespace control on
verbatim, and dates with month names. Each case states the behaviour of its source: Kestra's filters and
functions (core/src/main/java/io/kestra/core/runners/pebble) and Pebble's own documentation."""

from __future__ import annotations

from typing import Any

import pytest

from runner.expressions import ExpressionError, render

CONTEXT: dict[str, Any] = {
    "data": {"items": [{"n": "a"}, {"n": "b"}]},
    "body": '{"data": {"x": 1}}',
    "name": "Hello",
    "numbers": [1, 2, 3],
    "mapping": {"k": 1},
    "quoted": 'it\'s "x"',
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # JqFilter: the input (JSON text is read first) through jq; always a list of every result
        ("{{ data | jq('.items[].n') }}", '["a","b"]'),
        ("{{ body | jq('.data') | first }}", '{"x":1}'),
        ("{{ jq(data, '.items | length') | first }}", "2"),
        # method calls Pebble allows on strings, lists and maps
        ("{{ name.toUpperCase() }} {{ name.length() }} {{ name.substring(1, 3) }}", "HELLO 5 el"),
        ("{{ numbers.size() }} {{ numbers.contains(2) }} {{ mapping.containsKey('k') }}", "3 true true"),
        ("{{ mapping.keySet() | join(',') }}", "k"),
        # tests written with parentheses
        ("{{ numbers is empty() }} {{ [] is empty() }} {{ 4 is even() }}", "false true true"),
        # YamlFilter and the yaml function
        ("{{ data | yaml }}", "items:\n- n: a\n- n: b\n"),
        ("{{ yaml('a: 1\nb: [x, y]').b[1] }}", "y"),
        # DecimalFormat patterns, rounded half-even
        ("{{ 3.14159 | numberFormat('#.##') }}", "3.14"),
        ("{{ 1234567.891 | numberFormat('#,##0.00') }}", "1,234,567.89"),
        (
            "{{ 0.5 | numberFormat('0.000') }} {{ 2.5 | numberFormat('#') }} {{ 3.5 | numberFormat('#') }}",
            "0.500 2 4",
        ),
        # EscapeCharFilter: single, double, shell
        ("{{ quoted | escapeChar('single') }}", 'it\\\'s "x"'),
        ("{{ quoted | escapeChar('double') }}", 'it\'s \\"x\\"'),
        ("{{ quoted | escapeChar('shell') }}", "it'\\''s \"x\""),
        # renderOnce renders once, render until the text stops changing
        ("{{ renderOnce('{{ name }}') }}", "Hello"),
        # Pebble's set updates the nearest scope that has the variable
        ("{% set total = 0 %}{% for i in numbers %}{% set total = total + i %}{% endfor %}{{ total }}", "6"),
        # whitespace control on verbatim, as on any tag
        ("a {%- verbatim -%}  {{ raw }}  {%- endverbatim -%} b", "a{{ raw }}b"),
        # dates with month names, and the RFC 1123 named format
        ("{{ '03 June 2024' | date('yyyy-MM-dd', existingFormat='dd MMMM yyyy') }}", "2024-06-03"),
        ("{{ '03 Jun 2024' | date('yyyy-MM-dd', existingFormat='dd MMM yyyy') }}", "2024-06-03"),
        (
            "{{ 'Tue, 3 Jun 2008 11:05:30 GMT' | date('yyyy-MM-dd', existingFormat='rfc_1123_date_time') }}",
            "2008-06-03",
        ),
        (
            "{{ '2024-06-03T10:00:00Z' | date('rfc_1123_date_time', timeZone='UTC') }}",
            "Mon, 3 Jun 2024 10:00:00 GMT",
        ),
    ],
)
def test_kestra_pebble(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ name.nope() }}", "Unknown method `nope`"),
        ("{{ data | jq('.[') }}", "Invalid jq expression"),
        ("{{ quoted | escapeChar('other') }}", "either 'single', 'double', or 'shell'"),
    ],
)
def test_what_cannot_be_evaluated_says_what(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        render(template, CONTEXT)
