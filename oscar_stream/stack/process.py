"""Start, find and stop the stack's server processes by pid, with their output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(Exception):
    """A stack component failed; the message says which one and where its log is."""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, from /proc; None if there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class ProcessRecord:
    component: str
    pid: int
    executable: str
    log: str
    start_ticks: int

    def alive(self) -> bool:
        """True while the process we started runs; a recycled pid has another start time."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] != "Z" and stat[1] == self.start_ticks


def spawn(
    component: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    stat = _stat(proc.pid)
    return ProcessRecord(component, proc.pid, argv[0], str(log), stat[1] if stat else -1)


def terminate(record: ProcessRecord, timeout_s: float = 20.0) -> None:
    if not record.alive():
        return
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not record.alive():
            _reap(record.pid)
            return
        time.sleep(0.1)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(record.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log yet)"
    return "\n".join(text[-lines:])


def wait_until(
    record: ProcessRecord, ready: Callable[[], bool], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not record.alive():
            raise StackError(
                f"{record.component} exited while waiting for {what}; its log is {record.log}:\n"
                f"{log_tail(record.log)}"
            )
        time.sleep(0.2)
    raise StackError(
        f"{record.component} did not become ready ({what}) within {timeout_s:.0f}s; its log is {record.log}:\n"
        f"{log_tail(record.log)}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
