"""The launch agent with the Kubernetes executor against the real API server of the local stack (kwok runs the
pods): server-side validation accepts our Jobs, they complete and results are published; failures, redelivery,
the concurrency limit and refused specs behave."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from kubernetes_asyncio import client, watch

from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.launch.job_spec import LABEL_INVOCATION, LABEL_SERVICE, job_name
from oscar_stream.route.model import InputSpec, OutputSpec, ServiceSpec
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.kafka_io import produce, read_all
from tests.support.kube import NAMESPACE, api, job_condition, kubeconfig
from tests.support.processes import CliProcess
from tests.support.stack import isolated_config, write_config

pytestmark = pytest.mark.kubernetes


@pytest.fixture(scope="module")
def launcher(kube_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One worker (launch role, Kubernetes executor) shared by the tests of this module."""
    work = tmp_path_factory.mktemp("launcher")
    port = free_port()
    config = isolated_config(kube_stack, work, worker={"executor": "kubernetes"}, metrics={"port": port},
                         kubernetes={"kubeconfig": kubeconfig(kube_stack), "helper_image": "oscar-stream:test"})
    settings = write_config(config, work / "oscar-stream.yaml")
    asyncio.run(apply_topics(settings))
    process = CliProcess(work / "oscar-stream.yaml", "worker", "--roles", "launch", log=work / "worker.log")
    process.wait_http(f"http://127.0.0.1:{port}/readyz")
    yield settings
    process.stop()


def _service(name: str, **extra: Any) -> ServiceSpec:
    fields: dict[str, Any] = {
        "image": "docker.io/library/alpine:3.22",
        "script": "#!/bin/sh\ncp \"$INPUT_FILE_PATH\" \"$TMP_OUTPUT_DIR/\"\n",
        "cpu": "250m", "memory": "128Mi",
        "inputs": (InputSpec("minio.default", f"{name}/in"),),
        "outputs": (OutputSpec("minio.default", f"{name}/out"),),
        **extra,
    }
    return ServiceSpec(name=name, **fields)


def _event(key: str) -> StorageEvent:
    etag = uuid.uuid4().hex
    return StorageEvent(id=created_object_id("minio.default", "bucket", key, None, etag, None), type=CREATED,
                        time="2026-01-01T00:00:00.000Z", storage="minio.default", kind="s3", bucket="bucket",
                        key=key, action="s3:ObjectCreated:Put", size=10, etag=etag,
                        received_at="2026-01-01T00:00:01.000Z")


async def _submit(settings: Settings, service: ServiceSpec, invocations: list[Invocation]) -> None:
    await produce(settings, TopicNames(settings.kafka.topic_prefix).invocations, [i.to_json() for i in invocations],
                  key=service.name.encode())


async def _results(settings: Settings, service: str, count: int, exactly: bool = False) -> list[dict[str, Any]]:
    """This service's results (the module's tests share one results topic)."""
    topic = TopicNames(settings.kafka.topic_prefix).results
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        mine = [r for r in (orjson.loads(x.value) for x in await read_all(settings, topic)) if r["service"] == service]
        if len(mine) >= count or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    if exactly:
        await asyncio.sleep(3)  # anything extra (a second result) would arrive meanwhile
        mine = [r for r in (orjson.loads(x.value) for x in await read_all(settings, topic)) if r["service"] == service]
    return mine


def _name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def batch(kube_stack: Stack) -> AsyncIterator[client.BatchV1Api]:
    async with api(kube_stack) as api_client:
        yield client.BatchV1Api(api_client)


async def test_job_is_accepted_completes_and_its_result_is_published(
        launcher: Settings, kube_stack: Stack, batch: client.BatchV1Api) -> None:
    service = _service(_name("ok"), gpus=1, variables={"THRESHOLD": "5"}, secrets={"TOKEN": "s3cr3t"},
                       retries=2, timeout_s=600, ttl_s=3600)
    await apply_services(launcher, [service])
    invocation = Invocation.of(service.name, service.version, _event(f"{service.name}/in/a b.fits"))
    await _submit(launcher, service, [invocation])
    [result] = await _results(launcher, service.name, 1)
    assert result["status"] == "succeeded" and result["executor"] == "kubernetes"
    assert result["invocation_id"] == invocation.id and result["job"] == job_name(invocation)
    assert result["event_id"] == invocation.event.id and result["started_at"] and result["finished_at"]
    job = await batch.read_namespaced_job(job_name(invocation), NAMESPACE)
    assert job_condition(job) == "Complete"
    assert job.metadata.labels[LABEL_SERVICE] == service.name
    assert job.metadata.labels[LABEL_INVOCATION] == invocation.id
    assert job.spec.backoff_limit == 2 and job.spec.active_deadline_seconds == 600
    assert job.spec.ttl_seconds_after_finished == 3600
    pod = job.spec.template.spec
    assert [c.name for c in pod.init_containers] == ["fetch", "script"]
    assert [c.name for c in pod.containers] == ["upload"]
    script = pod.init_containers[1]
    assert script.image == service.image and script.command == ["/bin/sh", "/oscar/script/script.sh"]
    assert script.resources.limits == {"cpu": "250m", "memory": "128Mi", "nvidia.com/gpu": "1"}
    env = {e.name: e.value for e in script.env}
    assert env["INPUT_FILE_PATH"] == "/oscar/input/a b.fits" and env["TMP_OUTPUT_DIR"] == "/oscar/output"
    assert env["STORAGE_OBJECT_KEY"] == f"{service.name}/in/a b.fits" and env["THRESHOLD"] == "5"
    assert orjson.loads(env["EVENT"])["Records"][0]["s3"]["object"]["key"] == f"{service.name}%2Fin%2Fa+b.fits"
    assert "s3cr3t" not in str(job.to_dict())  # the secret reaches the pod through a Secret
    secret_name = script.env_from[0].secret_ref.name
    async with api(kube_stack) as api_client:
        secret = await client.CoreV1Api(api_client).read_namespaced_secret(secret_name, NAMESPACE)
        assert set(secret.data) == {"TOKEN"}
        script_map = await client.CoreV1Api(api_client).read_namespaced_config_map(
            pod.volumes[2].config_map.name, NAMESPACE)
        assert script_map.data["script.sh"] == service.script


async def test_failing_pod_gives_a_failed_result(launcher: Settings) -> None:
    service = _service(_name("fail"), labels={"oscar-stream.io/simulate": "fail"})
    await apply_services(launcher, [service])
    invocation = Invocation.of(service.name, service.version, _event(f"{service.name}/in/x.dat"))
    await _submit(launcher, service, [invocation])
    [result] = await _results(launcher, service.name, 1)
    assert result["status"] == "failed"
    assert "BackoffLimitExceeded" in result["reason"]
    assert result["outputs"] == []


async def test_redelivered_invocation_creates_no_second_job(launcher: Settings, batch: client.BatchV1Api) -> None:
    service = _service(_name("dup"))
    await apply_services(launcher, [service])
    invocation = Invocation.of(service.name, service.version, _event(f"{service.name}/in/once.dat"))
    await _submit(launcher, service, [invocation, invocation])
    await _results(launcher, service.name, 1)
    await _submit(launcher, service, [invocation])  # again, after the Job finished
    results = await _results(launcher, service.name, 1, exactly=True)
    assert len(results) == 1
    jobs = await batch.list_namespaced_job(NAMESPACE, label_selector=f"{LABEL_INVOCATION}={invocation.id}")
    assert len(jobs.items) == 1


async def test_two_hundred_invocations_never_exceed_the_limit_of_five(
        launcher: Settings, batch: client.BatchV1Api) -> None:
    service = _service(_name("limit"), concurrency=5, ttl_s=5)
    await apply_services(launcher, [service])
    active: set[str] = set()
    peak = 0
    seen_finished: set[str] = set()

    async def observe() -> None:
        nonlocal peak
        stream = watch.Watch()
        async for change in stream.stream(batch.list_namespaced_job, NAMESPACE,
                                          label_selector=f"{LABEL_SERVICE}={service.name}"):
            job = change["object"]
            name = job.metadata.name
            if change["type"] == "DELETED" or job_condition(job):
                active.discard(name)
                seen_finished.add(name)
            else:
                active.add(name)
                peak = max(peak, len(active))

    watcher = asyncio.ensure_future(observe())
    try:
        invocations = [Invocation.of(service.name, service.version, _event(f"{service.name}/in/{i:03d}.dat"))
                       for i in range(200)]
        await _submit(launcher, service, invocations)
        results = await _results(launcher, service.name, 200)
        assert len({r["invocation_id"] for r in results}) == 200
        assert all(r["status"] == "succeeded" for r in results)
    finally:
        watcher.cancel()
    assert len(seen_finished) == 200
    assert 1 <= peak <= 5


async def test_spec_refused_by_the_server_gives_a_failed_result_with_its_message(launcher: Settings) -> None:
    service = _service(_name("bad"), labels={"not a valid label key!": "x"})
    await apply_services(launcher, [service])
    invocation = Invocation.of(service.name, service.version, _event(f"{service.name}/in/x.dat"))
    await _submit(launcher, service, [invocation])
    [result] = await _results(launcher, service.name, 1)
    assert result["status"] == "failed"
    assert result["reason"].startswith("Kubernetes refused the Job: 422 Invalid")
    assert "not a valid label key!" in result["reason"]

