"""One warm replica: a runner (launch/warm_runner.py) and the two FIFOs that carry its requests and completions.

Locally the replica spawns the runner itself; in a pod the runner is the user's container and the replica only
opens the shared folder's FIFOs (``spawn=False``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from oscar_stream.core.errors import OscarStreamError
from oscar_stream.executors.process_guard import dies_with_worker
from oscar_stream.launch.warm_runner import RUNNER_SCRIPT, parse_done, request_env

_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


_IN_MEMORY = "m"  # the request folders on the memory file system: req/m/<name> (a link to it, locally)


class ReplicaGone(OscarStreamError):
    """The replica stopped (or was stopped) before the request finished."""


class Replica:
    def __init__(self, root: Path, script: str, env: Mapping[str, str], spawn: bool = True,
                 one_at_a_time: bool = False, memory: Path | None = None) -> None:
        """``memory``: a folder on a memory file system for the folders of requests taken ``in_memory`` (see
        ``take_folder``); without it they are kept under ``root`` like the others."""
        self.root = root
        self.memory = memory
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
        self._free: dict[bool, list[Path]] = {False: [], True: []}  # by in_memory
        self._folders = 0
        self._name_prefix = secrets.token_hex(3)

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
                "/bin/sh", "-c", RUNNER_SCRIPT, str(self.root / "script.sh"), str(self.root),
                "yes" if self.one_at_a_time else "no", env=env,
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
        if self._watcher is not None and self._watcher.done():  # it said ready, then exited at once
            await self.stop()
            raise ReplicaGone(f"the replica's runner exited as it started (folder {self.root})")
        self.alive = True
        self.started_s = time.monotonic() - began
        self._reader = asyncio.ensure_future(self._read_completions(stream))

    def _prepare(self) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        (self.root / "req").mkdir(exist_ok=True)
        in_memory = self.root / "req" / _IN_MEMORY
        if self.memory is not None:
            self.memory.mkdir(parents=True, exist_ok=True)
            if not in_memory.is_symlink():
                in_memory.symlink_to(self.memory, target_is_directory=True)
        else:
            in_memory.mkdir(exist_ok=True)
        if self.spawn:
            (self.root / "script.sh").write_text(self.script)
        else:  # the runner's container may run as any user
            for folder in (self.root / "home", self.root / "req", in_memory):
                folder.chmod(0o777)
        for name in ("requests", "done"):  # "done" last: the runner waits for it
            fifo = self.root / name
            if not fifo.exists():
                os.mkfifo(fifo, 0o666)
                fifo.chmod(0o666)

    def take_folder(self, in_memory: bool = False) -> Path:
        """An empty request folder (``input/`` and ``output/``); the caller stages the input into it. Folders
        are reused: making and removing a tree per request cost more than the request's own work.

        ``in_memory``: on the memory file system, for requests whose size is bounded (synchronous calls): the
        few small files of a request cost several times more on a disk's file system (measured on ext4: 0.64
        against 0.27 ms of the worker's CPU per call)."""
        free = self._free[in_memory]
        if free:
            return free.pop()
        # A short name (the runner's shell reads a request's line from the FIFO one byte per system call), unique
        # in a folder that a pod's runner keeps when its dispatcher starts again.
        self._folders += 1
        folder = self.root / "req" / (_IN_MEMORY if in_memory else "") / f"{self._name_prefix}{self._folders}"
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
        self._free[folder.parent.name == _IN_MEMORY].append(folder)

    async def run(self, folder: Path, variables: Mapping[str, str], timeout_s: float | None) -> int:
        """Run the script once for the request in ``folder``; its exit code. On a timeout the replica is
        stopped (its runner cannot cancel one script alone) and TimeoutError raised."""
        if not self.alive:
            raise ReplicaGone("the replica is stopped")
        write_file(f"{folder}/env", request_env(variables).encode())
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        ident = f"{_IN_MEMORY}/{folder.name}" if folder.parent.name == _IN_MEMORY else folder.name
        self._waiting[ident] = future
        self.inflight += 1
        try:
            os.write(self._requests, f"{ident}\n".encode())
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            await self.stop()
            raise
        finally:
            self._waiting.pop(ident, None)
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
            if self.memory is not None:
                await asyncio.to_thread(shutil.rmtree, self.memory, True)


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
