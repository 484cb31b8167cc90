"""The Kubernetes executor removes its per-version ConfigMaps and Secrets once no current service version and
no Job still to report needs them — on the real API server, as the ServiceAccount of our manifests with their
Role — and never touches objects it does not own. A Job whose result is published is labelled reported and
leaves the executor's watch."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client.exceptions import ApiException

from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.executors.base import Limiter
from oscar_stream.executors.kubernetes import KubernetesExecutor, storage_secret
from oscar_stream.launch import job_spec
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.stack.stack import Stack
from tests.support.kube import NAMESPACE, api, launcher_kubeconfig, wait_for
from tests.support.stack import isolated_config, write_config

pytestmark = pytest.mark.kubernetes


def _event(key: str) -> StorageEvent:
    etag = uuid.uuid4().hex
    return StorageEvent(id=created_object_id("minio.default", "b", key, None, etag, None), type=CREATED,
                        time="2026-01-01T00:00:00.000Z", storage="minio.default", kind="s3", bucket="b", key=key,
                        action="s3:ObjectCreated:Put", size=1, etag=etag)


async def _names(core: client.CoreV1Api, selector: str) -> set[str]:
    config_maps = await core.list_namespaced_config_map(NAMESPACE, label_selector=selector)
    secrets = await core.list_namespaced_secret(NAMESPACE, label_selector=selector)
    return {item.metadata.name for item in config_maps.items} | {item.metadata.name for item in secrets.items}


async def _foreign_config_map(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    with contextlib.suppress(ApiException):
        await core.delete_namespaced_config_map(name, NAMESPACE)
    await core.create_namespaced_config_map(
        NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels)))


def _executor_settings(kube_stack: Stack, tmp_path: Path, **kubernetes: Any) -> Settings:
    as_launcher = launcher_kubeconfig(kube_stack, tmp_path / "launcher.kubeconfig")
    config = isolated_config(kube_stack, tmp_path, worker={"executor": "kubernetes"},
                             kubernetes={"kubeconfig": str(as_launcher), "helper_image": "oscar-stream:test",
                                         "cleanup_interval_s": 0.3, "cleanup_grace_s": 0, **kubernetes})
    return write_config(config, tmp_path / "oscar-stream.yaml")


def _versions(name: str) -> tuple[ServiceSpec, ServiceSpec]:
    def version(n: int) -> ServiceSpec:
        return ServiceSpec(name=name, image="alpine:3.22", script=f"echo {n}", secrets={"TOKEN": f"t{n}"},
                           inputs=(InputSpec("minio.default", "b/in"),))
    return version(1), version(2)


async def test_old_versions_objects_go_once_no_job_uses_them(kube_stack: Stack, tmp_path: Path) -> None:
    # No node has this label: the Jobs stay pending, as Jobs that have not run yet do.
    settings = _executor_settings(kube_stack, tmp_path, node_selector={"oscar-stream.io/test-nowhere": "yes"})
    as_launcher = tmp_path / "launcher.kubeconfig"
    name = f"gc-{uuid.uuid4().hex[:6]}"
    v1, v2 = _versions(name)
    current = [v1]

    async def sink(result: Result) -> None:
        return None

    configuration = client.Configuration()
    await kube_config.load_kube_config(config_file=str(as_launcher), client_configuration=configuration)
    async with client.ApiClient(configuration) as restricted:  # it really is the ServiceAccount
        with pytest.raises(ApiException) as refused:
            await client.CoreV1Api(restricted).list_namespaced_config_map("kube-system")
        assert refused.value.status == 403

    limiter = Limiter(lambda service: 5)
    executor = KubernetesExecutor(sink, limiter, settings)
    await executor.start()
    maintaining = asyncio.ensure_future(executor.maintain(lambda: current))
    mine = job_spec.selector(executor.deployment)
    async with api(kube_stack) as api_client:
        core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
        await _foreign_config_map(core, f"{name}-unmanaged", {"app": "something-else"})
        await _foreign_config_map(core, f"{name}-other-deployment",
                                  job_spec.owned_labels("another-deployment", name))
        try:
            first = Invocation.of(v1.name, v1.version, _event("in/1.dat"))
            await executor.launch(first, v1, await limiter.acquire(name))
            old = job_spec.current_objects(v1, executor.deployment)
            storage = storage_secret(settings, NAMESPACE, executor.deployment)["metadata"]["name"]
            assert old | {storage} <= await _names(core, mine)

            current[:] = [v2]  # the service was changed: v1's objects are still used by v1's Job
            second = Invocation.of(v2.name, v2.version, _event("in/2.dat"))
            await executor.launch(second, v2, await limiter.acquire(name))
            await asyncio.sleep(2)  # several sweeps
            assert old | job_spec.current_objects(v2, executor.deployment) | {storage} <= await _names(core, mine)

            await batch.delete_namespaced_job(job_spec.job_name(first), NAMESPACE, propagation_policy="Background")

            async def old_gone() -> bool:
                return not old & await _names(core, mine)
            await wait_for(old_gone, timeout_s=30)
            assert job_spec.current_objects(v2, executor.deployment) | {storage} <= await _names(core, mine)
            others = await core.list_namespaced_config_map(NAMESPACE, field_selector=f"metadata.name={name}-unmanaged")
            assert len(others.items) == 1
            assert f"{name}-other-deployment" in await _names(core, job_spec.selector("another-deployment"))
        finally:
            maintaining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintaining
            await executor.stop()
            for leftover in (f"{name}-unmanaged", f"{name}-other-deployment"):
                with contextlib.suppress(ApiException):
                    await core.delete_namespaced_config_map(leftover, NAMESPACE)
            await batch.delete_collection_namespaced_job(NAMESPACE, label_selector=mine,
                                                         propagation_policy="Background")


async def test_a_reported_job_leaves_the_watch_and_frees_its_versions_objects(kube_stack: Stack,
                                                                               tmp_path: Path) -> None:
    settings = _executor_settings(kube_stack, tmp_path)
    name = f"rep-{uuid.uuid4().hex[:6]}"
    v1, v2 = _versions(name)
    current = [v1]
    results: list[Result] = []

    async def sink(result: Result) -> None:
        results.append(result)

    limiter = Limiter(lambda service: 5)
    executor = KubernetesExecutor(sink, limiter, settings)
    await executor.start()
    maintaining = asyncio.ensure_future(executor.maintain(lambda: current))
    mine = job_spec.selector(executor.deployment)
    invocation = Invocation.of(v1.name, v1.version, _event("in/1.dat"))
    job = job_spec.job_name(invocation)
    async with api(kube_stack) as api_client:
        core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
        try:
            await executor.launch(invocation, v1, await limiter.acquire(name))
            current[:] = [v2]
            await wait_for(lambda: _true(bool(results)), timeout_s=60)  # kwok's node runs it to its end
            assert [r.invocation_id for r in results] == [invocation.id] and results[0].status == "succeeded"

            async def reported() -> bool:
                labels = (await batch.read_namespaced_job(job, NAMESPACE)).metadata.labels or {}
                return labels.get(job_spec.LABEL_REPORTED) == "true" and job not in executor._jobs
            await wait_for(reported, timeout_s=30)

            async def old_gone() -> bool:  # the Job still exists, but nothing of it can run again
                return not job_spec.current_objects(v1, executor.deployment) & await _names(core, mine)
            await wait_for(old_gone, timeout_s=30)

            maintaining.cancel()
            await executor.stop()  # a fresh listing (a new worker) neither sees nor publishes it again
            executor = KubernetesExecutor(sink, limiter, settings)
            await executor.start()
            await asyncio.sleep(1)
            assert job not in executor._jobs and len(results) == 1
        finally:
            maintaining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintaining
            await executor.stop()
            await batch.delete_collection_namespaced_job(NAMESPACE, label_selector=mine,
                                                         propagation_policy="Background")


async def _true(value: bool) -> bool:
    return value
