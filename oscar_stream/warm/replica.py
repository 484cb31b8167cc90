"""One warm replica: a runner (launch/warm_runner.py) and the two FIFOs that carry its requests and completions.

Locally the replica spawns the runner itself; in a pod the runner is the user's container and the replica only
opens the shared folder's FIFOs (``spawn=False``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from oscar_stream.core.errors import OscarStreamError
from oscar_stream.executors.process_guard import dies_with_worker
from oscar_stream.launch.warm_runner import RUNNER_SCRIPT, parse_done, request_env

_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class ReplicaGone(OscarStreamError):
    """The replica stopped (or was stopped) before the request finished."""


class Replica:
    def __init__(self, root: Path, script: str, env: Mapping[str, str], spawn: bool = True,
                 one_at_a_time: bool = False) -> None:
        self.root = root
        self.script = script
        self.env = dict(env)
        self.spawn = spawn
        self.one_at_a_time = one_at_a_time  # the runner runs each script in its foreground (warm_runner.py)
        self.inflight = 0
        self.idle_since = time.monotonic()
        self.started_s: float | None = None  # how long the start took (a cold start's own cost)
        self._proc: asyncio.subprocess.Process | None = None
        self._requests = -1
        self._waiting: dict[str, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self.alive = False
        self._free: list[Path] = []

    async def start(self, timeout_s: float = 30.0) -> None:
        began = time.monotonic()
        await asyncio.to_thread(self._prepare)
        # Both FIFOs open read-write: opening never blocks on a runner that is not there yet, and neither end
        # sees end-of-file while the other is away; a runner's death is seen through its process.
        done_fd = os.open(self.root / "done", os.O_RDWR | os.O_NONBLOCK)
        self._requests = os.open(self.root / "requests", os.O_RDWR | os.O_NONBLOCK)
        stream = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(done_fd, "rb", buffering=0))
        if self.spawn:
            env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
            env.update(self.env)
            env["HOME"] = str(self.root / "home")
            self._proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", RUNNER_SCRIPT, "runner", str(self.root),
                str(self.root / "script.sh"), "yes" if self.one_at_a_time else "no", env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
            self._watcher = asyncio.ensure_future(self._watch(self._proc))
        try:
            async with asyncio.timeout(timeout_s):
                while (await stream.readline()).strip() != b"ready":
                    pass
        except TimeoutError:
            await self.stop()
            raise ReplicaGone(f"the replica's runner did not start within {timeout_s:g}s (folder {self.root})"
                              ) from None
        self.alive = True
        self.started_s = time.monotonic() - began
        self._reader = asyncio.ensure_future(self._read_completions(stream))

    def _prepare(self) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        (self.root / "req").mkdir(exist_ok=True)
        if self.spawn:
            (self.root / "script.sh").write_text(self.script)
        else:  # the runner's container may run as any user
            for folder in (self.root / "home", self.root / "req"):
                folder.chmod(0o777)
        for name in ("requests", "done"):  # "done" last: the runner waits for it
            fifo = self.root / name
            if not fifo.exists():
                os.mkfifo(fifo, 0o666)
                fifo.chmod(0o666)

    def take_folder(self) -> Path:
        """An empty request folder (``input/`` and ``output/``); the caller stages the input into it. Folders
        are reused: making and removing a tree per request cost more than the request's own work."""
        if self._free:
            return self._free.pop()
        folder = self.root / "req" / uuid.uuid4().hex
        (folder / "output").mkdir(parents=True)
        (folder / "input").mkdir()
        if not self.spawn:  # the runner's container may run as any user
            for part in (folder, folder / "output", folder / "input"):
                part.chmod(0o777)
        return folder

    def give_back(self, folder: Path) -> None:
        if not self.alive:
            return
        try:
            for part in ("input", "output"):
                _empty(f"{folder}/{part}")
            # Removed, not left to be overwritten: ext4 flushes a file truncated and written again when it is
            # closed (auto_da_alloc), which made the request's small files the costliest part of it.
            for name in ("env", "log"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{folder}/{name}")
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)  # the script left something odd: start that one afresh
            return
        self._free.append(folder)

    async def run(self, folder: Path, variables: Mapping[str, str], timeout_s: float | None) -> int:
        """Run the script once for the request in ``folder``; its exit code. On a timeout the replica is
        stopped (its runner cannot cancel one script alone) and TimeoutError raised."""
        if not self.alive:
            raise ReplicaGone("the replica is stopped")
        write_file(f"{folder}/env", request_env(variables).encode())
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[folder.name] = future
        self.inflight += 1
        try:
            os.write(self._requests, f"{folder.name}\n".encode())
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            await self.stop()
            raise
        finally:
            self._waiting.pop(folder.name, None)
            self.inflight -= 1
            if self.inflight == 0:
                self.idle_since = time.monotonic()

    async def _read_completions(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            done = parse_done(line.decode(errors="replace"))
            if done is not None and (future := self._waiting.get(done[0])) is not None and not future.done():
                future.set_result(done[1])

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        with dies_with_worker(proc):  # the runner, and the scripts it runs
            code = await proc.wait()
        if self.alive:
            self.alive = False
            self._fail_waiting(f"the replica's runner exited with code {code}")

    def _fail_waiting(self, why: str) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ReplicaGone(why))

    async def stop(self) -> None:
        self.alive = False
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
        for task in (self._reader, self._watcher):
            if task is not None:
                task.cancel()
        if self._transport is not None:
            self._transport.close()
        if self._requests >= 0:
            os.close(self._requests)
            self._requests = -1
        self._fail_waiting("the replica was stopped")
        if self.spawn:  # a runner in another container keeps its folder
            await asyncio.to_thread(shutil.rmtree, self.root, True)


def write_file(path: str, data: bytes) -> None:
    """A small file written without pathlib's layers (a warm call writes two and reads two: it showed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _empty(folder: str) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
