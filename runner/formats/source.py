"""YAML text -> plain data, remembering where every value came from.

Every format loads through here, so that every error a user sees names `file:line:col`. The document
is composed into a node tree once and converted by hand: that is where duplicate keys are refused
(PyYAML silently keeps the last one), merge keys are applied, and alias bombs are stopped before they
expand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import InputError, Position

Loc = tuple[str | int, ...]

MAX_NODES = 200_000
MAX_BYTES = 16 * 1024 * 1024
MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass
class Document:
    """The data of one YAML file, and the position of each value and key in it."""

    path: str
    data: Any
    value_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """The position of the value at `loc` (or of its key), falling back to the nearest parent."""
        marks = self.key_marks if key else self.value_marks
        if key and loc not in marks:
            marks = self.value_marks
        probe = tuple(loc)
        while probe and probe not in marks:
            probe = probe[:-1]
        line, column = marks.get(probe, (1, 1))
        return Position(self.path, line, column)

    def error(self, loc: Loc, message: str, hint: str | None = None, *, key: bool = False) -> InputError:
        return InputError(message, hint, self.position(loc, key=key))


def load_file(path: Path) -> Document:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(
                f"the file has {size} bytes; a pipeline file may have at most {MAX_BYTES}",
                "split it, or check that this is the pipeline file",
                Position(str(path), 1, 1),
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        position = _offset_position(str(path), raw, exc.start)
        raise InputError("the file is not valid UTF-8 text", "save the file as UTF-8", position) from exc
    return load_text(text, str(path))


def load_text(text: str, path: str) -> Document:
    if "\x00" in text:
        position = _offset_position(path, text.encode(), text.index("\x00"))
        raise InputError("the file contains a NUL byte: it is not a YAML text", None, position)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(path, mark.line + 1, mark.column + 1) if mark else Position(path, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            started = exc.context_mark
            problem += f" ({exc.context} that starts at line {started.line + 1}, column {started.column + 1})"
        raise InputError(
            f"YAML syntax error: {problem}", "check the indentation and quoting around this place", position
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", None, Position(path, 1, 1)) from exc
    except RecursionError as exc:
        raise InputError(
            "the document nests too deeply to read", "flatten the nesting", Position(path, 1, 1)
        ) from exc
    document = Document(path=path, data=None)
    if root is not None:
        try:
            document.data = _Converter(document).convert(root, ())
        except RecursionError as exc:
            raise InputError(
                "the document nests too deeply to read", "flatten the nesting", Position(path, 1, 1)
            ) from exc
    return document


def _offset_position(path: str, raw: bytes, offset: int) -> Position:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    column = offset - (before.rfind(b"\n") + 1) + 1
    return Position(path, line, column)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Converter:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.constructor = SafeConstructor()
        self.visited = 0

    def convert(self, node: Node, loc: Loc) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise self.document.error(
                loc,
                f"the document expands to more than {MAX_NODES} values (YAML aliases); refusing to expand it",
                "remove the repeated aliases, or write the values out",
            )
        self.document.value_marks.setdefault(loc, _mark(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, SequenceNode):
            return [self.convert(item, (*loc, index)) for index, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: Node, loc: Loc) -> Any:
        assert isinstance(node, ScalarNode)
        if node.tag == TIMESTAMP_TAG:
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError) as exc:
            raise self.document.error(loc, f"cannot read this value: {exc}") from exc

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        own_keys: dict[Any, Node] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.update(self._merge_sources(value_node, loc))
                continue
            key = self._key(key_node, loc)
            if key in own_keys:
                first = own_keys[key].start_mark.line + 1
                raise InputError(
                    f"duplicate key '{key}' (first defined on line {first})",
                    "remove one of the two; YAML keeps only one value per key",
                    Position(self.document.path, *_mark(key_node)),
                )
            own_keys[key] = key_node
            self.document.key_marks[(*loc, key)] = _mark(key_node)
            result[key] = self.convert(value_node, (*loc, key))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_sources(self, value_node: Node, loc: Loc) -> dict[Any, Any]:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        merged: dict[Any, Any] = {}
        for source in reversed(list(sources)):
            if not isinstance(source, MappingNode):
                raise InputError(
                    "a merge key (<<) takes a mapping or a list of mappings",
                    "merge an anchored mapping, e.g. `<<: *defaults`",
                    Position(self.document.path, *_mark(source)),
                )
            merged.update(self._mapping(source, loc))
        return merged

    def _key(self, key_node: Node, loc: Loc) -> Any:
        if not isinstance(key_node, ScalarNode):
            raise InputError(
                "a mapping key must be a plain value, not a list or a mapping",
                None,
                Position(self.document.path, *_mark(key_node)),
            )
        key = self._scalar(key_node, loc)
        return key if isinstance(key, str | int | bool | float) or key is None else str(key)


def walk(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every (loc, value) pair below `data`, depth first."""
    yield loc, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from walk(value, (*loc, index))
