"""OSCAR's API with the Kubernetes executor on the local API server (kwok runs the pods): a job posted to
/job/<svc> becomes a batch/v1 Job named <svc>-..., is listed with its status and times, and its log (here: why
kwok's pods have none) is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from tests.support.faults import Worker
from tests.support.kube import NAMESPACE, kubeconfig, kubectl
from tests.support.processes import CliProcess
from tests.support.stack import isolated_config, write_config

pytestmark = pytest.mark.kubernetes
AUTH = ("oscar", "k8s-api-password")


@pytest.fixture(scope="module")
def gateway(kube_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work: Path = tmp_path_factory.mktemp("api-k8s")
    port = free_port()
    config = isolated_config(kube_stack, work, gateway={"port": port}, worker={"executor": "kubernetes"},
                             api={"username": AUTH[0], "password": AUTH[1], "token_secret": "k8s-api-secret"},
                             kubernetes={"kubeconfig": kubeconfig(kube_stack), "helper_image": "oscar-stream:test"})
    asyncio.run(apply_topics(write_config(config, work / "oscar-stream.yaml")))
    process = CliProcess(work / "oscar-stream.yaml", "gateway", log=work / "gateway.log")
    worker = Worker(config, work, "worker", "--roles", "launch")
    worker.start()
    try:
        process.wait_http(f"http://127.0.0.1:{port}/readyz")
        asyncio.run(worker.wait_ready())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        worker.stop()


def test_a_job_posted_to_the_api_runs_as_a_kubernetes_job_and_is_listed(kube_stack: Stack, gateway: str) -> None:
    spec = {"name": "k8s-api", "image": "docker.io/library/alpine:3.22", "script": "echo hi", "cpu": "100m",
            "memory": "64Mi"}
    assert requests.post(f"{gateway}/system/services", data=orjson.dumps(spec), auth=AUTH, timeout=10).status_code \
        == 201
    token = requests.get(f"{gateway}/system/services/k8s-api", auth=AUTH, timeout=10).json()["token"]
    posted = requests.post(f"{gateway}/job/k8s-api", data=b"aGVsbG8=", timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert posted.status_code == 201
    job = posted.headers["X-Oscar-Stream-Job"]
    assert job.startswith("k8s-api-")
    deadline = time.monotonic() + 90
    while True:
        info = requests.get(f"{gateway}/system/logs/k8s-api", auth=AUTH, timeout=10).json()["jobs"].get(job)
        if (info and info["status"] == "Succeeded") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert info is not None and info["status"] == "Succeeded"
    assert info["creation_time"] <= info["start_time"] <= info["finish_time"]
    found = kubectl(kube_stack, "get", "job", job, "-n", NAMESPACE, "-o", "jsonpath={.metadata.name}")
    assert found.returncode == 0 and found.stdout == job  # the Job's name is the API's job name
    log = requests.get(f"{gateway}/system/logs/k8s-api/{job}", auth=AUTH, timeout=10)
    assert log.status_code == 200 and "Kubernetes could not give the pod's log" in log.text  # kwok runs nothing
    assert requests.delete(f"{gateway}/system/logs/k8s-api/{job}", auth=AUTH, timeout=10).status_code == 204
