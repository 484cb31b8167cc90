"""The broker stops for 20 s while a store posts notifications to the gateway (retrying on 503, as MinIO does
from its queue_dir) and a worker runs jobs: the gateway answers 503 meanwhile and loses nothing it
acknowledged; both processes report unready during the outage and recover by themselves once the broker is
back; every object gets exactly one result, whatever duplicates the retries made."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.faults import Worker, duplicates, notification, until, upload_objects, wait_results
from tests.support.kafka_io import read_all
from tests.support.private_kafka import PrivateKafka
from tests.support.processes import CliProcess
from tests.support.stack import write_config

pytestmark = pytest.mark.stack

TABLE = """\
version: oscar-stream/v1
services:
  - name: copy
    image: alpine:3.22
    concurrency: 8
    script_inline: 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"'
    input: [{{storage_provider: minio, path: {bucket}/in}}]
    output: [{{storage_provider: minio, path: {bucket}/out}}]
"""


class Store:
    """A store posting notifications at a steady rate, each retried until the gateway takes it."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.answers: Counter[int] = Counter()

    async def deliver(self, http: aiohttp.ClientSession, body: bytes) -> None:
        while True:
            try:
                async with http.post(self.url, data=body, headers=self.headers) as response:
                    self.answers[response.status] += 1
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                self.answers[0] += 1
            await asyncio.sleep(0.5)

    async def post_all(self, bodies: list[bytes], per_second: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            tasks = []
            for body in bodies:
                tasks.append(asyncio.ensure_future(self.deliver(http, body)))
                await asyncio.sleep(1 / per_second)
            await asyncio.gather(*tasks)


async def _status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def test_broker_restart_mid_stream(stack: Stack, config: dict[str, Any], tmp_path: Path,
                                         figures: dict[str, Any]) -> None:
    count, outage_s = 600, 20.0
    broker = PrivateKafka(stack, tmp_path)
    await broker.start()
    port = free_port()
    config["kafka"]["bootstrap_servers"] = broker.bootstrap
    config["gateway"] = {"port": port}
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    gateway_url = f"http://127.0.0.1:{port}"
    processes: list[Any] = []
    try:
        await apply_topics(settings)
        bucket = settings.kafka.topic_prefix
        (tmp_path / "table.yaml").write_text(TABLE.format(bucket=bucket))
        await apply_services(settings, load_routing_files([tmp_path / "table.yaml"]).table.services)
        store = S3Store(settings.storages[0])
        try:
            objects = await upload_objects(store, bucket, "in", count, tmp_path)
        finally:
            await store.close()
        gateway = CliProcess(tmp_path / "oscar-stream.yaml", "gateway", log=tmp_path / "gateway.log")
        worker = Worker(config, tmp_path, "w1")
        worker.start()
        processes += [gateway, worker]
        await asyncio.to_thread(gateway.wait_http, f"{gateway_url}/readyz")
        await worker.wait_ready()
        token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
        poster = Store(f"{gateway_url}/webhook/minio.default", token)
        posting = asyncio.ensure_future(poster.post_all([notification(o) for o in objects], per_second=25))
        await asyncio.sleep(6)
        broker.stop()
        stopped = time.monotonic()
        unready = {"gateway": False, "worker": False}
        while time.monotonic() - stopped < outage_s:
            unready["gateway"] |= await _status(f"{gateway_url}/readyz") == 503
            unready["worker"] |= await worker.ready_status() == 503
            await asyncio.sleep(0.5)
        await broker.start()
        back = time.monotonic()
        gateway_ready_s = await until(lambda: _is(f"{gateway_url}/readyz", 200), timeout_s=60, what="gateway ready")
        await until(lambda: _worker_ready(worker), timeout_s=60, what="worker ready")
        worker_ready_s = time.monotonic() - back
        await posting
        found = await wait_results(settings, count, timeout_s=240)
        names = TopicNames(settings.kafka.topic_prefix)
        raw = await read_all(settings, names.raw("minio.default"))
        recoveries = {stage: await worker.metric("oscar_stream_stage_recoveries_total", stage=stage)
                      for stage in ("normalize", "route", "launch")}
    finally:
        for process in processes:
            process.stop()
        broker.stop()
    distinct = {r["invocation_id"] for r in found}
    figures.update({"notifications": count, "gateway answers": dict(sorted(poster.answers.items())),
                    "raw records (copies included)": len(raw), "results": len(found), "lost": count - len(distinct),
                    "duplicate results": duplicates(found), "unready during the outage": unready,
                    "broker back -> gateway ready (s)": gateway_ready_s,
                    "broker back -> worker ready (s)": worker_ready_s, "stage restarts": recoveries})
    assert poster.answers[200] == count and poster.answers[503] > 0
    assert len(raw) >= count  # every acknowledged notification is there (retries may add copies)
    assert len(distinct) == count and duplicates(found) == 0
    assert all(unready.values())
    assert gateway_ready_s < 30 and worker_ready_s < 30


async def _is(url: str, status: int) -> bool:
    return await _status(url) == status


async def _worker_ready(worker: Worker) -> bool:
    return await worker.ready_status() == 200
