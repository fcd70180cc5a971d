from __future__ import annotations

import pytest

from runner.errors import InputError
from runner.formats.source import MAX_NODES, load_text


def test_values_keep_their_positions() -> None:
    document = load_text("a:\n  b: [1, 2]\n  c: x\n", "f.yml")
    assert document.data == {"a": {"b": [1, 2], "c": "x"}}
    assert str(document.position(("a", "b", 1))) == "f.yml:2:10"
    assert str(document.position(("a", "c"), key=True)) == "f.yml:3:3"
    assert str(document.position(("a", "missing"))) == "f.yml:2:3"


def test_duplicate_keys_are_refused_at_the_second_key() -> None:
    with pytest.raises(InputError) as caught:
        load_text("name: a\nsteps: []\nname: b\n", "f.yml")
    assert str(caught.value) == "f.yml:3:1: duplicate key 'name' (first defined on line 1)"


def test_merge_keys_apply_and_own_keys_win() -> None:
    text = "base: &b {image: x, script: [a]}\nstep:\n  <<: *b\n  image: y\n"
    assert load_text(text, "f.yml").data["step"] == {"image": "y", "script": ["a"]}


def test_alias_bombs_are_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(InputError) as caught:
        load_text("\n".join(lines), "bomb.yml")
    assert f"more than {MAX_NODES}" in caught.value.message


def test_syntax_errors_name_the_line_and_column() -> None:
    with pytest.raises(InputError) as caught:
        load_text("steps:\n  - script: [a\n  - b\n", "f.yml")
    assert caught.value.position is not None
    assert (caught.value.position.line, caught.value.position.column) == (4, 1)
    assert caught.value.message == (
        "YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence that starts at line 2, column 13)"
    )


def test_timestamps_stay_text() -> None:
    assert load_text("when: 2024-01-02\n", "f.yml").data == {"when": "2024-01-02"}
