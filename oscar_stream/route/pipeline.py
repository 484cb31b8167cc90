"""The pipeline graph: which service's outputs can trigger which service, and cycles in it."""

from __future__ import annotations

from collections.abc import Sequence

from oscar_stream.core.events import CREATED
from oscar_stream.route.model import InputSpec, OutputSpec, ServiceSpec, split_path

LOCAL_CLUSTER = "local"


def global_storage(storage: str, cluster: str | None, cluster_ids: set[str]) -> str:
    """Name a storage the same way from every cluster: ``minio.default`` of cluster C is ``C/minio.default``,
    and so is ``minio.C`` seen from elsewhere (OSCAR's convention). Other providers are shared by id."""
    kind, _, ident = storage.partition(".")
    if kind == "minio" and ident == "default":
        return f"{cluster or LOCAL_CLUSTER}/minio.default"
    if kind == "minio" and ident in cluster_ids:
        return f"{ident}/minio.default"
    return f"*/{storage}"


def _compatible(a: Sequence[str], b: Sequence[str], suffix: bool) -> bool:
    if not a or not b:
        return True
    if suffix:
        return any(x.endswith(y) or y.endswith(x) for x in a for y in b)
    return any(x.startswith(y) or y.startswith(x) for x in a for y in b)


def can_trigger(output: OutputSpec, out_cluster: str | None, inp: InputSpec, in_cluster: str | None,
                cluster_ids: set[str]) -> bool:
    """Conservative: True unless the output can provably never produce an object the input matches."""
    if CREATED not in inp.events:
        return False
    if global_storage(output.storage, out_cluster, cluster_ids) != global_storage(inp.storage, in_cluster,
                                                                                   cluster_ids):
        return False
    out_path, in_path = split_path(output.path), split_path(inp.path)
    if out_path[: len(in_path)] != in_path:
        return False
    if out_path != in_path:
        return True
    return _compatible(output.prefixes, inp.prefixes, suffix=False) and _compatible(
        output.suffixes, inp.suffixes, suffix=True
    )


def downstream(services: Sequence[ServiceSpec], cluster_ids: set[str]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {s.qualified: [] for s in services}
    for a in services:
        for b in services:
            if any(can_trigger(o, a.cluster, i, b.cluster, cluster_ids) for o in a.outputs for i in b.inputs):
                graph[a.qualified].append(b.qualified)
    return graph


def find_cycles(services: Sequence[ServiceSpec], cluster_ids: set[str]) -> list[list[str]]:
    """Each elementary cycle found by depth-first search, as [a, b, ..., a]; one report per cycle."""
    graph = downstream(services, cluster_ids)
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                if frozenset(cycle) not in seen_sets:
                    seen_sets.add(frozenset(cycle))
                    cycles.append(cycle)
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return cycles
