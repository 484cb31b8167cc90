"""The small interface every executor implements, and the per-service concurrency limiter they share."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from oscar_stream.launch.results import Result
from oscar_stream.route.model import Invocation, ServiceSpec

ResultSink = Callable[[Result], Awaitable[None]]
"""Publishes a result and its output events; returns once Kafka acknowledged them."""


class Permit:
    """One active job of one service; released exactly once (later releases do nothing)."""

    def __init__(self, limiter: Limiter, service: str) -> None:
        self._limiter, self.service, self._released = limiter, service, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.service)


class Limiter:
    """At most ``limit`` active jobs per service; ``acquire`` waits (and so stops consuming) when full."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}
        self._changed = asyncio.Condition()

    async def acquire(self, service: str, limit: int) -> Permit:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active.get(service, 0) < limit)
            self._active[service] = self._active.get(service, 0) + 1
        return Permit(self, service)

    def adopt(self, service: str) -> Permit:
        """Count a job that is already running (found after a restart), even above the limit."""
        self._active[service] = self._active.get(service, 0) + 1
        return Permit(self, service)

    def _release(self, service: str) -> None:
        self._active[service] = max(0, self._active.get(service, 0) - 1)

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())


class Executor(ABC):
    kind: Literal["local", "kubernetes", "remote"]

    def __init__(self, sink: ResultSink, limiter: Limiter) -> None:
        self.sink = sink
        self.limiter = limiter

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect, and adopt jobs that were already running."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def maintain(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:  # noqa: B027 - optional hook
        """Run for the life of the worker, tidying up after jobs; ``services`` gives the current table."""

    @abstractmethod
    async def launch(self, invocation: Invocation, service: ServiceSpec, permit: Permit) -> None:
        """Return once the invocation is durably handed off; release ``permit`` when its job has ended."""
