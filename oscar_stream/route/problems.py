"""Problems found in routing files: file, line, the path inside the YAML, what is wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oscar_stream.route.yaml_source import YamlPath, format_path


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    path: YamlPath
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {format_path(self.path)}: {self.message}" + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class Note:
    """Not an error. A "note" is for the record (a field oscar-stream ignores and that changes nothing); a
    "warning" says what a job will do differently from what the file asks for (a field oscar-stream accepts but
    does not implement)."""

    file: Path
    line: int | None
    path: YamlPath
    message: str
    level: Literal["note", "warning"] = "note"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {format_path(self.path)}: {self.message}"


class RoutingFileError(Exception):
    """Raised with every problem of the files at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{len(problems)} {noun}:\n" + "\n".join(f"  {p}" for p in problems))
