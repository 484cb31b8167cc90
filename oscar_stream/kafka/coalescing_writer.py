"""Many concurrent callers, each waiting for its own record's acknowledgement, share Kafka batches.

The gateway answers every webhook only after Kafka acknowledged that request's record. Calling
``send_and_wait`` per request costs a coroutine, a future, a partitioner call and a timeout task each; here,
records queued during one turn of the event loop are written together by one task (so they keep their order)
through :class:`BatchWriter`, and each caller's future completes when its own batch is acknowledged. A failed
delivery throws the producer away (see resilient_producer.py); the next turn writes with a new one. A write not
acknowledged within the timeout fails with :class:`TimeoutError`: one sweep every tenth of a second finds them,
instead of a timer per request (``asyncio.timeout`` cost the gateway ~5 µs, a twentieth of a request).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

from aiokafka.structs import RecordMetadata

from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.batch_writer import BatchWriter, check_size
from oscar_stream.kafka.clients import MAX_RECORD_BYTES
from oscar_stream.kafka.resilient_producer import ResilientProducer

Placement = tuple[int, int]  # partition, offset
EXPIRY_TICK_S = 0.1
_Waiters = list[tuple[asyncio.Future[Placement], int]]  # caller, offset inside the batch


class CoalescingWriter:
    def __init__(self, producer: ResilientProducer, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._deadlines: deque[tuple[float, asyncio.Future[Placement]]] = deque()  # in the order written
        self._queue: list[tuple[OutRecord, asyncio.Future[Placement]]] = []
        self._wake = asyncio.Event()
        self._discarding: set[asyncio.Task[None]] = set()

    def write_all(self, records: list[OutRecord]) -> list[asyncio.Future[Placement]]:
        """Queue ``records``; each future gives its record's partition and offset once Kafka acknowledged it, the
        producer's error, or :class:`TimeoutError`. Raises :class:`RecordTooLarge` at once, queueing none, if
        one cannot fit."""
        for record in records:
            check_size(record, MAX_RECORD_BYTES)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        pending: list[asyncio.Future[Placement]] = []
        for record in records:
            done: asyncio.Future[Placement] = loop.create_future()
            self._queue.append((record, done))
            self._deadlines.append((deadline, done))
            pending.append(done)
        self._wake.set()
        return pending

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CoalescingWriter]:
        tasks = (asyncio.create_task(self._run()), asyncio.create_task(self._expire()))
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for _, done in self._queue:
                if not done.done():
                    done.set_exception(ConnectionError("the gateway's Kafka writer stopped"))

    async def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(EXPIRY_TICK_S)
            now = loop.time()
            while self._deadlines and (self._deadlines[0][1].done() or self._deadlines[0][0] <= now):
                _, done = self._deadlines.popleft()
                if not done.done():
                    done.set_exception(TimeoutError(f"not acknowledged within {self._timeout_s:g}s"))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # One turn of the loop more before taking the queue: the requests that arrived with the one that
            # woke us queue their records too, and share its batches (the gateway's CPU per request under wrk:
            # 74 -> 70 µs, medians of four rounds; more turns gained nothing more).
            await asyncio.sleep(0)
            self._wake.clear()
            taken, self._queue = self._queue, []
            try:
                writer = await self._producer.writer()
                written = await writer.write(record for record, _ in taken)
            except Exception as err:  # Kafka unreachable, or the producer is closing: this turn's callers hear it
                for _, done in taken:
                    if not done.done():
                        done.set_exception(err)
                continue
            waiters: list[_Waiters] = [[] for _ in written.deliveries]
            for (_, done), (batch, relative) in zip(taken, written.places, strict=True):
                waiters[batch].append((done, relative))
            for delivery, batch_waiters in zip(written.deliveries, waiters, strict=True):
                delivery.add_done_callback(self._resolver(batch_waiters, writer))

    def _resolver(self, waiters: _Waiters, writer: BatchWriter
                  ) -> Callable[[asyncio.Future[RecordMetadata]], None]:
        def resolve(delivery: asyncio.Future[RecordMetadata]) -> None:
            error = asyncio.CancelledError() if delivery.cancelled() else delivery.exception()
            if error is not None:
                task = asyncio.get_running_loop().create_task(self._producer.discard(writer))
                self._discarding.add(task)
                task.add_done_callback(self._discarding.discard)
            for done, relative in waiters:
                if done.done():
                    continue  # the caller gave up (timeout, client went away)
                if error is not None:
                    done.set_exception(error)
                else:
                    metadata = delivery.result()
                    done.set_result((metadata.partition, metadata.offset + relative))
        return resolve
