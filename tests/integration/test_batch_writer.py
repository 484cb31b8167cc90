"""The agents' batch writer on the real broker: every record arrives once, in the partition Kafka's default
partitioner gives its key, in order per key, with its headers; an oversized record is refused with a clear error;
many writers of one partition all get their acknowledgements; a write the broker never acknowledges times out."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from oscar_stream.config import Settings
from oscar_stream.core.errors import RecordTooLarge
from oscar_stream.core.records import OutRecord
from oscar_stream.health import Component
from oscar_stream.kafka.batch_writer import BatchWriter
from oscar_stream.kafka.clients import MAX_REQUEST_BYTES, reliable_producer
from oscar_stream.kafka.link import KafkaLink, KafkaUnavailable
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.stack import Stack
from oscar_stream.topics import TopicNames
from tests.support.faults import until
from tests.support.kafka_io import read_all
from tests.support.private_kafka import PrivateKafka
from tests.support.stack import write_config

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


async def test_a_write_the_broker_never_acknowledges_fails_after_the_timeout(stack: Stack, config: dict[str, Any],
                                                                             config_file: Path,
                                                                             tmp_path: Path) -> None:
    """The gateway's link to Kafka: with the broker gone mid-run, a write ends with KafkaUnavailable once its
    timeout has passed (the writer's sweep, not a timer per write), and the next one after the broker is back
    is acknowledged."""
    broker = PrivateKafka(stack, tmp_path)
    await broker.start()
    config["kafka"]["bootstrap_servers"] = broker.bootstrap
    settings = write_config(config, config_file)
    await apply_topics(settings)
    topic = TopicNames(settings.kafka.topic_prefix).raw("minio.default")
    # A probe that looks only once: the link keeps taking writes, as it does between two probes.
    link = KafkaLink(ResilientProducer(settings.kafka, "link-test"),
                     KafkaProbe(settings.kafka, Component("kafka"), interval_s=3600), timeout_s=1.0)
    helpers = [asyncio.ensure_future(link.keep_connected()), asyncio.ensure_future(link.probe.run())]
    try:
        async with link.writer.running():
            await until(lambda: link.ready, timeout_s=60, what="the link ready")
            [(_, offset)] = await link.write([OutRecord(topic, b"k", b"before")])
            assert offset == 0
            broker.stop()
            started = time.monotonic()
            with pytest.raises(KafkaUnavailable, match="did not acknowledge in 1s"):
                await link.write([OutRecord(topic, b"k", b"during")])
            assert time.monotonic() - started < 10  # it ends; without the sweep it would wait on aiokafka
            await broker.start()
            await until(lambda: link.ready, timeout_s=60, what="the link ready again")
            [(_, offset)] = await link.write([OutRecord(topic, b"k", b"after")])
            assert offset >= 1
    finally:
        for helper in helpers:
            helper.cancel()
        await link.producer.stop()
        broker.stop()
