"""The process guard (executors/process_guard.py) with real processes: the groups it watches die with the process
that watched them, including what those groups started, and a guard that was killed is replaced without losing
the groups it knew."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.support.processes import process_gone

OWNER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from oscar_stream.executors.process_guard import ProcessGuard
    guard = ProcessGuard()
    first = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE,
                             start_new_session=True)
    guard.watch(first.pid)
    child = first.stdout.readline().decode().strip()
    killed = guard.pid
    os.kill(killed, signal.SIGKILL)
    os.waitpid(killed, 0)
    time.sleep(0.1)
    second = subprocess.Popen(["sleep", "60"], start_new_session=True)
    guard.watch(second.pid)
    forgotten = subprocess.Popen(["sleep", "60"], start_new_session=True)
    guard.watch(forgotten.pid)
    guard.forget(forgotten.pid)
    print(first.pid, child, second.pid, forgotten.pid, killed, guard.pid, flush=True)
    time.sleep(60)
""")


def test_watched_groups_die_with_their_owner_even_after_the_guard_was_replaced() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE)
    assert owner.stdout is not None
    first, child, second, forgotten, old_guard, new_guard = map(int, owner.stdout.readline().split())
    try:
        assert new_guard != old_guard
        assert not any(process_gone(pid) for pid in (first, child, second, forgotten, new_guard))
        owner.kill()  # as kill -9 of a worker
        owner.wait()
        deadline = time.monotonic() + 10
        while not all(process_gone(pid) for pid in (first, child, second)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_gone(first) and process_gone(child), "the first group (and its child) outlived its owner"
        assert process_gone(second), "a group watched after the guard was replaced outlived its owner"
        assert not process_gone(forgotten), "a group the owner forgot was killed"
    finally:
        for pid in (first, child, second, forgotten):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
