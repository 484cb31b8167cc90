"""The local stack's servers are real and work: Kafka round trip, versitygw notifications to an HTTP receiver,
Prometheus scraping an endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from oscar_stream.config import Settings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.prometheus import add_scrape_target, remove_scrape_target
from oscar_stream.stack.components.versitygw import S3Notify, start_versitygw
from oscar_stream.stack.process import free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.support.kafka_io import produce, read_records
from tests.support.prometheus import wait_for_result

pytestmark = pytest.mark.stack


async def test_kafka_produce_and_consume(settings: Settings) -> None:
    changes = await apply_topics(settings)
    assert {c.action for c in changes} == {"created"}
    topic = TopicNames(settings.kafka.topic_prefix).events
    await produce(settings, topic, [b"one", b"two"], key=b"k")
    records = await read_records(settings, topic, 2)
    assert sorted(r.value for r in records) == [b"one", b"two"]
    assert {r.key for r in records} == {b"k"}
    again = await apply_topics(settings)
    assert {c.action for c in again} == {"unchanged"}


async def test_versitygw_notifies_an_http_receiver(stack: Stack, settings: Settings, tmp_path: Path) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port, s3_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ctx = StackContext(stack.settings.stack, settings.kafka.topic_prefix, Progress(quiet=True))
    gw = await asyncio.to_thread(
        start_versitygw, ctx, "s3-webhook-test", s3_port, tmp_path / "buckets",
        S3Notify(webhook_url=f"http://127.0.0.1:{port}/hook"), tmp_path / "versitygw.log")
    store = S3Store(settings.storages[0].model_copy(update={"endpoint": f"http://127.0.0.1:{s3_port}"}))
    try:
        test_message = orjson.loads(await asyncio.wait_for(received.get(), 10))
        assert test_message["Event"] == "s3:TestEvent"  # sent when the gateway starts
        await store.ensure_bucket("inbox")
        payload = tmp_path / "hello.txt"
        payload.write_bytes(b"hello world")
        stored = await store.upload(payload, "inbox", "docs/hello world.txt")
        note = orjson.loads(await asyncio.wait_for(received.get(), 10))
        record = note["Records"][0]
        assert record["eventName"] == "s3:ObjectCreated:Put"
        assert record["s3"]["bucket"]["name"] == "inbox"
        assert record["s3"]["object"]["key"] == "docs/hello world.txt"  # versitygw does not URL-encode keys
        assert record["s3"]["object"]["size"] == 11
        assert record["s3"]["object"]["eTag"].strip('"') == stored.etag
    finally:
        await store.close()
        terminate(gw)
        await runner.cleanup()


async def test_prometheus_scrapes_an_endpoint(stack: Stack, settings: Settings) -> None:
    registry = CollectorRegistry()
    marker = Gauge("oscar_stream_test_marker", "a value only this test exports", registry=registry)
    marker.set(4242)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    name = f"test-{settings.kafka.topic_prefix}"
    add_scrape_target(stack.settings.stack.state_dir, name, f"127.0.0.1:{port}")
    prometheus = f"http://127.0.0.1:{stack.settings.stack.prometheus_port}"
    try:
        result = await wait_for_result(prometheus, f'oscar_stream_test_marker{{instance_name="{name}"}}')
        assert [float(r["value"][1]) for r in result] == [4242]
    finally:
        remove_scrape_target(stack.settings.stack.state_dir, name)
        await runner.cleanup()
