"""Keeping a stage alive: when its clients fail (Kafka or the Kubernetes API away, a deadline missed), the
stage reports that it is recovering, waits with backoff, and starts over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from oscar_stream import metrics
from oscar_stream.health import Component
from oscar_stream.retry import Backoff

log = logging.getLogger(__name__)


async def run_supervised(stage: str, attempt: Callable[[Backoff], Awaitable[None]], health: Component,
                         after_failure: str = "starting over from the committed offsets") -> None:
    """Run ``attempt`` forever, again after each failure (it resets the backoff once it makes progress)."""
    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            await attempt(backoff)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            health.recovering(f"{type(err).__name__}: {err}")
            metrics.count(metrics.STAGE_RECOVERIES, stage)
            log.warning("%s: %s: %s; %s", stage, type(err).__name__, err, after_failure)
            await backoff.wait()
