"""The dCache watcher against a server following dCache's SSE protocol, writing to the real broker; a real
worker normalizes what it wrote."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.core.records import H_DCACHE_PATH, H_SSE_EVENT, H_SSE_ID
from oscar_stream.ingest.dcache_watcher import DcacheWatcher
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.topics import TopicNames
from tests.support.dcache_server import DcacheServer
from tests.support.kafka_io import read_records
from tests.support.processes import CliProcess
from tests.support.stack import write_config

pytestmark = pytest.mark.stack
SOURCE = "webdav.dcache"
FOLDER = "/data/beamline-7/incoming"


@pytest.fixture
async def server() -> AsyncIterator[DcacheServer]:
    dcache = DcacheServer()
    await dcache.start()
    yield dcache
    await dcache.stop()


@pytest.fixture
async def dcache_settings(config: dict[str, Any], config_file: Path, server: DcacheServer) -> Settings:
    config["sources"] = [{"id": SOURCE, "kind": "dcache", "url": server.url, "client_id": "oscar-test",
                          "username": "beamline", "password": "secret-pw",
                          "subscriptions": [{"path": FOLDER}]}]
    settings = write_config(config, config_file)
    await apply_topics(settings)
    return settings


class RunningWatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = ResilientProducer(settings.kafka, "test-dcache")
        self.watcher: DcacheWatcher | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> DcacheWatcher:
        topic = TopicNames(self.settings.kafka.topic_prefix).raw(SOURCE)
        self.watcher = DcacheWatcher(self.settings.sources[0], self.settings.kafka, topic, self.producer,
                                     max_backoff_s=0.5)
        self.task = asyncio.ensure_future(self.watcher.run())
        await asyncio.wait_for(self.watcher.connected.wait(), 20)
        return self.watcher

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.producer.stop()


async def _raw(settings: Settings, count: int, exactly: bool = False) -> list[tuple[str, str, bytes]]:
    records = await read_records(settings, TopicNames(settings.kafka.topic_prefix).raw(SOURCE), count,
                                 exactly=exactly)
    out = []
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        out.append((headers[H_SSE_EVENT], headers.get(H_SSE_ID, ""), record.value))
    return out


async def test_channel_subscription_and_only_complete_files_become_events(
        dcache_settings: Settings, server: DcacheServer, config_file: Path, tmp_path: Path) -> None:
    running = RunningWatcher(dcache_settings)
    await running.start()
    worker = CliProcess(config_file, "worker", "--roles", "normalize", log=tmp_path / "worker.log")
    try:
        channel = server.channel()
        assert channel.client_id == "oscar-test" and list(channel.subscriptions.values()) == [FOLDER]
        for mask in (["IN_CREATE"], ["IN_OPEN"], ["IN_MODIFY"], ["IN_CLOSE_WRITE"], ["IN_ATTRIB"]):
            server.emit(FOLDER, "run-1.h5", mask)
        server.emit(FOLDER, "calib", ["IN_MOVED_TO", "IN_ISDIR"], cookie="c1")
        raw = await _raw(dcache_settings, 7)
        assert [event for event, _, _ in raw] == ["SYSTEM"] + ["inotify"] * 6
        records = await read_records(dcache_settings, TopicNames(dcache_settings.kafka.topic_prefix).raw(SOURCE), 7)
        paths = {dict(r.headers).get(H_DCACHE_PATH) for r in records[1:]}
        assert paths == {FOLDER.encode()}
        events = await read_records(dcache_settings, TopicNames(dcache_settings.kafka.topic_prefix).events, 1,
                                    exactly=True)
        assert len(events) == 1
        event = orjson.loads(events[0].value)
        assert event["data"]["key"] == f"{FOLDER}/run-1.h5" and event["data"]["action"] == "IN_CLOSE_WRITE"
        assert event["data"]["storage"] == SOURCE
        assert events[0].key == f"{SOURCE}/{FOLDER.lstrip('/')}/run-1.h5".encode()
    finally:
        worker.stop()
        await running.stop()


async def test_reconnect_replays_the_gap_without_loss_or_duplicates(
        dcache_settings: Settings, server: DcacheServer) -> None:
    running = RunningWatcher(dcache_settings)
    watcher = await running.start()
    try:
        server.emit(FOLDER, "a.h5", ["IN_CLOSE_WRITE"])
        await _raw(dcache_settings, 2)
        reconnects = metrics.DCACHE_RECONNECTS.labels(SOURCE)._value.get()
        await server.drop_connections()
        watcher.connected.clear()
        server.emit(FOLDER, "b.h5", ["IN_CLOSE_WRITE"])  # happens while the watcher is away
        server.emit(FOLDER, "c.h5", ["IN_CLOSE_WRITE"])
        await asyncio.wait_for(watcher.connected.wait(), 20)
        raw = await _raw(dcache_settings, 4, exactly=True)
        assert [sse_id for _, sse_id, _ in raw] == ["1", "2", "3", "4"]
        assert server.last_event_ids[-1] == "2"
        assert metrics.DCACHE_RECONNECTS.labels(SOURCE)._value.get() > reconnects
    finally:
        await running.stop()


async def test_restart_resumes_from_the_position_kept_in_kafka(
        dcache_settings: Settings, server: DcacheServer) -> None:
    first = RunningWatcher(dcache_settings)
    await first.start()
    server.emit(FOLDER, "a.h5", ["IN_CLOSE_WRITE"])
    await _raw(dcache_settings, 2)
    await first.stop()
    server.emit(FOLDER, "b.h5", ["IN_CLOSE_WRITE"])  # while no watcher runs
    second = RunningWatcher(dcache_settings)
    await second.start()
    try:
        server.emit(FOLDER, "c.h5", ["IN_CLOSE_WRITE"])
        raw = await _raw(dcache_settings, 4, exactly=True)
        assert [sse_id for _, sse_id, _ in raw] == ["1", "2", "3", "4"]
        assert len(server.channels) == 1  # found again by its client-id, not recreated
        assert server.last_event_ids[-1] == "2"
    finally:
        await second.stop()


async def test_event_loss_is_counted_and_dead_lettered(
        dcache_settings: Settings, server: DcacheServer, config_file: Path, tmp_path: Path) -> None:
    running = RunningWatcher(dcache_settings)
    await running.start()
    worker = CliProcess(config_file, "worker", "--roles", "normalize", log=tmp_path / "worker.log")
    lost = metrics.DCACHE_EVENTS_LOST.labels(SOURCE)._value.get()
    try:
        server.emit_system("EVENT_LOSS")
        server.emit(FOLDER, "after-loss.h5", ["IN_CLOSE_WRITE"])
        names = TopicNames(dcache_settings.kafka.topic_prefix)
        [dead] = await read_records(dcache_settings, names.deadletter, 1, exactly=True)
        record = orjson.loads(dead.value)
        assert record["stage"] == "normalize" and record["source"] == SOURCE
        assert "EVENT_LOSS" in record["reason"] and "dropped" in record["reason"]
        assert metrics.DCACHE_EVENTS_LOST.labels(SOURCE)._value.get() == lost + 1
        [event] = await read_records(dcache_settings, names.events, 1, exactly=True)  # the stream goes on
        assert orjson.loads(event.value)["data"]["key"].endswith("after-loss.h5")
    finally:
        worker.stop()
        await running.stop()


async def test_wrong_credentials_never_connect(dcache_settings: Settings, server: DcacheServer) -> None:
    bad = dcache_settings.model_copy(deep=True)
    bad.sources[0].password = SecretStr("wrong")
    running = RunningWatcher(bad)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(running.start(), 3)
    await running.stop()
    assert server.channels == {}
