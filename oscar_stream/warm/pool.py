"""The warm replicas of one service version in this worker: slots, a bounded wait queue, scaling from the work.

A request takes a slot on a live replica (one with fewer than ``concurrency`` requests), or waits for one; when
everything running and waiting needs more replicas than exist, more start (a cold start, from zero too). A
request that would make the queue longer than ``queue`` is refused with :class:`PoolBusy`. Replicas idle for
``idle_s`` are stopped down to ``min_replicas``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from oscar_stream import metrics
from oscar_stream.core.errors import OscarStreamError
from oscar_stream.launch.autoscale import replicas_to_start, replicas_to_stop
from oscar_stream.route.model import ServiceSpec, WarmSpec
from oscar_stream.warm.replica import Replica, ReplicaGone

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


class PoolBusy(OscarStreamError):
    """Every replica is busy and the wait queue is full."""


class PoolClosed(OscarStreamError):
    """The service changed or was removed while the request waited."""


class WarmPool:
    def __init__(self, service: ServiceSpec, root: Path, external: bool = False, memory: Path | None = None) -> None:
        """``external``: the runner is not ours to start (a pod's other container runs it in ``root``): the pool
        has that one replica, opened at start and again after it failed. ``memory``: where on a memory file
        system its replicas keep the folders of requests taken ``in_memory``."""
        assert service.warm is not None
        self.service = service
        self.spec: WarmSpec = service.warm if not external else replace(service.warm, min_replicas=1, max_replicas=1)
        self.root = root
        self.memory = memory
        self.external = external
        self.replicas: list[Replica] = []
        self.slots: dict[Replica, int] = {}  # requests holding a slot of each replica
        self.starting = 0
        self.waiters: deque[asyncio.Future[Replica]] = deque()
        self.closed = False
        self._numbers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()  # set when a closed pool's last request ends
        self._gauges = (metrics.WARM_REPLICAS.labels(service.name), metrics.WARM_RUNNING.labels(service.name),
                        metrics.WARM_WAITING.labels(service.name))

    @property
    def running(self) -> int:
        return sum(self.slots.values())

    # --- requests ------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def request(self, bounded: bool = True, in_memory: bool = False) -> AsyncIterator[tuple[Replica, Path]]:
        """A slot on a live replica and a fresh request folder on it (removed afterwards). ``bounded``: refuse
        when the queue is full (requests of clients who can come back); invocations of events are bounded by the
        launch stage's own limit instead, and always wait. ``in_memory``: the folder on the memory file system
        (for requests of a bounded size, see Replica.take_folder)."""
        replica = await self._acquire(bounded)
        folder = replica.take_folder(in_memory)
        try:
            yield replica, folder
        finally:
            replica.give_back(folder)  # usually a file or two: cheaper inline than a thread hop
            self._release(replica)

    async def _acquire(self, bounded: bool) -> Replica:
        if self.closed:
            raise PoolClosed(f"the warm replicas of {self.service.name} version {self.service.version} stopped")
        for replica in self.replicas:
            if replica.alive and self.slots[replica] < self.spec.concurrency:
                self.slots[replica] += 1
                self._update_gauges()
                return replica
        # Requests that replicas about to start will take do not count against the queue: a cold start
        # queues as much as a warm pool does.
        waiting = len(self.waiters) + 1
        coming = self.starting + replicas_to_start(self.spec, len(self.replicas), self.starting, self.running, waiting)
        if bounded and waiting > self.spec.queue + coming * self.spec.concurrency:
            raise PoolBusy(f"all {len(self.replicas)} warm replicas of {self.service.name} are busy and "
                           f"{len(self.waiters)} requests wait (the queue's limit)")
        waiter: asyncio.Future[Replica] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.scale()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # a slot was handed over just as the caller gave up
            else:
                with contextlib.suppress(ValueError):  # already taken out (the pool closed)
                    self.waiters.remove(waiter)
            raise
        finally:
            self._update_gauges()

    def _release(self, replica: Replica) -> None:
        self.slots[replica] = max(0, self.slots.get(replica, 1) - 1)
        if self.closed:
            if not self.running:
                self._drained.set()
            return
        self._hand_over(replica)
        self._update_gauges()

    def _hand_over(self, replica: Replica) -> None:
        """Give the replica's free slots to the requests that wait longest."""
        while self.waiters and replica.alive and replica in self.slots and \
                self.slots[replica] < self.spec.concurrency:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.slots[replica] += 1
                waiter.set_result(replica)

    # --- scaling -------------------------------------------------------------------------------------------

    def scale(self) -> None:
        """Start replicas the work needs now, and stop idle ones it does not (called on each new wait, and
        periodically by the pools' keeper)."""
        if self.closed:
            return
        self._forget_dead()
        now = time.monotonic()
        idle = [now - r.idle_since if self.slots[r] == 0 else None for r in self.replicas]
        for index in sorted(replicas_to_stop(self.spec, idle, self.running, len(self.waiters)), reverse=True):
            replica = self.replicas.pop(index)
            self.slots.pop(replica, None)
            self._spawn(replica.stop())
        for _ in range(replicas_to_start(self.spec, len(self.replicas), self.starting, self.running,
                                         len(self.waiters))):
            self.starting += 1
            self._spawn(self._start_replica())
        self._update_gauges()

    def _forget_dead(self) -> None:
        for replica in [r for r in self.replicas if not r.alive]:
            self.replicas.remove(replica)
            self.slots.pop(replica, None)
            self._spawn(replica.stop())

    async def _start_replica(self) -> None:
        self._numbers += 1
        env = {**self.service.variables, **self.service.secrets}
        if self.service.log_level:
            env.setdefault("LOG_LEVEL", self.service.log_level)
        replica = (Replica(self.root, self.service.script, {}, spawn=False) if self.external else
                   Replica(self.root / f"replica-{self._numbers}", self.service.script, env,
                           one_at_a_time=self.spec.concurrency == 1,
                           memory=self.memory / f"replica-{self._numbers}" if self.memory is not None else None))
        try:
            await replica.start(START_TIMEOUT_S)
        except (OSError, ReplicaGone) as err:
            log.error("a warm replica of %s could not start: %s", self.service.name, err)
            self.starting -= 1
            self._fail_waiters(f"no warm replica of {self.service.name} could start: {err}")
            return
        self.starting -= 1
        if self.closed:
            await replica.stop()
            return
        metrics.count(metrics.WARM_COLD_STARTS, self.service.name)
        metrics.child(metrics.WARM_START_SECONDS, self.service.name).observe(replica.started_s or 0.0)
        self.replicas.append(replica)
        self.slots[replica] = 0
        self._hand_over(replica)
        self._update_gauges()

    def _fail_waiters(self, why: str) -> None:
        if self.starting or any(r.alive for r in self.replicas):
            return  # another replica will take them
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ReplicaGone(why))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _update_gauges(self) -> None:
        replicas, running, waiting = self._gauges
        replicas.set(len(self.replicas))
        running.set(self.running)
        waiting.set(len(self.waiters))

    async def close(self, drain_s: float = 0.0) -> None:
        """Refuse new requests, let running ones finish for up to ``drain_s``, then stop every replica."""
        self.closed = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed(f"the warm replicas of {self.service.name} were replaced"))
        self.waiters.clear()
        if self.running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    await self._drained.wait()
        await asyncio.gather(*(r.stop() for r in self.replicas), return_exceptions=True)
        self.replicas.clear()
        self.slots.clear()
