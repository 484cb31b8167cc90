"""Is Kafka reachable now? A metadata request every few seconds, with a deadline: the one signal that does
not depend on traffic (an idle consumer or producer notices nothing while the broker is away). It asks for no
topic at all: a cluster's metadata for every topic (thousands, in a shared cluster) would cost each worker and
gateway far more CPU than their work."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from oscar_stream.config import KafkaSettings
from oscar_stream.health import Component
from oscar_stream.kafka.clients import connection_options


class KafkaProbe:
    def __init__(self, kafka: KafkaSettings, health: Component, interval_s: float = 2.0) -> None:
        self._kafka = kafka
        self._health = health
        self._interval_s = interval_s

    @property
    def reachable(self) -> bool:
        return self._health.state == "running"

    async def run(self) -> None:
        client = AIOKafkaClient(**connection_options(self._kafka), client_id=f"{self._kafka.client_id}-probe")
        deadline = min(10.0, self._kafka.delivery_timeout_s)
        try:
            while True:
                try:
                    if not client.cluster.brokers():
                        await asyncio.wait_for(client.bootstrap(), deadline)
                    else:
                        await asyncio.wait_for(client.send(client.get_random_node(), MetadataRequest([])), deadline)
                    self._health.running()
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    self._health.recovering(f"Kafka unreachable: {type(err).__name__}: {err}")
                await asyncio.sleep(self._interval_s)
        finally:
            with contextlib.suppress(Exception):
                await client.close()
