"""One way to wait and try again everywhere: exponential backoff with jitter, and the errors worth retrying.

Used by every loop that talks to something that can be away for a while: the gateway's and the agents' Kafka
clients, the dCache watcher, the Kubernetes API calls, forwarding to another cluster, a job's own retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
RETRIABLE_HTTP = frozenset({429, 500, 502, 503, 504})  # worth another try; any other refusal is final


@dataclass
class Backoff:
    """Delays of ``base_s * 2**n``, capped at ``cap_s``, each shortened by a random part (up to half) so that
    many clients that failed together do not come back together."""

    base_s: float = 0.2
    cap_s: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay: float = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 30)) * random.uniform(0.5, 1.0)
        self.attempt += 1
        return delay

    async def wait(self, hint_s: float | None = None) -> None:
        """Sleep for the next delay, or for ``hint_s`` (e.g. a server's Retry-After) when given."""
        await asyncio.sleep(self.delay(hint_s))

    def delay(self, hint_s: float | None = None) -> float:
        if hint_s is None:
            return self.next_delay()
        self.attempt += 1
        return hint_s

    def reset(self) -> None:
        self.attempt = 0


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retryable: Callable[[BaseException], bool],
    attempts: int | None = None,
    backoff: Backoff | None = None,
    hint: Callable[[BaseException], float | None] = lambda err: None,
    log: logging.Logger | None = None,
    on_failure: Callable[[BaseException], None] = lambda err: None,
) -> T:
    """``await operation()`` until it succeeds, retrying errors for which ``retryable`` is true, at most
    ``attempts`` times in all (None: without end). The last error is raised as it is. ``on_failure`` hears of
    every failure (e.g. to report the dependency as unavailable while retrying)."""
    delays = backoff or Backoff()
    tried = 0
    while True:
        try:
            return await operation()
        except Exception as err:
            on_failure(err)
            tried += 1
            if not retryable(err) or (attempts is not None and tried >= attempts):
                raise
            delay = delays.delay(hint(err))
            if log is not None:
                log.warning("%s failed (%s: %s); trying again in %.1fs", what, type(err).__name__, err, delay)
            await asyncio.sleep(delay)
