"""Which invocations already have a published result: one result per invocation id, for both executors.

The results topic is keyed by invocation id and has as many partitions as the invocations topic, so the
result of an invocation lands on the partition number of the invocation itself: the worker that owns an
invocations partition owns the matching results partition. When it takes a partition over, it reads the
results published there since shortly before the partition's first unfinished invocation was written
(``worker.result_lookback_s`` earlier), and then records every result it publishes itself. A redelivered
invocation whose result is known is acknowledged without running again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from oscar_stream.config import KafkaSettings
from oscar_stream.kafka.clients import consumer

log = logging.getLogger(__name__)


class ResultLedger:
    def __init__(self, kafka: KafkaSettings, results_topic: str, invocations_topic: str, lookback_s: float) -> None:
        self._kafka = kafka
        self._results = results_topic
        self._invocations = invocations_topic
        self._lookback_s = lookback_s
        self._known: dict[int, dict[str, float]] = {}  # partition -> invocation id -> when it was learnt

    def has(self, partition: int, invocation_id: str) -> bool:
        return invocation_id in self._known.get(partition, {})

    def add(self, partition: int, invocation_id: str) -> None:
        self._known.setdefault(partition, {})[invocation_id] = time.monotonic()

    def drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._known.pop(partition, None)

    def prune(self) -> None:
        """Forget what was learnt longer ago than the look-back (a copy arriving later may run again)."""
        horizon = time.monotonic() - max(self._lookback_s, 60.0)
        for known in self._known.values():
            for invocation_id in [i for i, at in known.items() if at < horizon]:
                del known[invocation_id]

    def __len__(self) -> int:
        return sum(len(known) for known in self._known.values())

    async def load(self, committed: Mapping[int, int | None], timeout_s: float) -> None:
        """Learn the results of the given invocations partitions (partition -> committed offset, or None)."""
        if not committed:
            return
        reader = consumer(self._kafka, group_id=None, enable_auto_commit=False)
        await asyncio.wait_for(reader.start(), timeout_s)
        try:
            await asyncio.wait_for(self._load(reader, committed), timeout_s)
        finally:
            await asyncio.wait_for(reader.stop(), timeout_s)

    async def _load(self, reader: AIOKafkaConsumer, committed: Mapping[int, int | None]) -> None:
        starts = await self._start_times(reader, committed)
        results = {TopicPartition(self._results, p): ms for p, ms in starts.items()}
        reader.assign(list(results))
        found = await reader.offsets_for_times(results)
        ends = await reader.end_offsets(list(results))
        remaining = set()
        for tp in results:
            at = found.get(tp)
            start = at.offset if at is not None else ends[tp]
            if start < ends[tp]:
                reader.seek(tp, start)
                remaining.add(tp)
            self._known.setdefault(tp.partition, {})
        learnt = 0
        while remaining:
            batch = await reader.getmany(*remaining, timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp] and message.key:
                        self.add(tp.partition, message.key.decode(errors="replace"))
                        learnt += 1
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        log.info("result ledger: learnt %d published results of partitions %s", learnt, sorted(committed))

    async def _start_times(self, reader: AIOKafkaConsumer, committed: Mapping[int, int | None]) -> dict[int, int]:
        """Per partition, the time from which results matter (ms since the epoch)."""
        lookback_ms = int(self._lookback_s * 1000)
        now_ms = int(time.time() * 1000)
        starts = dict.fromkeys(committed, now_ms - lookback_ms)
        pending = {TopicPartition(self._invocations, p): offset
                   for p, offset in committed.items() if offset is not None}
        if not pending:
            return starts
        reader.assign(list(pending))
        ends = await reader.end_offsets(list(pending))
        waiting = set()
        for tp, offset in pending.items():
            if offset < ends[tp]:
                reader.seek(tp, offset)
                waiting.add(tp)
        while waiting:
            batch = await reader.getmany(*waiting, timeout_ms=500, max_records=1)
            for tp, messages in batch.items():
                if messages:
                    starts[tp.partition] = min(starts[tp.partition], messages[0].timestamp - lookback_ms)
                    waiting.discard(tp)
        return starts
