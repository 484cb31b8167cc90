"""Exposed services on a worker of its own machine: the service's script started as its long-running server
(one per worker), restarted when it exits, stopped when the service goes or changes. The server listens on
``$PORT`` (a free port of this machine, on loopback); the gateway reaches it through this worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from oscar_stream.executors.process_guard import dies_with_worker
from oscar_stream.retry import Backoff
from oscar_stream.route.model import ServiceSpec
from oscar_stream.stack.process import free_port

log = logging.getLogger(__name__)
_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_STABLE_S = 10.0


@dataclass
class ExposedServer:
    service: ServiceSpec
    folder: Path
    port: int = field(default_factory=free_port)
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run_forever(self) -> None:
        backoff = Backoff(0.5, 30.0)
        self.folder.mkdir(parents=True, exist_ok=True)  # once per server
        (self.folder / "script.sh").write_text(self.service.script)
        while True:
            env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
            env.update(self.service.variables)
            env.update(self.service.secrets)
            env.update({"HOME": str(self.folder), "PORT": str(self.port)})
            with (self.folder / "server.log").open("ab") as out:
                self.process = await asyncio.create_subprocess_exec(
                    "/bin/sh", str(self.folder / "script.sh"), cwd=self.folder, env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True)
            started = asyncio.get_running_loop().time()
            with dies_with_worker(self.process):
                code = await self.process.wait()
            if asyncio.get_running_loop().time() - started > _STABLE_S:
                backoff.reset()  # a server that ran a while starts again soon, not after a crash loop's delay
            delay = backoff.next_delay()
            log.warning("the exposed server of %s exited with code %s (log: %s); starting it again in %.1fs",
                        self.service.name, code, self.folder / "server.log", delay)
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


class ExposedServers:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, ExposedServer] = {}

    def url(self, service: ServiceSpec) -> str | None:
        server = self.servers.get(service.name)
        return server.url if server is not None and server.service.version == service.version else None

    async def reconcile(self, exposed: Iterable[ServiceSpec]) -> None:
        wanted = {s.name: s for s in exposed}
        for name, server in list(self.servers.items()):
            if name not in wanted or wanted[name].version != server.service.version:
                del self.servers[name]
                await server.stop()
        for name, service in wanted.items():
            if name not in self.servers:
                server = self.servers[name] = ExposedServer(service, self.root / name / service.version[:16])
                server.task = asyncio.ensure_future(server.run_forever())

    async def close(self) -> None:
        for server in self.servers.values():
            await server.stop()
        self.servers.clear()
