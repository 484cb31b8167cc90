"""Warm services on Kubernetes: the Deployment and Service of a warm service on the local API server (created,
replaced on a new version keeping the replica count, deleted with the service), then the same service's pods on
the real node answering ``POST /run`` through the gateway and taking storage events."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from kubernetes_asyncio import client

from oscar_stream.config import Settings
from oscar_stream.health import Component
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.launch.warm_objects import warm_name
from oscar_stream.route.model import ExposeSpec, ServiceSpec, WarmSpec
from oscar_stream.stack.components.kubernetes import KubernetesControlPlane
from oscar_stream.stack.components.kubernetes_node import real_node_kubernetes_config
from oscar_stream.stack.node_images import SHELL_IMAGE
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.warm.kubernetes import KubernetesWarm
from tests.integration.test_oscar_api import Gateway
from tests.support.faults import Worker
from tests.support.kafka_io import read_all
from tests.support.kube import NAMESPACE, api, launcher_kubeconfig
from tests.support.stack import S3_SOURCE, isolated_config, notifying_store, write_config

pytestmark = pytest.mark.kubernetes
USER, PASSWORD = "oscar", "warm-k8s-password"


def _spec(name: str, script: str = "echo hi\n", **warm: Any) -> ServiceSpec:
    return ServiceSpec(name=name, image=SHELL_IMAGE, script=script, cpu="0.1", memory="64Mi",
                       variables={"GREETING": "hello"}, secrets={"KEY": "s3cret"},
                       warm=WarmSpec(**{"min_replicas": 1, "max_replicas": 3, **warm}))


def test_the_objects_follow_the_service(kube_stack: Stack, tmp_path: Path) -> None:
    # with the ServiceAccount of the shipped manifests: their Role must allow what warm services need
    config = isolated_config(kube_stack, tmp_path, worker={"executor": "kubernetes"},
                             kubernetes={"kubeconfig": str(launcher_kubeconfig(kube_stack, tmp_path / "kubeconfig"))})
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    name = f"warm-{uuid.uuid4().hex[:6]}"

    async def scenario() -> None:
        warm = KubernetesWarm(settings, Component("warm"))
        await warm._connect()  # what keep() does first; the reconciliation steps are called one by one below
        try:
            first = _spec(name, idle_s=600.0)
            await warm._reconcile({name: first})  # written and accepted by the API server's validation
            async with api(kube_stack) as api_client:
                apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
                made = await apps.read_namespaced_deployment(warm_name(name), NAMESPACE)
                pod = made.spec.template.spec
                assert [c.name for c in pod.containers] == ["runner", "dispatcher"]
                runner = pod.containers[0]
                assert runner.image == SHELL_IMAGE and runner.command[:2] == ["/bin/sh", "-c"]
                assert pod.containers[0].env_from[0].secret_ref.name.startswith(f"oscar-secrets-{name}-")
                assert made.spec.replicas == 1
                service = await core.read_namespaced_service(warm_name(name), NAMESPACE)
                assert service.spec.selector == made.spec.selector.match_labels

                await warm._set_replicas(first, 2)  # the work asked for two
                second = replace(first, script="echo changed\n")
                await warm._reconcile({name: second})
                updated = await apps.read_namespaced_deployment(warm_name(name), NAMESPACE)
                assert updated.metadata.annotations["oscar-stream.io/service-version"] == second.version
                assert updated.spec.replicas == 2  # a new version keeps the replicas the work needs
                assert updated.spec.template.spec.volumes[2].config_map.name != \
                    pod.volumes[2].config_map.name  # the new script

                idle = replace(second, warm=replace(second.warm, idle_s=0.0))  # type: ignore[type-var]
                await warm._reconcile({name: idle})  # no work for idle_s: down to min_replicas
                scaled = await apps.read_namespaced_deployment(warm_name(name), NAMESPACE)
                assert scaled.spec.replicas == 1

                await warm._reconcile({})  # the service is gone
                selector = f"oscar-stream.io/service={name}"
                deployments = await apps.list_namespaced_deployment(NAMESPACE, label_selector=selector)
                services = await core.list_namespaced_service(NAMESPACE, label_selector=selector)
                assert deployments.items == [] and services.items == []
        finally:
            await warm._delete_unwanted({}, {})  # nothing of the test's deployment stays behind, even on a failure
            await warm.close()

    asyncio.run(scenario())


def test_an_exposed_service_gets_its_server_service_and_autoscaler(kube_stack: Stack, tmp_path: Path) -> None:
    config = isolated_config(kube_stack, tmp_path, worker={"executor": "kubernetes"},
                             kubernetes={"kubeconfig": str(launcher_kubeconfig(kube_stack, tmp_path / "kubeconfig"))})
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    name = f"exp-{uuid.uuid4().hex[:6]}"
    spec = replace(_spec(name), warm=None, expose=ExposeSpec(api_port=8501, min_replicas=1, max_replicas=4,
                                                             cpu_threshold=70))

    async def scenario() -> None:
        warm = KubernetesWarm(settings, Component("warm"))
        await warm._connect()
        try:
            await warm._reconcile({name: spec})
            assert warm.exposed_url(spec) == f"http://oscar-exposed-{name}.{NAMESPACE}.svc:8501"
            async with api(kube_stack) as api_client:
                apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
                autoscaling = client.AutoscalingV2Api(api_client)
                made = await apps.read_namespaced_deployment(f"oscar-exposed-{name}", NAMESPACE)
                [server] = made.spec.template.spec.containers
                assert server.command == ["/bin/sh", "/oscar/script/script.sh"]
                assert server.ports[0].container_port == 8501
                assert {e.name: e.value for e in server.env}["PORT"] == "8501"
                service = await core.read_namespaced_service(f"oscar-exposed-{name}", NAMESPACE)
                assert service.spec.ports[0].port == 8501
                hpa = await autoscaling.read_namespaced_horizontal_pod_autoscaler(f"oscar-exposed-{name}", NAMESPACE)
                assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
                assert hpa.spec.metrics[0].resource.target.average_utilization == 70

                await warm._reconcile({})
                selector = f"oscar-stream.io/service={name}"
                assert (await apps.list_namespaced_deployment(NAMESPACE, label_selector=selector)).items == []
                assert (await autoscaling.list_namespaced_horizontal_pod_autoscaler(
                    NAMESPACE, label_selector=selector)).items == []
        finally:
            await warm._delete_unwanted({}, {})
            await warm.close()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def node_deployment(node_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings,
                                                                                                  Worker]]:
    work = tmp_path_factory.mktemp("warm-node")
    kubernetes = real_node_kubernetes_config(KubernetesControlPlane().kubeconfig_path(node_stack.ctx))
    config = isolated_config(node_stack, work, worker={"executor": "kubernetes"}, kubernetes=kubernetes,
                             api={"username": USER, "password": PASSWORD, "token_secret": "warm-k8s-secret"})
    asyncio.run(apply_topics(write_config(config, work / "oscar-stream.yaml")))
    with notifying_store(node_stack, TopicNames(config["kafka"]["topic_prefix"]).raw(S3_SOURCE), work) as endpoint:
        config["storages"][0]["endpoint"] = endpoint
        settings = write_config(config, work / "oscar-stream.yaml")
        worker = Worker(config, work, "worker")
        gateway = Gateway(config, work, "gateway")
        try:
            worker.start()
            gateway.start()
            asyncio.run(worker.wait_ready(120))
            yield gateway.url, settings, worker
        finally:
            gateway.stop()
            worker.stop()


STATEFUL = """#!/bin/sh
echo x >> "$HOME/requests"
printf '%s %s %s\\n' "$GREETING" "$(wc -l < "$HOME/requests" | tr -d ' ')" "$(tr a-z A-Z < "$INPUT_FILE_PATH")" \
  > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"
"""


def test_real_warm_pods_answer_run_and_take_events(node_deployment: tuple[str, Settings, Worker],
                                                   tmp_path: Path) -> None:
    url, settings, worker = node_deployment
    name = f"wpod-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "image": SHELL_IMAGE, "script": STATEFUL, "cpu": "0.1", "memory": "64Mi",
            "environment": {"variables": {"GREETING": "hello"}},
            "warm": {"min_replicas": 0, "max_replicas": 1, "idle_seconds": 600},
            "input": [{"storage_provider": "minio", "path": f"{name}/in"}],
            "output": [{"storage_provider": "minio", "path": f"{name}/out"}]}
    made = requests.post(f"{url}/system/services", data=orjson.dumps(spec), auth=(USER, PASSWORD), timeout=30)
    assert made.status_code == 201, made.text
    token = requests.get(f"{url}/system/services/{name}", auth=(USER, PASSWORD), timeout=30).json()["token"]
    answers = [requests.post(f"{url}/run/{name}", data=base64.b64encode(f"call {i}".encode()), timeout=240,
                             headers={"Authorization": f"Bearer {token}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:300] for a in answers]
    # one replica (a real pod, started from zero by the first call) kept its state between the calls
    assert [base64.b64decode(a.text) for a in answers] == [f"hello {i + 1} CALL {i}\n".encode() for i in range(3)]
    assert asyncio.run(worker.metric("oscar_stream_warm_replicas", service=name)) == 1

    async def event() -> dict[str, Any]:
        store = S3Store(settings.storages[0])
        try:
            source = tmp_path / "frame.txt"
            source.write_text("an event")
            await store.upload(source, name, "in/frame.txt")
            topic = TopicNames(settings.kafka.topic_prefix).results
            for _ in range(120):
                mine = [orjson.loads(r.value) for r in await read_all(settings, topic)
                        if orjson.loads(r.value)["service"] == name]
                if mine:
                    target = tmp_path / "out"
                    await store.download(name, "out/frame.txt.out", target)
                    return {**mine[0], "output": target.read_text()}
                await asyncio.sleep(1)
            raise AssertionError("no result for the event")
        finally:
            await store.close()

    result = asyncio.run(event())
    assert (result["executor"], result["status"]) == ("warm", "succeeded"), result
    assert result["output"] == "hello 4 AN EVENT\n"  # the same warm pod, its fourth request
