"""Every warm service's pool in this worker, reconciled with the services table: a pool per current version
(a new version replaces the old one, which finishes what it runs), none for a service that is gone or no longer
warm, ``min_replicas`` kept started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web

from oscar_stream import metrics
from oscar_stream.core.invocation import Invocation
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.exposed import ExposedServers
from oscar_stream.warm.invoke import Attempt, run_invocation, run_sync
from oscar_stream.warm.pool import WarmPool

KEEP_EVERY_S = 1.0
DRAIN_S = 300.0  # how long a replaced version may finish what it runs


class WarmPools:
    """The local backend (warm/backend.py): replicas are processes of this worker."""

    def __init__(self, work_dir: Path, stores: Stores, memory_dir: Path | None = None) -> None:
        """``memory_dir``: a memory file system where replicas stage synchronous requests (worker.memory_dir)."""
        self.stores = stores
        self.parent = work_dir / "warm"
        self.root = self.parent / str(os.getpid())
        # Per user: another user's workers on the machine have folders of their own there.
        self.memory_parent = memory_dir / f"oscar-stream-warm-{os.getuid()}" if memory_dir is not None else None
        self.memory = self.memory_parent / str(os.getpid()) if self.memory_parent is not None else None
        self.pools: dict[str, WarmPool] = {}
        self.exposed = ExposedServers(self.root / "exposed")
        self._closing: set[asyncio.Task[None]] = set()

    def pool(self, service: ServiceSpec) -> WarmPool:
        """The pool of the service's version (made, and an older version's pool retired, when needed)."""
        current = self.pools.get(service.name)
        if current is not None and current.service.version == service.version:
            return current
        if current is not None:
            self._retire(current)
        folder = Path(service.name, service.version[:16])
        pool = self.pools[service.name] = WarmPool(service, self.root / folder,
                                                   memory=self.memory / folder if self.memory is not None else None)
        pool.scale()
        return pool

    async def run(self, service: ServiceSpec, payload: bytes, input_name: str, raw: bool) -> web.Response:
        return await run_sync(self.pool(service), service, payload, input_name, raw)

    async def invoke(self, service: ServiceSpec, invocation: Invocation) -> Attempt:
        return await run_invocation(self.pool(service), service, invocation, self.stores)

    def _retire(self, pool: WarmPool) -> None:
        task = asyncio.ensure_future(pool.close(pool.service.timeout_s or DRAIN_S))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def exposed_url(self, service: ServiceSpec) -> str | None:
        return self.exposed.url(service)

    async def keep(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:
        """For the worker's life: follow the table and scale every pool (idle replicas stop, minimums start);
        start, replace and stop the servers of exposed services."""
        await asyncio.to_thread(self._remove_leftovers)
        while True:
            current = list(services())
            await self.exposed.reconcile(s for s in current if s.expose is not None)
            wanted = {service.name: service for service in current if service.warm is not None}
            for name in [n for n in self.pools if n not in wanted]:
                self._retire(self.pools.pop(name))
                for gauge in (metrics.WARM_REPLICAS, metrics.WARM_RUNNING, metrics.WARM_WAITING):
                    gauge.labels(name).set(0)
            for service in wanted.values():
                self.pool(service).scale()
            await asyncio.sleep(KEEP_EVERY_S)

    def _remove_leftovers(self) -> None:
        """Folders of earlier worker processes on this machine that are gone (their FIFOs, replica homes and
        requests in memory)."""
        for parent in (self.parent, self.memory_parent):
            if parent is None or not parent.is_dir():
                continue
            for folder in parent.iterdir():
                if folder.name.isdigit() and not _alive(int(folder.name)):
                    shutil.rmtree(folder, ignore_errors=True)

    async def close(self) -> None:
        await self.exposed.close()
        pools, self.pools = list(self.pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), *self._closing, return_exceptions=True)
        for root in (self.root, self.memory):
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False
