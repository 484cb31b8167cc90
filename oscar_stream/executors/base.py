"""The small interface every executor implements, and the per-service concurrency limiter they share."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from oscar_stream.core.invocation import Invocation
from oscar_stream.core.jobs import JobStatus
from oscar_stream.core.results import ExecutorKind, Result
from oscar_stream.executors.log_archive import LogArchive
from oscar_stream.route.model import ServiceSpec

ResultSink = Callable[[Result], Awaitable[None]]
"""Publishes a result and its output events; returns once Kafka acknowledged them (retrying meanwhile)."""


class JobUpdates(Protocol):
    """Where an executor reports a job's progress for OSCAR's API (worker/job_journal.py)."""

    def update(self, service: str, invocation_id: str, executor: str, status: JobStatus,
               creation_time: str | None = None, start_time: str | None = None) -> None: ...


class NoJobUpdates:
    def update(self, service: str, invocation_id: str, executor: str, status: JobStatus,
               creation_time: str | None = None, start_time: str | None = None) -> None:
        pass


class Permit:
    """One active job of one service; released exactly once (later releases do nothing)."""

    def __init__(self, limiter: Limiter, service: str) -> None:
        self._limiter, self.service, self._released = limiter, service, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.service)


class Limiter:
    """At most ``limit_of(service)`` active jobs per service in this worker; ``acquire`` waits when full.

    The limit of a service may change while jobs run (a worker's share changes with the partitions it owns);
    ``changed`` wakes the waiters to look again."""

    def __init__(self, limit_of: Callable[[str], int] = lambda service: 1) -> None:
        self.limit_of = limit_of
        self._active: dict[str, int] = {}
        self._changed = asyncio.Condition()

    def active(self, service: str) -> int:
        return self._active.get(service, 0)

    async def acquire(self, service: str) -> Permit:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active.get(service, 0) < self.limit_of(service))
            self._active[service] = self._active.get(service, 0) + 1
        return Permit(self, service)

    def adopt(self, service: str) -> Permit:
        """Count a job that is already running (found after a restart or a takeover), even above the limit."""
        self._active[service] = self._active.get(service, 0) + 1
        return Permit(self, service)

    def _release(self, service: str) -> None:
        self._active[service] = max(0, self._active.get(service, 0) - 1)
        self.changed()

    def changed(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())


class Executor(ABC):
    kind: ExecutorKind

    def __init__(self, sink: ResultSink, limiter: Limiter) -> None:
        self.sink = sink
        self.limiter = limiter
        self.owns: Callable[[str], bool] = lambda invocation_id: True
        """Whether this worker owns the invocation's partition (and so publishes its result)."""
        self.jobs: JobUpdates = NoJobUpdates()
        self.logs: LogArchive | None = None  # keeps each job's log for OSCAR's API, when it is on

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect, and adopt jobs that were already running."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def maintain(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:  # noqa: B027 - optional hook
        """Run for the life of the worker, tidying up after jobs; ``services`` gives the current table."""

    async def ownership_changed(self) -> None:  # noqa: B027 - optional hook
        """The partitions this worker owns changed: take over (or let go of) the jobs of the moved ones."""

    @abstractmethod
    async def launch(self, invocation: Invocation, service: ServiceSpec, permit: Permit) -> None:
        """Return once the invocation is durably handed off; release ``permit`` when its job has ended.
        Raises on a failure worth retrying (the caller retries with backoff); a job that failed is a result."""
