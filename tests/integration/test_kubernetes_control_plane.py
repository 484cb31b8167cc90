"""The local Kubernetes control plane is real: the API server validates, the Job controller and scheduler work,
kwok moves pods through their lifecycle (and fails the ones labelled to fail), the TTL controller deletes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from oscar_stream.stack.stack import Stack
from tests.support.kube import NAMESPACE, api, job_condition, wait_for

pytestmark = pytest.mark.kubernetes


def _job(name: str, labels: dict[str, str] | None = None, ttl: int | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"test": "control-plane"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": ttl,
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["/bin/sh", "-c", "true"]}],
                },
            },
        },
    }


async def _create(batch: client.BatchV1Api, body: dict[str, Any]) -> Any:
    return await batch.create_namespaced_job(NAMESPACE, body)  # type: ignore[arg-type]  # dicts are accepted


def _name(kind: str) -> str:
    return f"cp-{kind}-{uuid.uuid4().hex[:8]}"


async def test_server_reports_version_and_ready_node(kube_stack: Stack) -> None:
    async with api(kube_stack) as api_client:
        version = await client.VersionApi(api_client).get_code()
        assert version.git_version.startswith("v1.36.")
        nodes = (await client.CoreV1Api(api_client).list_node()).items
        ready = [n.metadata.name for n in nodes
                 if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
        assert "kwok-node-0" in ready


async def test_job_pod_is_scheduled_and_job_completes(kube_stack: Stack) -> None:
    name = _name("ok")
    async with api(kube_stack) as api_client:
        batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
        await _create(batch, _job(name))

        async def completed() -> str | None:
            return job_condition(await batch.read_namespaced_job(name, NAMESPACE))

        assert await wait_for(completed) == "Complete"
        pods = (await core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}")).items
        assert len(pods) == 1
        assert pods[0].spec.node_name == "kwok-node-0"
        assert pods[0].status.phase == "Succeeded"
        await batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")


async def test_pod_labelled_to_fail_fails_the_job(kube_stack: Stack) -> None:
    name = _name("fail")
    async with api(kube_stack) as api_client:
        batch = client.BatchV1Api(api_client)
        await _create(batch, _job(name, labels={"oscar-stream.io/simulate": "fail"}))

        async def finished() -> str | None:
            return job_condition(await batch.read_namespaced_job(name, NAMESPACE))

        assert await wait_for(finished) == "Failed"
        job = await batch.read_namespaced_job(name, NAMESPACE)
        assert job.status.failed == 1
        await batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")


async def test_finished_job_with_ttl_is_deleted(kube_stack: Stack) -> None:
    name = _name("ttl")
    async with api(kube_stack) as api_client:
        batch = client.BatchV1Api(api_client)
        await _create(batch, _job(name, ttl=1))

        async def gone() -> bool:
            try:
                await batch.read_namespaced_job(name, NAMESPACE)
            except ApiException as err:
                return err.status == 404
            return False

        assert await wait_for(gone, timeout_s=60)


async def test_same_job_name_twice_is_409(kube_stack: Stack) -> None:
    name = _name("dup")
    async with api(kube_stack) as api_client:
        batch = client.BatchV1Api(api_client)
        await _create(batch, _job(name))
        with pytest.raises(ApiException) as caught:
            await _create(batch, _job(name))
        assert caught.value.status == 409
        assert "AlreadyExists" in str(caught.value.body)
        await batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")


async def test_invalid_job_is_rejected_with_422_and_a_message(kube_stack: Stack) -> None:
    bad = _job(_name("bad"))
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # not allowed for Jobs
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "-1"}}
    async with api(kube_stack) as api_client:
        with pytest.raises(ApiException) as caught:
            await _create(client.BatchV1Api(api_client), bad)
    assert caught.value.status == 422
    body = str(caught.value.body)
    assert 'spec.template.spec.restartPolicy: Required value: valid values: \\"OnFailure\\", \\"Never\\"' in body
    assert 'resources.requests[cpu]: Invalid value: \\"-1\\": must be greater than or equal to 0' in body
