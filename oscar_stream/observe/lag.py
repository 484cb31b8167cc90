"""Consumer lag of a consumer group, per topic, asked of the broker (and exported as a metric by workers)."""

from __future__ import annotations

from collections import defaultdict

from aiokafka import AIOKafkaConsumer

from oscar_stream.config import KafkaSettings
from oscar_stream.kafka.clients import admin, connection_options


async def group_lag(kafka: KafkaSettings, group: str) -> dict[str, int]:
    """Records not yet committed by ``group``, summed per topic (topics the group has committed on)."""
    client = admin(kafka)
    await client.start()
    try:
        committed = await client.list_consumer_group_offsets(group)
    finally:
        await client.close()
    partitions = [tp for tp in committed if not tp.topic.startswith(f"{group}-")]  # not faust's own topics
    if not partitions:
        return {}
    reader = AIOKafkaConsumer(**connection_options(kafka), group_id=None)
    await reader.start()
    try:
        ends = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    lag: dict[str, int] = defaultdict(int)
    for tp in partitions:
        lag[tp.topic] += max(0, ends[tp] - max(committed[tp].offset, 0))
    return dict(lag)
