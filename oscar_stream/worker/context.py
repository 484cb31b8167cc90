"""What the agents of one worker share: settings, topic names, the faust app, the routing table, health."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from oscar_stream.config import Settings
from oscar_stream.health import Health
from oscar_stream.topics import TopicNames
from oscar_stream.worker.services_table import ServicesTable


@dataclass
class WorkerContext:
    settings: Settings
    app: faust.App
    names: TopicNames
    services: ServicesTable
    health: Health
