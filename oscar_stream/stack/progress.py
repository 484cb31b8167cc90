"""Progress lines for slow stack steps, readable both in a terminal and in a CI log."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self._quiet = quiet
        self._t0 = time.monotonic()

    def say(self, component: str, message: str) -> None:
        if not self._quiet:
            elapsed = time.monotonic() - self._t0
            print(f"[stack {elapsed:6.1f}s] {component}: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def step(self, component: str, message: str) -> Iterator[None]:
        started = time.monotonic()
        self.say(component, f"{message} ...")
        yield
        self.say(component, f"{message}: done in {time.monotonic() - started:.1f}s")
