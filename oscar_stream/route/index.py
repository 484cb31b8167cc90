"""The routing index: a trie over (storage, path segments) so that routing one event costs the depth of its
path plus the inputs that really match, not a scan over every service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from oscar_stream.core.events import StorageEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.route.model import InputSpec, ServiceSpec


@dataclass(frozen=True, slots=True)
class _Target:
    """What matching needs of one input of one service, in one small object: with thousands of services, every
    event touches different ones, and each pointer followed is a likely cache miss."""

    input: InputSpec
    name: str
    version: str


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    targets: tuple[_Target, ...] = ()


class RoutingIndex:
    def __init__(self, services: Iterable[ServiceSpec] = ()) -> None:
        self._roots: dict[str, _Node] = {}
        self._services: dict[str, ServiceSpec] = {}
        for service in services:
            self.put(service)

    def __len__(self) -> int:
        return len(self._services)

    def services(self) -> list[ServiceSpec]:
        return list(self._services.values())

    def get(self, name: str) -> ServiceSpec | None:
        return self._services.get(name)

    def put(self, service: ServiceSpec) -> None:
        """Add or replace a service (by name)."""
        self.remove(service.name)
        self._services[service.name] = service
        for inp in service.inputs:
            node = self._roots.setdefault(inp.storage, _Node())
            for segment in inp.segments:
                node = node.children.setdefault(segment, _Node())
            node.targets += (_Target(inp, service.name, service.version),)

    def remove(self, name: str) -> bool:
        old = self._services.pop(name, None)
        if old is None:
            return False
        for inp in old.inputs:
            path = [self._roots.get(inp.storage)]
            for segment in inp.segments:
                parent = path[-1]
                path.append(parent.children.get(segment) if parent else None)
            node = path[-1]
            if node is not None:
                node.targets = tuple(t for t in node.targets if t.name != name)
            self._prune(inp)
        return True

    def _prune(self, inp: InputSpec) -> None:
        root = self._roots.get(inp.storage)
        if root is None:
            return
        trail = [root]
        for segment in inp.segments:
            child = trail[-1].children.get(segment)
            if child is None:
                return
            trail.append(child)
        for depth in range(len(trail) - 1, 0, -1):
            node = trail[depth]
            if node.targets or node.children:
                return
            del trail[depth - 1].children[inp.segments[depth - 1]]
        if not root.targets and not root.children:
            del self._roots[inp.storage]

    def _targets(self, event: StorageEvent) -> list[_Target]:
        node: _Node | None = self._roots.get(event.storage)
        found: dict[str, _Target] = {}
        # Inputs live at folder nodes; an object at a/b/c/file is under folders (), a, a/b and a/b/c.
        folders = event.path.split("/")[:-1]
        depth = 0
        while node is not None:
            for target in node.targets:
                if target.name not in found and target.input.matches(event):
                    found[target.name] = target
            if depth == len(folders):
                break
            node = node.children.get(folders[depth])
            depth += 1
        return list(found.values())

    def route(self, event: StorageEvent) -> list[Invocation]:
        """One invocation per service with an input matching ``event``, each service once, in a stable order."""
        return [Invocation.of(target.name, target.version, event) for target in self._targets(event)]
