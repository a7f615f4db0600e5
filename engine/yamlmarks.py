"""secretshift.yaml's YAML, read with the position of every key and value.

Only plain YAML is accepted (no tags, no alias cycles, at most MAX_VALUES values after
alias expansion, merge keys allowed); the file must be UTF-8 text. A problem that stops
the reading is one ConfigError at its line and column; the others (a tag, a duplicate
key...) are collected for the config loader to report with the rest.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine import schema
from engine.errors import ConfigError, ConfigProblem

MAX_VALUES = 100_000  # after alias expansion: refuses "billion laughs" files
_YAML = "tag:yaml.org,2002:"
_PLAIN_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null")}


def config_error(shown: str, message: str, mark: schema.Mark | None = None) -> ConfigError:
    """One problem of the config file `shown`, as the error that stops loading it."""
    return ConfigError([schema.problem(shown, mark, message)])


def _decode_text(raw: bytes, shown: str) -> str:
    """The file's text; binary and non-UTF-8 files are refused at the first bad byte."""
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        raise config_error(shown, "is a binary file (it contains NUL bytes), not YAML text", _byte_mark(raw, at))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"is not UTF-8 text (byte 0x{raw[error.start]:02x} cannot be decoded)"
        raise config_error(shown, message, _byte_mark(raw, error.start)) from None


def _byte_mark(raw: bytes, offset: int) -> schema.Mark:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def parse_yaml(raw: bytes, shown: str) -> tuple[Any, schema.Marks, list[ConfigProblem]]:
    """Plain data plus the position of every value; only plain YAML is accepted."""
    text = _decode_text(raw, shown)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise config_error(shown, _yaml_message(error), _mark(error.problem_mark)) from None
    except yaml.reader.ReaderError as error:
        message = f"contains the character #x{error.character:04x}, which YAML does not allow"
        raise config_error(shown, message, _byte_mark(text.encode(), len(text[: error.position].encode()))) from None
    except RecursionError:
        raise config_error(shown, "is nested too deeply to be a config file") from None
    if root is None:
        raise config_error(shown, "is empty (expected a mapping starting with version: 1)")
    if not isinstance(root, yaml.MappingNode):
        what = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        message = f"must be a mapping (version:, managers:, ...), not {what}"
        raise config_error(shown, message, _mark(root.start_mark))
    builder = _Builder(shown)
    try:
        data = builder.build(root, ())
    except (_TooManyValues, RecursionError):
        raise config_error(shown, f"expands to more than {MAX_VALUES} values (aliases nested too deeply)") from None
    return data, builder.marks, builder.problems


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's short problem text, plus a hint and where the construct being read started."""
    context = error.context or ""
    if error.problem and context and not context.startswith("while "):
        return f"invalid YAML: {context}, {error.problem}"  # "expected X, but found Y"
    message = f"invalid YAML: {error.problem or context}"
    notes = []
    if "'\\t'" in message:
        notes.append("indent with spaces: YAML does not allow tabs")
    elif "<block end>" in message or "<block mapping start>" in message:
        notes.append("check the indentation")
    started = _mark(error.context_mark)
    if error.problem and started and started[0] != _mark(error.problem_mark)[0]:
        construct = context.removeprefix("while parsing ").removeprefix("while scanning ")
        construct = construct.removeprefix("a ").removeprefix("an ")
        notes.append(f"in the {construct} that starts at line {started[0]}")
    return message + (f" ({'; '.join(notes)})" if notes else "")


def _mark(mark: yaml.Mark | None) -> schema.Mark | None:
    return (mark.line + 1, mark.column + 1) if mark is not None else None


class _TooManyValues(Exception):
    pass


class _Builder:
    """Turns composed YAML nodes into plain data, recording marks and YAML-level problems."""

    def __init__(self, shown: str):
        self.shown = shown
        self.marks = schema.Marks()
        self.problems: list[ConfigProblem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._count = 0
        self._open: set[int] = set()  # nodes being built: an alias to one is a cycle

    def build(self, node: yaml.Node, path: schema.KeyPath) -> Any:
        self._count += 1
        if self._count > MAX_VALUES:
            raise _TooManyValues()
        self.marks.values[path] = _mark(node.start_mark)
        if id(node) in self._open:
            return self._problem(node, f"{schema.path_text(path)} is an alias of a value that contains it")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if node.tag not in (_YAML + "map", _YAML + "seq"):
            return self._problem(node, f"{schema.path_text(path)} {_tag_problem(node.tag)}")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self._open.discard(id(node))

    def _problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(schema.problem(self.shown, _mark(node.start_mark), message))
        return None

    def _scalar(self, node: yaml.ScalarNode, path: schema.KeyPath) -> Any:
        if node.tag == _YAML + "timestamp":
            return node.value  # a date-like name or value stays the text written
        if node.tag not in _PLAIN_SCALAR_TAGS:
            return self._problem(node, f"{schema.path_text(path)} {_tag_problem(node.tag)}")
        try:
            return self._constructor.yaml_constructors[node.tag](self._constructor, node)
        except (ValueError, yaml.YAMLError):
            kind = {"int": "integer", "float": "number", "bool": "boolean"}.get(node.tag.removeprefix(_YAML))
            return self._problem(node, f"{schema.path_text(path)} is not a valid {kind}")

    def _mapping(self, node: yaml.MappingNode, path: schema.KeyPath) -> dict:
        merged: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _YAML + "merge":  # `<<: *defaults`; explicit keys win
                for source in self._merge_sources(value_node, path):
                    merged.update({k: v for k, v in source.items() if k not in merged})
        own: dict = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _YAML + "merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, f"{schema.path_text(path)} has a key that is not plain text")
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_line:
                where = f"in {schema.path_text(path)}" if path else "at the top level"
                self._problem(key_node, f"duplicate key '{key}' {where} (first at line {first_line[key]})")
                continue
            first_line[key] = line
            self.marks.keys[path + (key,)] = _mark(key_node.start_mark)
            own[key] = self.build(value_node, path + (key,))
        self.marks.values[path] = _mark(node.start_mark)
        return {**{k: v for k, v in merged.items() if k not in own}, **own}

    def _merge_sources(self, node: yaml.Node, path: schema.KeyPath) -> list[dict]:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for source in nodes:
            value = self.build(source, path) if isinstance(source, yaml.MappingNode) else None
            if not isinstance(value, dict):
                self._problem(source, f"{schema.path_text(path)}: '<<' must merge a mapping")
                continue
            sources.append(value)
        return sources


def _tag_problem(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
    return f"uses the YAML tag {shown}; only plain YAML is allowed (no tags)"
