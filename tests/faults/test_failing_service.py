"""A service whose script always fails (retries with backoff, then a failed result) must not delay a healthy
service next to it: the healthy one's jobs finish as fast as when it runs alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import StoredObject
from oscar_stream.core.times import parse_time
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.faults import Worker, duplicates, upload_objects, wait_results
from tests.support.kafka_io import produce_records
from tests.support.stack import write_config

pytestmark = pytest.mark.stack

TABLE = """\
version: oscar-stream/v1
services:
  - name: healthy
    image: alpine:3.22
    concurrency: 4
    script_inline: "sleep 0.1"
    input: [{storage_provider: minio, path: unused/healthy}]
  - name: poison
    image: alpine:3.22
    concurrency: 2
    retries: 3
    backoff_seconds: 2
    script_inline: "echo always failing >&2; exit 3"
    input: [{storage_provider: minio, path: unused/poison}]
"""


def _invocations(service: ServiceSpec, objects: list[StoredObject]) -> list[Invocation]:
    return [Invocation.of(service.name, service.version, StorageEvent(
        id=created_object_id(o.storage, o.bucket, o.key, None, o.etag, None), type=CREATED,
        time="2026-11-30T10:00:00.000Z", storage=o.storage, kind="s3", bucket=o.bucket, key=o.key,
        action="s3:ObjectCreated:Put", size=o.size, etag=o.etag)) for o in objects]


def _last_finish(results: list[dict[str, Any]]) -> float:
    """When the last of ``results`` finished (wall clock, from the results themselves)."""
    return max(parse_time(r["finished_at"]).timestamp() for r in results)


async def test_a_failing_service_does_not_delay_a_healthy_one(
        config: dict[str, Any], tmp_path: Path, figures: dict[str, Any]) -> None:
    count = 60
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    await apply_topics(settings)
    table = tmp_path / "table.yaml"
    table.write_text(TABLE)
    healthy, poison = load_routing_files([table]).table.services
    await apply_services(settings, [healthy, poison])
    store = S3Store(settings.storages[0])
    try:
        bucket = settings.kafka.topic_prefix
        warm = _invocations(healthy, await upload_objects(store, bucket, "warm", 8, tmp_path))
        alone = _invocations(healthy, await upload_objects(store, bucket, "alone", count, tmp_path))
        beside = _invocations(healthy, await upload_objects(store, bucket, "beside", count, tmp_path))
        failing = _invocations(poison, await upload_objects(store, bucket, "poison", count, tmp_path))
    finally:
        await store.close()
    topic = TopicNames(settings.kafka.topic_prefix).invocations
    worker = Worker(config, tmp_path, "w1", "--roles", "launch")
    worker.start()
    try:
        await worker.wait_ready()
        await produce_records(settings, topic, [(i.id.encode(), i.to_json(), []) for i in warm])
        await wait_results(settings, len(warm), service="healthy", timeout_s=120)  # clients started, code loaded
        started = time.time()
        await produce_records(settings, topic, [(i.id.encode(), i.to_json(), []) for i in alone])
        done = await wait_results(settings, len(warm) + count, service="healthy", timeout_s=120)
        alone_s = _last_finish([r for r in done if r["invocation_id"] in {i.id for i in alone}]) - started
        started = time.time()  # the failing service's invocations first, in the same partitions
        await produce_records(settings, topic, [(i.id.encode(), i.to_json(), []) for i in [*failing, *beside]])
        done = await wait_results(settings, len(warm) + 2 * count, service="healthy", timeout_s=120)
        beside_s = _last_finish([r for r in done if r["invocation_id"] in {i.id for i in beside}]) - started
        failed = await wait_results(settings, count, service="poison", timeout_s=300)
        retried = await worker.metric("oscar_stream_jobs_retried_total", service="poison", executor="local")
    finally:
        worker.stop()
    figures.update({"healthy jobs": count, "healthy alone (s)": alone_s, "healthy beside the failing one (s)": beside_s,
                    "delay (s)": beside_s - alone_s, "failing invocations": count,
                    "failed results": sum(1 for r in failed if r["status"] == "failed"),
                    "retries of the failing service": retried, "duplicate results": duplicates(failed)})
    assert all(r["status"] == "failed" and "exited with code 3" in r["reason"] for r in failed)
    assert len(failed) == count and duplicates(failed) == 0 and retried == 3 * count
    assert beside_s - alone_s < 1.0
