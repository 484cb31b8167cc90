"""The layout is the architecture: the kernel and the stages are pure (no Kafka, faust, HTTP, Kubernetes or S3
client; they never import the runtime or the edges), and no two packages import each other."""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.support.paths import REPO

PACKAGE = REPO / "oscar_stream"
PURE = ("core", "normalize", "route", "launch")
IO_LIBRARIES = {"aiokafka", "faust", "mode", "aiohttp", "kubernetes_asyncio", "aiobotocore", "botocore", "uvloop"}
RUNTIME_AND_EDGES = {"worker", "executors", "kafka", "ingest", "api", "storage", "stack", "cli", "demo", "observe",
                     "warm"}


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per top-level part of the package: the parts it imports, and the outside libraries it imports."""
    inside: dict[str, set[str]] = defaultdict(set)
    outside: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).parts
        part = relative[0] if len(relative) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else [
                alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                if module.startswith("oscar_stream."):
                    target = module.split(".")[1]
                    if target != part:
                        inside[part].add(target)
                else:
                    outside[part].add(module.split(".")[0])
    return inside, outside


def test_the_kernel_and_the_stages_are_pure() -> None:
    inside, outside = _imports()
    for part in PURE:
        assert not outside[part] & IO_LIBRARIES, f"{part} imports {sorted(outside[part] & IO_LIBRARIES)}"
        assert not inside[part] & RUNTIME_AND_EDGES, f"{part} imports {sorted(inside[part] & RUNTIME_AND_EDGES)}"
    assert inside["core"] == set()


def test_no_two_parts_import_each_other_even_through_others() -> None:
    inside, _ = _imports()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in inside.get(todo.pop(), set()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    cycles = sorted(part for part in inside if part in reachable(part))
    assert cycles == []
