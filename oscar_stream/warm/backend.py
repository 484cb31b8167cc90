"""Where a worker's warm replicas run: local processes (warm/pools.py) or pods (executors/kubernetes_warm.py).
Both take the same two requests and follow the services table the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from aiohttp import web

from oscar_stream.core.invocation import Invocation
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.invoke import Attempt


class WarmBackend(Protocol):
    async def run(self, service: ServiceSpec, payload: bytes, input_name: str, raw: bool) -> web.Response:
        """A synchronous invocation: OSCAR's answer, or why not (429 when every replica is busy)."""

    async def invoke(self, service: ServiceSpec, invocation: Invocation) -> Attempt:
        """An event's invocation; raises when the replica went away under it (the caller tries again)."""

    def exposed_url(self, service: ServiceSpec) -> str | None:
        """Where an exposed service's server answers (None: not running here yet)."""

    async def keep(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:
        """For the worker's life: replicas for every warm service, scaled with the work, and the servers of
        exposed services (``services`` gives both); none for the others."""

    async def close(self) -> None: ...
