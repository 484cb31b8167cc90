"""Typed reads from a YAML document that record a :class:`Problem` (with its line) instead of raising."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from oscar_stream.route.problems import Note, Problem
from oscar_stream.route.quantity import QuantityError, canonical_quantity, parse_quantity
from oscar_stream.route.yaml_source import YamlDocument, YamlPath

SERVICE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Reader:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.notes: list[Note] = []

    @property
    def file(self) -> Path:
        return self.doc.file

    def problem(self, path: YamlPath, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(path), path, message, hint))

    def note(self, path: YamlPath, message: str) -> None:
        self.notes.append(Note(self.doc.file, self.doc.line(path), path, message))

    def warn(self, path: YamlPath, message: str) -> None:
        self.notes.append(Note(self.doc.file, self.doc.line(path), path, message, "warning"))

    def mapping(self, value: Any, path: YamlPath, required: bool = False) -> dict[str, Any] | None:
        if value is None:
            if required:
                self.problem(path, "is required", "add it as a mapping of fields")
            return None
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {_kind(value)}")
            return None
        return value

    def sequence(self, value: Any, path: YamlPath) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list, got {_kind(value)}")
            return []
        return value

    def string(self, value: Any, path: YamlPath, required: bool = False, hint: str = "") -> str | None:
        if value is None or value == "":
            if required:
                self.problem(path, "is required", hint)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(path, f"must be a string, got {_kind(value)}", hint)
            return None
        return str(value)

    def strings(self, value: Any, path: YamlPath) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a list of one."""
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        items = self.sequence(value, path)
        out = []
        for index, item in enumerate(items):
            text = self.string(item, (*path, index), required=True)
            if text is not None:
                out.append(text)
        return tuple(out)

    def boolean(self, value: Any, path: YamlPath, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(path, f"must be true or false, got {value!r}")
            return default
        return value

    def integer(self, value: Any, path: YamlPath, default: int, minimum: int = 0) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(path, f"must be an integer >= {minimum}, got {value!r}")
            return default
        return value

    def number(self, value: Any, path: YamlPath, default: float, minimum: float = 0.0) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            self.problem(path, f"must be a number >= {minimum:g}, got {value!r}")
            return default
        return float(value)

    def quantity(self, value: Any, path: YamlPath, default: str, what: str) -> str:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(path, f"must be a {what} quantity, got {_kind(value)}")
            return default
        try:
            if parse_quantity(value) <= 0:
                self.problem(path, f"{what} must be greater than zero, got {value!r}")
                return default
            return canonical_quantity(value)
        except QuantityError as err:
            self.problem(path, str(err))
            return default

    def string_map(self, value: Any, path: YamlPath, secret: bool = False) -> dict[str, str]:
        mapping = self.mapping(value, path)
        out: dict[str, str] = {}
        for key, item in (mapping or {}).items():
            if isinstance(item, dict | list) or item is None:
                shown = "a value" if secret else repr(item)
                self.problem((*path, key), f"must be a string, number or boolean, got {shown}")
                continue
            out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
        return out

    def check_keys(
        self, mapping: dict[str, Any], path: YamlPath, known: Iterable[str], accepted_unused: Iterable[str] = (),
        lenient: bool = False,
    ) -> tuple[str, ...]:
        """Keys outside ``known``: ``accepted_unused`` ones are returned (the caller says what they mean); any
        other is a problem with a suggestion — or, when ``lenient`` (OSCAR FDL files: OSCAR ignores unknown
        keys and keeps adding fields), a note."""
        known_set, unused_set = set(known), set(accepted_unused)
        unused: list[str] = []
        for key in mapping:
            if key in known_set:
                continue
            if key in unused_set:
                unused.append(key)
                continue
            close = difflib.get_close_matches(str(key), sorted(known_set | unused_set), n=1)
            if lenient:
                self.note((*path, key), f"'{key}' is not known to oscar-stream; ignored"
                          + (f" (did you mean '{close[0]}'?)" if close else ""))
                continue
            self.problem((*path, key), f"unknown field '{key}'",
                         f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(sorted(known_set))}")
        return tuple(unused)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
