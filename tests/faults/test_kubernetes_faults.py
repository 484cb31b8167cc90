"""The Kubernetes executor under faults, on the local stack's real API server (kwok runs the pods): a worker
killed mid-way, and the API server unreachable for a while. Nothing may be lost, no invocation may get two
Jobs, and no result may be published twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.launch.job_spec import LABEL_INVOCATION, LABEL_SERVICE
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.stack.stack import Stack
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.faults import Worker, duplicates, until, wait_results
from tests.support.kafka_io import produce_records
from tests.support.kube import NAMESPACE, api, kubeconfig
from tests.support.stack import isolated_config, write_config
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.kubernetes


def _service(name: str, concurrency: int) -> ServiceSpec:
    return ServiceSpec(name=name, image="docker.io/library/alpine:3.22", script="#!/bin/sh\ntrue\n", cpu="100m",
                       memory="64Mi", concurrency=concurrency, ttl_s=600,
                       inputs=(InputSpec("minio.default", f"{name}/in"),))


def _invocations(service: ServiceSpec, count: int) -> list[Invocation]:
    out = []
    for i in range(count):
        key, etag = f"in/{i:05d}.dat", uuid.uuid4().hex
        event = StorageEvent(id=created_object_id("minio.default", "faults", key, None, etag, None), type=CREATED,
                             time="2026-11-30T10:00:00.000Z", storage="minio.default", kind="s3", bucket="faults",
                             key=key, action="s3:ObjectCreated:Put", size=1, etag=etag)
        out.append(Invocation.of(service.name, service.version, event))
    return out


async def _prepare(kube_stack: Stack, tmp_path: Path, service: ServiceSpec, count: int, kube: str
                   ) -> tuple[dict[str, Any], Settings, list[Invocation]]:
    config = isolated_config(kube_stack, tmp_path, worker={"executor": "kubernetes"},
                             kubernetes={"kubeconfig": kube, "helper_image": "oscar-stream:test",
                                         "max_requests_per_second": 200})
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    await apply_topics(settings)
    await apply_services(settings, [service])
    return config, settings, _invocations(service, count)


async def _submit(settings: Settings, invocations: list[Invocation]) -> None:
    topic = TopicNames(settings.kafka.topic_prefix).invocations
    await produce_records(settings, topic, [(i.id.encode(), i.to_json(), []) for i in invocations])


async def _jobs_per_invocation(kube_stack: Stack, service: str) -> Counter[str]:
    async with api(kube_stack) as api_client:
        listing = await client.BatchV1Api(api_client).list_namespaced_job(
            NAMESPACE, label_selector=f"{LABEL_SERVICE}={service}")
    return Counter(job.metadata.labels[LABEL_INVOCATION] for job in listing.items)


async def _jobs_at_least(kube_stack: Stack, service: str, count: int) -> bool:
    return sum((await _jobs_per_invocation(kube_stack, service)).values()) >= count


async def _is_ready(worker: Worker) -> bool:
    return await worker.ready_status() == 200


async def test_a_killed_kubernetes_worker_makes_no_duplicate_job_and_no_duplicate_result(
        kube_stack: Stack, tmp_path: Path, figures: dict[str, Any]) -> None:
    count = 300
    service = _service(f"kill-{uuid.uuid4().hex[:6]}", concurrency=30)
    config, settings, invocations = await _prepare(kube_stack, tmp_path, service, count, kubeconfig(kube_stack))
    worker = Worker(config, tmp_path, "k1", "--roles", "launch", instance_id="faults-k1")
    worker.start()
    try:
        await worker.wait_ready()
        await _submit(settings, invocations)
        await until(lambda: _jobs_at_least(kube_stack, service.name, count // 3), what="a third of the Jobs")
        killed = worker.kill()
        worker.start()
        ready_s = await worker.wait_ready()
        restart_ready_s = time.monotonic() - killed
        found = await wait_results(settings, count, timeout_s=300)
    finally:
        worker.stop()
    jobs = await _jobs_per_invocation(kube_stack, service.name)
    figures.update({"inputs": count, "Jobs": sum(jobs.values()), "duplicate Jobs": sum(n - 1 for n in jobs.values()),
                    "results": len(found), "lost": count - len({r["invocation_id"] for r in found}),
                    "duplicate results": duplicates(found), "restart -> ready (s)": ready_s,
                    "kill -> ready again (s)": restart_ready_s})
    assert set(jobs) == {i.id for i in invocations} and all(n == 1 for n in jobs.values())
    assert {r["invocation_id"] for r in found} == {i.id for i in invocations} and duplicates(found) == 0
    assert ready_s < 15


async def test_invocations_wait_while_the_api_server_is_unreachable_and_resume(
        kube_stack: Stack, tmp_path: Path, figures: dict[str, Any]) -> None:
    """The worker reaches the API server through a proxy the test cuts for 15 s mid-stream (the server itself
    keeps running: to the worker it is a network outage)."""
    count = 200
    service = _service(f"cut-{uuid.uuid4().hex[:6]}", concurrency=20)
    proxy = TcpProxy("127.0.0.1", kube_stack.settings.stack.apiserver_port)
    await proxy.start()
    proxied = tmp_path / "kubeconfig-proxied"
    proxied.write_text(Path(kubeconfig(kube_stack)).read_text().replace(
        f"127.0.0.1:{kube_stack.settings.stack.apiserver_port}", f"127.0.0.1:{proxy.port}"))
    config, settings, invocations = await _prepare(kube_stack, tmp_path, service, count, str(proxied))
    worker = Worker(config, tmp_path, "k1", "--roles", "launch")
    worker.start()
    try:
        await worker.wait_ready()
        await _submit(settings, invocations[: count // 2])
        await until(lambda: _jobs_at_least(kube_stack, service.name, count // 4), what="a quarter of the Jobs")
        await proxy.cut()
        cut = time.monotonic()
        await _submit(settings, invocations[count // 2:])
        unready = False
        while time.monotonic() - cut < 15:
            unready = unready or await worker.ready_status() == 503
            await asyncio.sleep(0.5)
        jobs_during_cut = sum((await _jobs_per_invocation(kube_stack, service.name)).values())
        proxy.restore()
        ready_again_s = await until(lambda: _is_ready(worker), what="ready again")
        found = await wait_results(settings, count, timeout_s=300)
    finally:
        worker.stop()
        await proxy.stop()
    jobs = await _jobs_per_invocation(kube_stack, service.name)
    figures.update({"inputs": count, "Jobs when the cut ended": jobs_during_cut, "Jobs": sum(jobs.values()),
                    "duplicate Jobs": sum(n - 1 for n in jobs.values()), "results": len(found),
                    "lost": count - len({r["invocation_id"] for r in found}), "duplicate results": duplicates(found),
                    "unready during the cut": unready, "API back -> ready (s)": ready_again_s})
    assert unready
    assert set(jobs) == {i.id for i in invocations} and all(n == 1 for n in jobs.values())
    assert {r["invocation_id"] for r in found} == {i.id for i in invocations} and duplicates(found) == 0
    assert ready_again_s < 30
