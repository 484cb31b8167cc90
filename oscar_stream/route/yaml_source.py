"""YAML loading that remembers where each value was written, so problems can name file, line and path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

YamlPath = tuple[str | int, ...]


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class YamlDocument:
    file: Path
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)

    def line(self, path: YamlPath) -> int | None:
        """The line of ``path``, or of its closest ancestor that was written in the file."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return None


class YamlLoadError(Exception):
    def __init__(self, file: Path, line: int | None, message: str) -> None:
        super().__init__(f"{file}{f':{line}' if line else ''}: {message}")
        self.file, self.line, self.message = file, line, message


def _walk(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            out[key] = _walk(value_node, (*path, str(key)), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


# libyaml's loader (as Go's and most other YAML readers) accepts what PyYAML's pure-Python scanner refuses,
# e.g. a tab after a scalar value ("log_level: CRITICAL<TAB>"), which real FDL files contain.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(file: Path) -> YamlDocument:
    try:
        text = file.read_text()
    except OSError as err:
        raise YamlLoadError(file, None, f"cannot read the file: {err.strerror}") from err
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise YamlLoadError(file, line, f"not valid YAML: {err.problem}") from err
    except yaml.YAMLError as err:
        raise YamlLoadError(file, None, f"not valid YAML: {err}") from err
    lines: dict[YamlPath, int] = {}
    data = _walk(root, (), lines) if root is not None else None
    return YamlDocument(file=file, data=data, lines=lines)
