"""Ingest end to end on real servers: versitygw -> webhook gateway -> raw topic -> worker -> canonical events;
versitygw -> Kafka directly -> worker; the gateway's 2xx/503 contract while Kafka goes away and comes back;
malformed input reaches the dead-letter topic and the stream goes on."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from oscar_stream.config import Settings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.versitygw import S3Notify, start_versitygw
from oscar_stream.stack.process import ProcessRecord, free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.support.kafka_io import read_records
from tests.support.paths import EVENTS
from tests.support.private_kafka import PrivateKafka
from tests.support.processes import CliProcess
from tests.support.stack import write_config

pytestmark = pytest.mark.stack


@pytest.fixture
async def gateway(config: dict[str, Any], config_file: Path, tmp_path: Path) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    config["gateway"] = {"port": port, "max_body_bytes": 65536, "kafka_timeout_s": 3}
    settings = write_config(config, config_file)
    await apply_topics(settings)
    process = CliProcess(config_file, "gateway", log=tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(process.wait_http, f"{url}/readyz")
    yield url, settings
    process.stop()


def _versitygw(stack: Stack, settings: Settings, tmp_path: Path, notify: S3Notify) -> tuple[ProcessRecord, S3Store]:
    port = free_port()
    ctx = StackContext(stack.settings.stack, settings.kafka.topic_prefix, Progress(quiet=True))
    record = start_versitygw(ctx, "s3-test", port, tmp_path / "buckets", notify, tmp_path / "versitygw.log")
    store = S3Store(settings.storages[0].model_copy(update={"endpoint": f"http://127.0.0.1:{port}"}))
    return record, store


async def _upload(store: S3Store, tmp_path: Path, bucket: str, keys: list[str]) -> None:
    await store.ensure_bucket(bucket)
    for index, key in enumerate(keys):
        source = tmp_path / f"payload-{index}"
        source.write_bytes(b"x" * (10 + index))
        await store.upload(source, bucket, key)


async def test_upload_to_versitygw_through_gateway_to_canonical_events(
        stack: Stack, gateway: tuple[str, Settings], config_file: Path, tmp_path: Path) -> None:
    url, settings = gateway
    token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
    worker = CliProcess(config_file, "worker", "--roles", "normalize", log=tmp_path / "worker.log")
    # versitygw's webhook sends no auth header: the token goes in the URL.
    hook = S3Notify(webhook_url=f"{url}/webhook/minio.default?token={token}")
    gw, store = _versitygw(stack, settings, tmp_path, hook)
    try:
        keys = ["raw/night 1/frame+1.fits", "raw/ñandú.fits"]
        await _upload(store, tmp_path, "telescope", keys)
        names = TopicNames(settings.kafka.topic_prefix)
        raw = await read_records(settings, names.raw("minio.default"), 3)  # the test message + two uploads
        assert any(b"s3:TestEvent" in r.value for r in raw)
        assert all(dict(r.headers)["oscar-transport"] == b"webhook" for r in raw)
        events = await read_records(settings, names.events, 2, exactly=True)
        data = sorted((orjson.loads(e.value)["data"] for e in events), key=lambda d: d["key"])
        assert [d["key"] for d in data] == sorted(keys)
        assert {d["bucket"] for d in data} == {"telescope"}
        assert {d["storage"] for d in data} == {"minio.default"}
        assert [d["size"] for d in sorted(data, key=lambda d: keys.index(d["key"]))] == [10, 11]
        assert all(d["etag"] and not d["etag"].startswith('"') for d in data)
        assert {e.key for e in events} == {f"minio.default/telescope/{k}".encode() for k in keys}
    finally:
        await store.close()
        terminate(gw)
        worker.stop()


async def test_versitygw_kafka_notifications_become_canonical_events(
        stack: Stack, settings: Settings, config_file: Path, tmp_path: Path) -> None:
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    notify = S3Notify(kafka_bootstrap=settings.kafka.bootstrap_servers, kafka_topic=names.raw("minio.default"))
    gw, store = _versitygw(stack, settings, tmp_path, notify)
    worker = CliProcess(config_file, "worker", "--roles", "normalize", log=tmp_path / "worker.log")
    try:
        await _upload(store, tmp_path, "images", ["in/cat.png", "in/dog.png"])
        events = await read_records(settings, names.events, 2, exactly=True)
        assert sorted(orjson.loads(e.value)["subject"] for e in events) == ["images/in/cat.png", "images/in/dog.png"]
        assert all(orjson.loads(e.value)["type"] == "io.oscar-stream.object.created" for e in events)
        assert all(dict(e.headers)["content-type"] == b"application/cloudevents+json" for e in events)
    finally:
        await store.close()
        terminate(gw)
        worker.stop()


async def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers or {}) as response:
        return response.status, await response.json()


async def test_gateway_refuses_what_it_must(gateway: tuple[str, Settings]) -> None:
    url, settings = gateway
    token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
    body = (EVENTS / "minio-put.json").read_bytes()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    hook = f"{url}/webhook/minio.default"
    assert (await _post(hook, body, {"Content-Type": "application/json"}))[0] == 401
    assert (await _post(hook, body, {**auth, "Authorization": "Bearer wrong"}))[0] == 401
    assert (await _post(f"{url}/webhook/unknown", body, auth))[0] == 404
    assert (await _post(hook, b"x" * 70000, auth))[0] == 413
    assert (await _post(hook, body, {**auth, "Content-Type": "multipart/form-data"}))[0] == 415
    status, reply = await _post(hook, body, auth)
    assert status == 200 and reply["message"] == "accepted"
    [record] = await read_records(settings, TopicNames(settings.kafka.topic_prefix).raw("minio.default"), 1,
                                  exactly=True)
    assert record.value == body and record.key == b"seismic/stations/ANMO/2026-10-02.mseed"
    headers = dict(record.headers)
    assert headers["oscar-source"] == b"minio.default" and b"T" in headers["oscar-received-at"]


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 8192):
        yield body[start:start + 8192]


async def test_gateway_endpoints_methods_and_bodies_without_length(gateway: tuple[str, Settings]) -> None:
    url, settings = gateway
    token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/webhook/minio.default", headers=auth) as response:
            assert response.status == 405 and response.headers["Allow"] == "POST"
        async with http.post(f"{url}/nowhere", data=b"{}", headers=auth) as response:
            assert response.status == 404 and "/webhook/<source id>" in (await response.json())["hint"]
        async with http.post(f"{url}/metrics") as response:
            assert response.status == 405
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 200 and "oscar_stream_gateway_requests_total" in await response.text()
        # Chunked transfer: no Content-Length to refuse early, the limit is enforced on what arrives.
        async with http.post(f"{url}/webhook/minio.default", data=_chunks(b"x" * 70000), headers=auth) as response:
            assert response.status == 413
    names = TopicNames(settings.kafka.topic_prefix)
    assert await read_records(settings, names.raw("minio.default"), 1, timeout_s=2) == []


async def test_concurrent_webhooks_each_get_the_offset_of_their_own_record(gateway: tuple[str, Settings]) -> None:
    """Records of concurrent requests share Kafka batches; every reply must still name its own record."""
    url, settings = gateway
    token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    template = (EVENTS / "minio-put.json").read_bytes()
    bodies = [template.replace(b"2026-10-02.mseed", f"2026-10-02.{i:03d}.mseed".encode()) for i in range(300)]
    assert len(set(bodies)) == 300
    async with aiohttp.ClientSession() as http:
        async def post(body: bytes) -> tuple[int, dict[str, Any]]:
            async with http.post(f"{url}/webhook/minio.default", data=body, headers=auth) as response:
                return response.status, await response.json()
        replies = await asyncio.gather(*(post(b) for b in bodies))
    assert {status for status, _ in replies} == {200}
    names = TopicNames(settings.kafka.topic_prefix)
    records = await read_records(settings, names.raw("minio.default"), 300, exactly=True)
    stored = {(r.partition, r.offset): r.value for r in records}
    assert len(stored) == 300
    assert {(reply["partition"], reply["offset"]): body for body, (_, reply) in zip(bodies, replies, strict=True)} \
        == stored


async def test_malformed_notifications_are_dead_lettered_and_the_stream_goes_on(
        gateway: tuple[str, Settings], config_file: Path, tmp_path: Path) -> None:
    url, settings = gateway
    token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    worker = CliProcess(config_file, "worker", "--roles", "normalize", log=tmp_path / "worker.log")
    try:
        bad = sorted((EVENTS / "malformed").iterdir())
        for file in bad:
            assert (await _post(f"{url}/webhook/minio.default", file.read_bytes(), auth))[0] == 200
        assert (await _post(f"{url}/webhook/minio.default", (EVENTS / "minio-put.json").read_bytes(), auth))[0] == 200
        names = TopicNames(settings.kafka.topic_prefix)
        dead = await read_records(settings, names.deadletter, len(bad), exactly=True)
        records = [orjson.loads(d.value) for d in dead]
        assert len(records) == len(bad)
        assert {base64.b64decode(r["payload_b64"]) for r in records} == {f.read_bytes() for f in bad}
        reasons = " | ".join(r["reason"] for r in records)
        for expected in ("not JSON", "'Records' is empty", "expected a JSON object", "must be a string"):
            assert expected in reasons
        assert all(r["source"] == "minio.default" and r["origin"]["topic"] == names.raw("minio.default")
                   for r in records)
        [event] = await read_records(settings, names.events, 1, exactly=True)
        assert orjson.loads(event.value)["data"]["bucket"] == "seismic"
    finally:
        worker.stop()


async def test_gateway_answers_503_while_kafka_is_down_and_loses_nothing(
        stack: Stack, config: dict[str, Any], config_file: Path, tmp_path: Path) -> None:
    """A private broker, so stopping it does not disturb the shared stack."""
    broker = PrivateKafka(stack, tmp_path)
    await broker.start()
    port = free_port()
    config["kafka"]["bootstrap_servers"] = broker.bootstrap
    config["gateway"] = {"port": port, "kafka_timeout_s": 2}
    settings = write_config(config, config_file)
    await apply_topics(settings)
    gateway_process = CliProcess(config_file, "gateway", log=tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}/webhook/minio.default"
    auth = {"Authorization": f"Bearer {settings.sources[0].token.get_secret_value()}",  # type: ignore[union-attr]
            "Content-Type": "application/json"}
    body = (EVENTS / "minio-put.json").read_bytes()
    accepted: list[bytes] = []
    try:
        await asyncio.to_thread(gateway_process.wait_http, f"http://127.0.0.1:{port}/readyz")
        for i in range(3):
            payload = body.replace(b"2026-10-02.mseed", f"a{i}.mseed".encode())
            status, _ = await _post(url, payload, auth)
            assert status == 200
            accepted.append(payload)
        broker.stop()
        statuses = [(await _post(url, body.replace(b"2026-10-02.mseed", f"down{i}.mseed".encode()), auth))[0]
                    for i in range(2)]
        assert statuses == [503, 503]
        await broker.start()
        recovered = []
        for i in range(30):
            payload = body.replace(b"2026-10-02.mseed", f"b{i}.mseed".encode())
            status, _ = await _post(url, payload, auth)
            if status == 200:
                accepted.append(payload)
                recovered.append(i)
                if len(recovered) == 3:
                    break
            else:
                assert status == 503
                await asyncio.sleep(1)
        assert len(recovered) == 3, "the gateway did not recover after Kafka came back"
        raw = await read_records(settings, TopicNames(settings.kafka.topic_prefix).raw("minio.default"), len(accepted))
        assert set(accepted) <= {r.value for r in raw}  # every acknowledged notification is in Kafka
    finally:
        gateway_process.stop()
        broker.stop()
