"""Stream processing with pipelined produce and in-order acknowledgement.

Each consumed record is handled as it arrives and its output records are handed to the producer at once; a
record is acknowledged (and so may be committed) only after Kafka acknowledged every record produced from it,
in consumption order. The producer keeps batching, so throughput does not pay one round trip per record, and
at most ``window`` records are in flight (backpressure). If a produce fails the worker stops: the records
that were not acknowledged are delivered again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

log = logging.getLogger(__name__)
Handler = Callable[[Any], Awaitable[Sequence[Awaitable[Any]]]]


async def pipelined(app: faust.App, stream: Any, handle: Handler, window: int = 2000) -> None:
    manual = stream.noack()
    pending: asyncio.Queue[tuple[Any, Sequence[Awaitable[Any]]]] = asyncio.Queue(maxsize=window)

    async def acknowledge_in_order() -> None:
        while True:
            event, deliveries = await pending.get()
            if deliveries:
                await asyncio.gather(*deliveries)
            await manual.ack(event)

    acker = asyncio.ensure_future(acknowledge_in_order())
    try:
        async for event in manual.events():
            deliveries = await handle(event)
            await pending.put((event, deliveries))
            if acker.done():
                acker.result()
    except Exception as err:
        log.exception("producing failed; stopping the worker so that unacknowledged records are redelivered")
        await app.crash(err)
        raise
    finally:
        acker.cancel()
