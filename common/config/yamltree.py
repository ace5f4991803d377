"""YAML to plain data, remembering the line of every key so errors can point at it.

Duplicate keys are errors here (PyYAML silently keeps the last one). Merge keys (`<<`) are
not supported: a config spells out what it means.
"""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class YamlProblem(Exception):
    def __init__(self, line: int | None, message: str, path: Path_ = ()) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path


def parse(text: str) -> tuple[Any, dict[Path_, int]]:
    """The document as dicts/lists/scalars, and a map from key path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblem(line, f"not valid YAML: {exc.problem or exc}") from None
    if node is None:
        return None, {}
    lines: dict[Path_, int] = {}
    return _build(node, (), lines), lines


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                raise YamlProblem(key_node.start_mark.line + 1, f"duplicate key {key!r}", path)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
