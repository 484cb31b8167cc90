"""``oscar-stream topics apply``: create missing topics, grow partitions, align configs; report each change."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from oscar_stream.config import Settings
from oscar_stream.kafka.clients import admin
from oscar_stream.topics import TopicSpec, load_topic_specs


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str  # created | partitions | config | unchanged
    detail: str

    def __str__(self) -> str:
        return f"{self.action:<10} {self.topic}" + (f"  ({self.detail})" if self.detail else "")


def desired_topics(settings: Settings) -> dict[str, TopicSpec]:
    """Full topic name -> its declaration, for this deployment's prefix and sources."""
    source_ids = [s.id for s in settings.sources]
    out: dict[str, TopicSpec] = {}
    for spec in load_topic_specs(settings.topics_dir).values():
        for name in spec.full_names(settings.kafka.topic_prefix, source_ids):
            out[name] = spec
    return out


async def apply_topics(settings: Settings, only: set[str] | None = None) -> list[TopicChange]:
    wanted = {n: s for n, s in desired_topics(settings).items() if only is None or n in only}
    client = admin(settings.kafka)
    await client.start()
    try:
        existing = set(await client.list_topics())
        changes: list[TopicChange] = []
        missing = [n for n in wanted if n not in existing]
        if missing:
            await client.create_topics(
                [
                    NewTopic(
                        name=n,
                        num_partitions=wanted[n].partitions,
                        replication_factor=settings.kafka.replication_factor,
                        topic_configs=wanted[n].config,
                    )
                    for n in missing
                ]
            )
            await _until_led(client, missing)
            changes += [TopicChange(n, "created", f"{wanted[n].partitions} partitions") for n in missing]
        present = [n for n in wanted if n in existing]
        if present:
            changes += await _align(client, {n: wanted[n] for n in present})
        return sorted(changes, key=lambda c: c.topic)
    finally:
        await client.close()


async def _until_led(client: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every partition of the new topics has a leader: the controller accepts a topic before the
    brokers know of it, and a client that asks them at once (versitygw's notifier does) is told there is none."""
    async with asyncio.timeout(timeout_s):
        while True:
            described = await client.describe_topics(topics)
            if all(d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                   for d in described):
                return
            await asyncio.sleep(0.05)


async def _align(client: AIOKafkaAdminClient, specs: dict[str, TopicSpec]) -> list[TopicChange]:
    changes: list[TopicChange] = []
    described = await client.describe_topics(list(specs))
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    grow = {n: NewPartitions(total_count=s.partitions) for n, s in specs.items() if partitions[n] < s.partitions}
    if grow:
        await client.create_partitions(grow)
        changes += [TopicChange(n, "partitions", f"{partitions[n]} -> {p.total_count}") for n, p in grow.items()]
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in specs]
    current = await client.describe_configs(resources)
    actual: dict[str, dict[str, str]] = {}
    for response in current:
        for _code, _msg, _type, name, entries in response.resources:
            actual[name] = {entry[0]: entry[1] for entry in entries}
    drift = {
        n: {k: v for k, v in s.config.items() if actual.get(n, {}).get(k) != v}
        for n, s in specs.items()
    }
    to_alter = [ConfigResource(ConfigResourceType.TOPIC, n, configs=specs[n].config) for n, d in drift.items() if d]
    if to_alter:
        await client.alter_configs(to_alter)
    for name in specs:
        if drift[name]:
            changes.append(TopicChange(name, "config", ", ".join(f"{k}={v}" for k, v in drift[name].items())))
        elif name not in grow:
            changes.append(TopicChange(name, "unchanged", ""))
    return changes
