"""A Kafka broker of a test's own (same build as the stack's), so that stopping it disturbs no other test."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.kafka import Kafka
from oscar_stream.stack.process import free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack


class PrivateKafka:
    def __init__(self, stack: Stack, work: Path) -> None:
        self.settings = stack.settings.stack.model_copy(update={
            "state_dir": work / "private-stack", "kafka_port": free_port(), "kafka_controller_port": free_port(),
            "kafka_heap": "384m"})
        self._ctx = StackContext(self.settings, "private", Progress(quiet=True))
        self._broker = Kafka()
        self._records: list[Any] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    async def start(self) -> None:
        self._broker.install(self._ctx)
        self._records = await asyncio.to_thread(self._broker.start, self._ctx)

    def stop(self) -> None:
        for record in self._records:
            terminate(record)
        self._records = []
