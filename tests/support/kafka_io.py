"""Read and write topics of the real broker in tests."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from oscar_stream.config import Settings
from oscar_stream.kafka.clients import all_partitions, consumer, reliable_producer


async def read_records(settings: Settings, topic: str, count: int, timeout_s: float = 30.0,
                       exactly: bool = False) -> list[ConsumerRecord[bytes, bytes]]:
    """At least ``count`` records of ``topic`` from the beginning (all of them when ``exactly``: then it
    keeps reading for a short while to prove no extra record arrives)."""
    reader: AIOKafkaConsumer = consumer(settings.kafka, topic, group_id=None)
    await reader.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(records) < count:
            batch = await reader.getmany(timeout_ms=200)
            for messages in batch.values():
                records += messages
        if exactly:
            settle = time.monotonic() + 2.0
            while time.monotonic() < settle:
                batch = await reader.getmany(timeout_ms=200)
                for messages in batch.values():
                    records += messages
    finally:
        await reader.stop()
    return records


async def produce(settings: Settings, topic: str, values: list[bytes], key: bytes | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        pending = [await producer.send(topic, v, key=key, headers=headers) for v in values]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


Headers = list[tuple[str, bytes]]


async def produce_records(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes, Headers]]) -> None:
    """Write (key, value, headers) records, each to the partition Kafka's default partitioner gives its key."""
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key, headers=headers or None)
                   for key, value, headers in records]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end at the time of the call."""
    reader: AIOKafkaConsumer = consumer(settings.kafka, group_id=None)
    await reader.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = await all_partitions(settings.kafka, topic)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await reader.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                records += messages
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    return records
