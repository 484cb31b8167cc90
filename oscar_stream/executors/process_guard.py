"""Process groups that die with the worker, as a pod's processes die with their pod.

The worker's scripts, warm runners and exposed servers each run in a process group of their own. A small guard
process holds the read end of a pipe from the worker and the list of those groups; when the pipe reaches
end-of-file — the worker exited, however it died (kill -9, OOM) — the guard kills every group still listed.
A killed worker's script must not race the partition's new owner, which runs the invocation again (possibly on
the same machine, in the same work folder).

Why not a parent-death signal (``setpriv --pdeathsig``) per script: it reaches only the script's shell, not the
programs the script started, and the extra exec cost ~0.8 ms of CPU per job, more than the rest of a spawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)

# "+<pgid>" adds a group, "-<pgid>" removes it; at end-of-file every group left is killed.
_GUARD_PROGRAM = r"""
import os, signal, sys
groups = set()
for line in sys.stdin.buffer:
    pgid = int(line[1:])
    groups.add(pgid) if line[:1] == b"+" else groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class ProcessGuard:
    def __init__(self) -> None:
        self._guard: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()

    def _send(self, line: bytes) -> None:
        # Two writes per job: a guard that died is seen by its broken pipe, not by asking after it each time.
        if self._guard is not None:
            assert self._guard.stdin is not None
            try:
                os.write(self._guard.stdin.fileno(), line)
                return
            except BrokenPipeError:
                self._guard.stdin.close()
                log.warning("the process guard exited (code %s); starting another", self._guard.wait())
        self._start()  # it learns every group watched now, this change included

    def _start(self) -> None:
        # A session of its own: a Ctrl-C to the worker's terminal must not stop the guard before the worker.
        self._guard = subprocess.Popen([sys.executable, "-I", "-c", _GUARD_PROGRAM], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        assert self._guard.stdin is not None
        if self._groups:
            os.write(self._guard.stdin.fileno(), b"".join(b"+%d\n" % g for g in self._groups))

    def watch(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self._groups.discard(pgid)
        self._send(b"-%d\n" % pgid)

    @property
    def pid(self) -> int | None:
        return self._guard.pid if self._guard is not None else None


GUARD = ProcessGuard()  # one per worker process: it lives as long as the process


@contextlib.contextmanager
def dies_with_worker(process: asyncio.subprocess.Process) -> Iterator[None]:
    """While inside: the process's group (started with ``start_new_session=True``) is killed if the worker dies.
    On the way out the group is killed too: what the process left running stops with it, as in a pod."""
    GUARD.watch(process.pid)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        GUARD.forget(process.pid)
