"""Built and downloaded artifacts, cached outside the repo under a directory keyed on their version.

Each artifact is built into a temporary directory and renamed into place when complete, so an interrupted
build never leaves a half-filled cache entry behind; a file lock keeps two concurrent builds apart.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from oscar_stream.stack.process import StackError, log_tail
from oscar_stream.stack.progress import Progress

HEARTBEAT_S = 30.0


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_dir(
    cache_dir: Path,
    key: str,
    build: Callable[[Path], None],
    progress: Progress,
    component: str,
) -> Path:
    """Return ``cache_dir/key``, running ``build(tmp_dir)`` first when it is not there yet."""
    final = cache_dir / key
    if final.is_dir():
        return final
    with _locked(cache_dir / f".{key}.lock"):
        if final.is_dir():
            return final
        tmp = cache_dir / f".{key}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        progress.say(component, f"not cached yet; building into {final}")
        build(tmp)
        tmp.rename(final)
    return final


def run_logged(
    argv: Sequence[str],
    log: Path,
    progress: Progress,
    component: str,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a slow command with its output in ``log``; print a heartbeat so a long build is visibly alive."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress.say(component, f"{what} (log: {log})")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd
        )
        stop = threading.Event()

        def heartbeat() -> None:
            previous = ""
            while not stop.wait(HEARTBEAT_S):
                last = log_tail(log, 1).strip()[:100]
                # A line already shown is stale (a compiler is silent for minutes after its downloads).
                news = f" ({last})" if last and last != previous else ""
                previous = last
                progress.say(component, f"{what}: still running, {time.monotonic() - started:.0f}s{news}")

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            code = proc.wait()
        finally:
            stop.set()
    if code != 0:
        raise StackError(
            f"{component}: {what} failed (exit {code}); full log: {log}\n{log_tail(log, 25)}\n"
            "Check that the package registries are reachable, then run the command again."
        )
    progress.say(component, f"{what}: done in {time.monotonic() - started:.0f}s")


def require_tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if not found:
        raise StackError(f"'{name}' is not installed. {hint}")
    return found
