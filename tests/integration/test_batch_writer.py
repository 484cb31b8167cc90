"""The agents' batch writer on the real broker: every record arrives once, in the partition Kafka's default
partitioner gives its key, in order per key, with its headers; an oversized record is refused with a clear error."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka.partitioner import DefaultPartitioner

from oscar_stream.config import Settings
from oscar_stream.core.errors import RecordTooLarge
from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.batch_writer import BatchWriter
from oscar_stream.kafka.clients import MAX_REQUEST_BYTES, reliable_producer
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.topics import TopicNames
from tests.support.kafka_io import read_all

pytestmark = pytest.mark.stack


async def test_records_arrive_once_in_order_per_key_in_kafkas_partition(settings: Settings) -> None:
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    keys = [f"minio.default/bucket/object-{k}".encode() for k in range(40)]
    # Some large values overflow the producer's batches, so the writer must start new ones mid-stream.
    records = [OutRecord(names.events, keys[i % len(keys)], f"{i}:".encode() + b"x" * (30_000 if i % 97 == 0 else 20),
                         (("seq", str(i).encode()),))
               for i in range(3000)]
    records += [OutRecord(names.deadletter, None, b"no key")]
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        await asyncio.gather(*(await BatchWriter(producer, MAX_REQUEST_BYTES).write(records)).deliveries)
    finally:
        await producer.stop()

    written = await read_all(settings, names.events)
    assert len(written) == 3000
    partitions = list(range(6))  # topics/events.yaml
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(written, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        assert record.partition == DefaultPartitioner()(record.key, partitions, partitions)
        sequence = int(record.value.split(b":", 1)[0])
        assert dict(record.headers) == {"seq": str(sequence).encode()}
        by_key[record.key].append(sequence)
    for key, sequences in by_key.items():
        assert sequences == sorted(sequences), f"records of {key!r} out of order"
    assert sorted(s for seqs in by_key.values() for s in seqs) == list(range(3000))
    assert [r.value for r in await read_all(settings, names.deadletter)] == [b"no key"]


async def test_a_record_over_the_request_limit_is_refused_with_a_clear_error(settings: Settings) -> None:
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        with pytest.raises(RecordTooLarge, match=r"record too large: .* over the producer's max_request_size"):
            await BatchWriter(producer, MAX_REQUEST_BYTES).write(
                [OutRecord(names.events, b"k", b"small"), OutRecord(names.events, b"k", b"x" * MAX_REQUEST_BYTES)])
    finally:
        await producer.stop()
    assert await read_all(settings, names.events) == []


async def test_many_writers_of_one_partition_all_get_their_records_acknowledged(settings: Settings) -> None:
    """As when 30 jobs of a service finish at once: each result is its own write to the results topic. aiokafka
    queues one pre-built batch per partition and its wait for that slot times out early when many writers wait
    (it takes all the time waited so far off the timeout again on every wake-up): writers must take turns."""
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    producer = ResilientProducer(settings.kafka, "test-many-writers")
    key = b"one-key-so-one-partition"
    try:
        await asyncio.gather(*(producer.write_all([OutRecord(names.results, key, str(i).encode())])
                               for i in range(400)))
        assert not producer.failed  # no delivery failed, so the producer was never replaced
    finally:
        await producer.stop()
    written = await read_all(settings, names.results)
    assert sorted(int(r.value) for r in written) == list(range(400))
