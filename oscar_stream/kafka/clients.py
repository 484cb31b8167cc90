"""aiokafka clients configured from :class:`KafkaSettings` (security options included) in one place."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from oscar_stream.config import KafkaSettings
from oscar_stream.kafka.partitioner import KafkaDefaultPartitioner

MAX_REQUEST_BYTES = 1_048_576  # aiokafka's and the broker's default; a record must fit in one request
MAX_RECORD_BYTES = MAX_REQUEST_BYTES - 4096  # what is left for key, value and headers after the framing


def connection_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return options


def reliable_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """acks=all and idempotence: a record is acknowledged only once every in-sync replica has it."""
    options: dict[str, Any] = {
        **connection_options(kafka),
        "client_id": kafka.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 15000,
        "max_request_size": MAX_REQUEST_BYTES,
        "partitioner": KafkaDefaultPartitioner(),
        **overrides,
    }
    return AIOKafkaProducer(**options)


def consumer(kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **connection_options(kafka),
        "client_id": kafka.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        **overrides,
    }
    return AIOKafkaConsumer(*topics, **options)


def group_member(kafka: KafkaSettings, group_id: str, instance_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer-group member that gives up its partitions quickly when it goes silent (a killed worker's
    partitions move in ``session_timeout_s``) and, with an ``instance_id``, gets them back at once when it
    restarts (static membership: no rebalance of the other members)."""
    return consumer(
        kafka, group_id=group_id, group_instance_id=instance_id,
        session_timeout_ms=int(kafka.session_timeout_s * 1000),
        heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
        **overrides,
    )


async def all_partitions(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, asked of the broker (a consumer without a subscription knows none)."""
    client = admin(kafka)
    await client.start()
    try:
        [described] = await client.describe_topics([topic])
    finally:
        await client.close()
    if described.get("error_code") or not described.get("partitions"):
        raise KafkaError(f"topic {topic} does not exist; run: oscar-stream topics apply")
    return [TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"],
                                                                    key=lambda p: p["partition"])]


def admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(kafka), client_id=f"{kafka.client_id}-admin")
