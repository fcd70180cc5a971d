"""Kestra's Pebble: precedence, strictness, value semantics, tags, filters and functions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from runner.expressions import (
    ExpressionError,
    evaluate,
    is_falsy,
    is_truthy,
    render,
    render_typed,
    to_text,
)

MOMENT = datetime(2024, 1, 31, 13, 5, 9, 123456, tzinfo=UTC)

CTX: dict[str, Any] = {
    "flow": {"id": "redis-flow", "namespace": "company.team"},
    "outputs": {
        "get": {"data": "redis-flow", "key": "key_string_1"},
        "getAfterDelete": {"key": "key_string_1"},
        "my-task": {"value": "hyphen"},
        "start": {"exitCode": 0, "taskRunner": {"containerId": "c0ffee"}},
    },
    "vars": {
        "x": "{{ flow.id }}-suffix",
        "nested": "{{ vars.x }}",
        "servers": ["a", "b"],
        "empty": "",
        "blank": "  ",
        "list": [],
        "map": {},
    },
    "inputs": {"n": 5, "f": 2.5, "s": "5", "name": "world wide"},
    "items": [3, 1, 2],
    "m": {"b": 2, "a": 1},
    "nul": None,
    "d": MOMENT,
    "k": "dyn",
}

# (expression, expected value): bare expressions through evaluate()
EXPRESSIONS: list[tuple[str, Any]] = [
    # precedence traps: Pebble, not Jinja2
    ("not 'a' == 'b'", False),  # (not 'a') == 'b'
    ("not inputs.n == 5", False),
    ("not missing is defined", False),  # (not missing) is defined
    ("'xyz' contains 'a' == false", False),  # 'xyz' contains ('a' == false)
    ("'is false' contains 'a' == false", True),
    ("'a' ~ 'b' | upper", "AB"),  # ('a' ~ 'b') | upper
    ("'a' ~ 1 + 2", "a12"),  # ('a' ~ 1) + 2
    ("-2 | abs", 2),  # (-2) | abs
    ("1 + -2 | abs", 3),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 2 - 3", 5),
    ("2 * 3 % 4", 2),
    ("1 + 2 == 3", True),
    ("1 < 2 == true", True),  # `<` and `==` share a level: (1 < 2) == true
    ("true or false and false", True),
    ("false and true or true", True),
    ("items contains 1 and true", True),
    ("missing is defined == false", True),
    ("5 is odd and 4 is even", True),
    ("nul ?? 'd' ~ 'x'", "dx"),  # `??` binds tighter than `~`
    ("'a' ~ nul ?? 'b'", "ab"),
    ("1..3 | length", 3),
    ("inputs.n > 3 ? 'big' : 'small'", "big"),
    ("true ? 'a' : false ? 'b' : 'c'", "a"),
    ("nul ? 'a' : 'b'", "b"),
    ("(outputs.getAfterDelete contains 'data') == false", True),
    # equality
    ("1 == 1.0", True),
    ("'5' == 5", False),
    ("true == 1", False),
    ("nul == null", True),
    ("1 equals 1", True),
    ("'a' != 'b'", True),
    ("[1, 'a'] == [1, 'a']", True),
    ("nul < 1", False),
    # arithmetic
    ("5 / 2", 2),
    ("-5 / 2", -2),
    ("-5 % 3", -2),
    ("5 / 2.0", 2.5),
    ("7 % 2.5", 2.0),
    ("'a' + 1", "a1"),
    ("1 + 'a'", "1a"),
    ("'x' + nul", "xnull"),
    ("'5' * 2", 10),
    ("[1] + 2", [1, 2]),
    ("[1] + [2, 3]", [1, 2, 3]),
    ("[1, 2, 1] - 1", [2, 1]),
    ("-inputs.f", -2.5),
    # booleans
    ("true and 'false'", True),
    ("0 or ''", False),
    ("1 and 2", True),
    ("not ''", True),
    ("not 0.0", True),
    # contains
    ("[1, 2] contains 1", True),
    ("[1, 2] contains 3", False),
    ("[1, 2] contains [2, 1]", True),
    ("[1, 2] contains [1, 3]", False),
    ("m contains 'a'", True),
    ("m contains 1", False),
    ("'abc' contains 'b'", True),
    ("nul contains 'x'", False),
    ("outputs.getAfterDelete contains 'data'", False),
    # defined / null coalescing
    ("missing is defined", False),
    ("missing is not defined", True),
    ("flow.id is defined", True),
    ("outputs.getAfterDelete.data is defined", False),
    ("nul is defined", False),
    ("nul is null", True),
    ("nul is none", True),
    ("flow is not null", True),
    ("missing ?? 'd'", "d"),
    ("nul ?? 'd'", "d"),
    ("missing ??? 'd'", "d"),
    ("nul ??? 'd'", None),
    ("flow.id ?? 'd'", "redis-flow"),
    ("outputs.getAfterDelete.data ?? 'gone'", "gone"),
    ("missing | default('d')", "d"),
    ("missing.deeper | default('d')", "d"),
    ("vars.empty | default('d')", "d"),
    ("vars.blank | default('d')", "d"),
    ("vars.list | default('d')", "d"),
    ("vars.map | default('d')", "d"),
    ("nul | default('d')", "d"),
    ("0 | default('d')", 0),
    ("false | default('d')", False),
    # tests
    ("'' is empty", True),
    ("[1] is empty", False),
    ("items is iterable", True),
    ("'abc' is iterable", False),
    ("m is map", True),
    ("'{\"a\": 1}' is json", True),
    ("'{a' is json", False),
    # access and literals
    ("outputs['my-task'].value", "hyphen"),
    ('outputs["get"].data', "redis-flow"),
    ("items[0]", 3),
    ("outputs.start.taskRunner.containerId", "c0ffee"),
    ("{'k': 1, 'j': [true, null]}", {"k": 1, "j": [True, None]}),
    ("{k: 1}", {"dyn": 1}),  # Pebble map keys are expressions
    ("{}", {}),
    ("[]", []),
    ("TRUE", True),
    ("none", None),
    ("1.5", 1.5),
    ("'it\\'s'", "it's"),
    ("'a\\nb'", "a\\nb"),  # Pebble keeps backslashes other than the quote escape
    ('"id=#{flow.id}, n=#{inputs.n + 1}"', "id=redis-flow, n=6"),
    ("'#{flow.id}'", "#{flow.id}"),
    # string filters
    ("'abc' | upper", "ABC"),
    ("'ABC' | lower", "abc"),
    ("inputs.name | title", "World Wide"),
    ("'hello WORLD' | capitalize", "Hello WORLD"),
    ("'  x  ' | trim", "x"),
    ("'abc' | length", 3),
    ("items | length", 3),
    ("m | length", 2),
    ("nul | length", 0),
    ("items | join(', ')", "3, 1, 2"),
    ("items | join", "312"),
    ("'a,b,,c,,' | split(',')", ["a", "b", "", "c"]),
    ("'a.b' | split('\\.')", ["a", "b"]),  # the delimiter is a regular expression
    ("'a-b-c' | split('-', 2)", ["a", "b-c"]),
    ("'aXbX' | replace('X', '-')", "a-b-"),
    ("'hello' | replace({'l': 'L', 'o': '0'})", "heLL0"),
    ("'a1b22' | replace({'[0-9]+': '#'}, regexp=true)", "a#b#"),
    ("{'a': 'x.y', 'b': ['x']} | replace({'x': 'z'})", {"a": "z.y", "b": ["z"]}),
    ("'abc' | first", "a"),
    ("items | first", 3),
    ("items | last", 2),
    ("[] | first", None),
    ("-3.5 | abs", 3.5),
    ("'42' | number", 42),
    ("'4.5' | number", 4.5),
    ("'42' | number('DOUBLE')", 42.0),
    ("'0x1F' | number", 31),
    ("m | json", '{"b":2,"a":1}'),
    ("'x' | toJson", '"x"'),
    ("nul | toJson", "null"),
    ("m | keys", ["b", "a"]),
    ("items | keys", [0, 1, 2]),
    ("m | values", [2, 1]),
    ("items | sort", [1, 2, 3]),
    ("items | rsort", [3, 2, 1]),
    ("items | reverse", [2, 1, 3]),
    ("items | slice(1, 3)", [1, 2]),
    ("'abcdef' | slice(2)", "cdef"),
    ("'this is long' | abbreviate(7)", "this..."),
    ("'abc' | abbreviate(7)", "abc"),
    ("'a b&c=d/é~*' | urlencode", "a+b%26c%3Dd%2F%C3%A9%7E*"),
    ("'a+b%26c' | urldecode", "a b&c"),
    ("'hello' | base64encode", "aGVsbG8="),
    ("'aGVsbG8=' | base64decode", "hello"),
    ("'abc' | sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("'abc' | sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("'abc' | md5", "900150983cd24fb0d6963f7d28e17f72"),
    ("' Héllo, World_x! ' | slugify", "hello-world-x"),
    ("'redis-flow' | startsWith('redis')", True),
    ("'redis-flow' | endsWith('redis')", False),
    ("'a.b.c' | substringBefore('.')", "a"),
    ("'a.b.c' | substringAfter('.')", "b.c"),
    ("'a.b.c' | substringBeforeLast('.')", "a.b"),
    ("'a.b.c' | substringAfterLast('.')", "c"),
    ("'abc' | substringAfter('x')", ""),
    ("'abc' | substringBefore('x')", "abc"),
    ("[[1, 2], 3, [4]] | flatten", [1, 2, 3, 4]),
    ("'a\nb' | indent(2)", "a\n  b"),
    ("'a\nb' | nindent(2)", "\n  a\n  b"),
    ("[1, 2, 3, 4, 5] | chunk(2)", [[1, 2], [3, 4], [5]]),
    ("{'a': 1} | merge({'b': 2})", {"a": 1, "b": 2}),
    ("[1] | merge([2])", [1, 2]),
    # dates
    ("d | date('yyyy-MM-dd')", "2024-01-31"),
    ("d | date(\"yyyy-MM-dd'T'HH:mm:ss.SSS\")", "2024-01-31T13:05:09.123"),
    ("d | date('yy M d H m s')", "24 1 31 13 5 9"),
    ("d | date", "2024-01-31T13:05:09.123456Z"),
    ("d | date('iso_sec')", "2024-01-31T13:05:09Z"),
    ("d | date('HH:mm XXX', timeZone='Europe/Paris')", "14:05 +01:00"),
    ("'2024-01-31T10:00:00+02:00' | date('HH:mm')", "08:00"),
    ("'2024-01-31' | date('yyyy/MM/dd HH:mm')", "2024/01/31 00:00"),
    ("'31/01/2024' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy')", "2024-01-31"),
    ("0 | date('yyyy-MM-dd HH:mm')", "1970-01-01 00:00"),
    ("d | dateAdd(1, 'DAYS')", "2024-02-01T13:05:09.123456Z"),
    ("d | dateAdd(-2, 'HOURS', 'HH:mm')", "11:05"),
    ("d | dateAdd(1, 'MONTHS', 'yyyy-MM-dd')", "2024-02-29"),
    ("d | dateAdd(90, 'MINUTES', format='HH:mm')", "14:35"),
    ("'1970-01-01T00:01:00Z' | timestamp", 60),
    ("d | timestamp", int(MOMENT.timestamp())),
    # functions
    ("render(vars.x)", "redis-flow-suffix"),
    ("render(vars.nested)", "redis-flow-suffix"),
    ("render(vars.nested, recursive=false)", "{{ flow.id }}-suffix"),
    ("render(5)", 5),
    ("fromJson('{\"a\": [1, 2]}').a[1]", 2),
    ("json('[1]')", [1]),
    ("range(1, 3)", [1, 2, 3]),
    ("range(0, 10, 5)", [0, 5, 10]),
    ("range(3, 1, -1)", [3, 2, 1]),
    ("max(1, 5, 3)", 5),
    ("min(4, 2.5, 3)", 2.5),
]


@pytest.mark.parametrize(("expression", "expected"), EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_evaluate(expression: str, expected: Any) -> None:
    result = evaluate(expression, CTX)
    assert result == expected
    assert type(result) is type(expected)  # True is not 1, 2.0 is not 2


# (template, expected text): whole templates through render()
TEMPLATES: list[tuple[str, str]] = [
    # the Kestra docs' Redis example
    ("{{outputs.get.data == flow.id}}", "true"),
    ("{{(outputs.getAfterDelete contains 'data') == false}}", "true"),
    ("{{ outputs.get }}", '{"data":"redis-flow","key":"key_string_1"}'),
    ("{{outputs.start.taskRunner.containerId}}", "c0ffee"),
    # output rendering
    ("{{ true }}", "true"),
    ("{{ 1 == 2 }}", "false"),
    ("{{ nul }}", ""),
    ("{{ m }}", '{"b":2,"a":1}'),
    ("{{ items }}", "[3,1,2]"),
    ("{{ ['a', 1, true, null] }}", '["a",1,true,null]'),
    ("{{ 1.0 }}", "1.0"),
    ("{{ 2.5 * 2 }}", "5.0"),
    ("{{ 10000000.0 }}", "1.0E7"),
    ("{{ 5 / 2 }}", "2"),
    ("{{ 'n=' + inputs.n }}", "n=5"),
    ("{{ d }}", "2024-01-31T13:05:09.123456Z"),
    # text handling
    ("no braces here", "no braces here"),
    ("a {{ 1 }} b", "a 1 b"),
    ("{{ 1 }}\n", "1\n"),
    ("a  {{- 1 -}}  b", "a1b"),
    ("a{# a comment #}b", "ab"),
    ("{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}"),
    ("{{ {'k': 'v'} }}", '{"k":"v"}'),
    ("{{ vars.x }}", "{{ flow.id }}-suffix"),  # variables are not rendered recursively
    ("{{ render(vars.x) }}", "redis-flow-suffix"),
    ("{{ outputs['my-task'].value }}", "hyphen"),
    # tags
    (
        "{% for x in items %}{{ loop.index }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
        "0:3,1:1,2:2",
    ),
    (
        "{% for x in ['a', 'b'] %}{{ loop.first }}/{{ loop.length }}/{{ loop.revindex }} {% endfor %}",
        "true/2/1 false/2/0 ",
    ),
    ("{% for e in m %}{{ e.key }}={{ e.value }};{% endfor %}", "b=2;a=1;"),
    ("{% for x in [] %}x{% else %}none{% endfor %}", "none"),
    ("{% for x in nul %}x{% else %}none{% endfor %}", ""),
    ("{% for i in 0..2 %}{{ i }}{% endfor %}", "012"),
    ("{% if inputs.n > 10 %}big{% elseif inputs.n > 3 %}mid{% else %}small{% endif %}", "mid"),
    ("{% if inputs.n > 10 %}big{% elseif inputs.n > 7 %}mid{% else %}small{% endif %}", "small"),
    ("{% if inputs.n > 10 %}big{% endif %}", ""),
    ("{% if 'false' %}non-empty strings are true{% endif %}", "non-empty strings are true"),
    ("{% if outputs.getAfterDelete.data is defined %}yes{% else %}no{% endif %}", "no"),
    ("{% set y = inputs.n * 2 %}{{ y }}", "10"),
    ("{% for x in [1] %}{% set z = 1 %}{% endfor %}{{ z is defined }}", "false"),
    ("{%- if true -%}\n  yes\n{%- endif %}", "yes"),
    ("line\n{% for x in [1, 2] %}\n- {{ x }}{% endfor %}\n", "line\n\n- 1\n- 2\n"),
]


@pytest.mark.parametrize(("template", "expected"), TEMPLATES, ids=[t for t, _ in TEMPLATES])
def test_render(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


# (template, context, expected message, as a regular expression)
ERRORS: list[tuple[str, str]] = [
    ("{{ missing }}", r"^Unable to find `missing` used in the expression `\{\{ missing \}\}` at line 1$"),
    ("{{ outputs.getAfterDelete.data }}", r"^Unable to find `data` used in the expression `.*` at line 1$"),
    (
        "first\nsecond {{ flow.nope }}",
        r"^Unable to find `nope` used in the expression `first\nsecond .*` at line 2$",
    ),
    ("{{ nul.x }}", r"^Unable to find `nul` "),
    ("{{ items[5] }}", r"^Unable to find `5` "),
    ("{{ missing | upper }}", r"^Unable to find `missing` "),
    ("{{ missing is null }}", r"^Unable to find `missing` "),
    ("{{ missing == null }}", r"^Unable to find `missing` "),
    ("{{ outputs.my-task.value }}", r"^Unable to find `my` "),  # subtraction, as the docs warn
    ("{% if missing %}x{% endif %}", r"^Unable to find `missing` "),
    ("{{ render('{{ nope }}') }}", r"^Unable to find `nope` used in the expression `\{\{ nope \}\}`"),
    ("{{ nul and true }}", r"null value used in and"),
    ("{{ [] or true }}", r"Unsupported value type list in or"),
    ("{{ not nul }}", r"null value used in not"),
    ("{% if nul %}x{% endif %}", r"null value given to if statement"),
    ("{{ 5 contains 1 }}", r"Contains operator can only be used"),
    ("{{ 1 / 0 }}", r"/ by zero"),
    ("{{ 'a' < 1 }}", r"invalid operands for mathematical comparison"),
    ("{{ 'abc' | foo }}", r"^Unknown filter `foo` in the expression `\{\{ 'abc' \| foo \}\}` at line 1$"),
    ("{{ foo() }}", r"^Unknown function `foo` "),
    ("{{ 1 is foo }}", r"^Unknown test `foo` "),
    ("{{ 'a' | upper(1) }}", r"Too many arguments for filter `upper`"),
    ("{% for x in 5 %}{% endfor %}", r"Not an iterable object"),
    ("{{ 1 + }}", r"^Syntax error in the expression `\{\{ 1 \+ \}\}` at line 1: expected a value"),
    ("{{ (1 }}", r"^Syntax error .* missing `\)`"),
    ("{{ 'abc }}", r"^Syntax error .* unterminated string"),
    ("{{ 1 2 }}", r"^Syntax error .* unexpected token"),
    ("{% if true %}x", r"^Syntax error .* missing \{% endif %\}"),
    ("{% endif %}", r"^Syntax error .* unexpected tag `endif`"),
    ("{% include 'x' %}", r"^Syntax error .* unknown or unexpected tag `include`"),
    ("{{ 'x'.nope() }}", r"Unknown method `nope` on str"),  # methods Pebble allows are called
    ("{# open", r"^Syntax error .* unclosed comment"),
    ("{{ d | dateAdd(1, 'EONS') }}", r"Unknown time unit `EONS`"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS, ids=[t for t, _ in ERRORS])
def test_errors(template: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(template, CTX)
    assert re.search(message, str(caught.value), re.DOTALL), str(caught.value)
    assert caught.value.message == str(caught.value)


def test_evaluate_error_names_the_expression() -> None:
    with pytest.raises(
        ExpressionError, match=r"^Unable to find `x` used in the expression `x \+ 1` at line 1$"
    ):
        evaluate("x + 1", {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.servers }}", ["a", "b"]),
        ("  {{ inputs.n }}\n", 5),
        ("{{ nul }}", None),
        ("{{ 1 == 1 }}", True),
        ("{{ m }}", {"b": 2, "a": 1}),
        ("{{ d }}", MOMENT),
        ("a {{ 1 }}", "a 1"),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("plain", "plain"),
    ],
)
def test_render_typed(template: str, expected: Any) -> None:
    assert render_typed(template, CTX) == expected


@pytest.mark.parametrize(
    ("text", "truthy", "falsy"),
    [
        (None, False, False),
        ("", False, True),
        ("false", False, True),
        (" false\n", False, True),
        ("0", False, True),
        ("-0", False, True),
        ("False", True, False),  # what a Jinja2 rendering would produce: truthy for Kestra
        ("true", True, False),
        ("no", True, False),
        ("1", True, False),
    ],
)
def test_truthiness(text: str | None, truthy: bool, falsy: bool) -> None:
    assert is_truthy(text) is truthy
    assert is_falsy(text) is falsy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        ({"key": "k", "data": "v"}, '{"key":"k","data":"v"}'),
        ([1, "a", None, 1.5], '[1,"a",null,1.5]'),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1e-5, "1.0E-5"),
        (3, "3"),
        ("é", "é"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2024-01-02T03:04:05.120Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_to_text(value: Any, expected: str) -> None:
    assert to_text(value) == expected


def test_random_and_clock_functions() -> None:
    assert uuid.UUID(evaluate("uuid()", {})).version == 4
    assert re.fullmatch(r"[0-9A-Za-z]{15,22}", evaluate("id()", {}))
    assert {evaluate("randomInt(1, 3)", {}) for _ in range(200)} == {1, 2}
    now = evaluate("now()", {})
    assert isinstance(now, datetime)
    assert now.tzinfo is not None
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5
    assert render("{{ now() | date('yyyy') }}", {}) == str(datetime.now(UTC).year)


def test_context_is_not_modified_and_templates_are_reusable() -> None:
    context: dict[str, Any] = {"n": 1}
    assert render("{% set n = 2 %}{{ n }}", context) == "2"
    assert context == {"n": 1}
    assert render("{% set n = 2 %}{{ n }}", context) == "2"
    assert render("{{ n }}", context) == "1"
