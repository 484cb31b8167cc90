"""Jobs in real pods: the local stack's real node (kubelet, containerd, runc) runs what the Kubernetes executor
builds — the fetch container, the user's script in an image with only /bin/sh and busybox, the upload
container — from an upload in the store to the result of the second stage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes_asyncio import client

from oscar_stream.config import Settings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.model import InputSpec, OutputSpec, ServiceSpec
from oscar_stream.stack.components.kubernetes import KubernetesControlPlane
from oscar_stream.stack.components.kubernetes_node import NODE_NAME, real_node_kubernetes_config
from oscar_stream.stack.node_images import SHELL_IMAGE
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.kafka_io import read_all
from tests.support.kube import NAMESPACE, api
from tests.support.processes import CliProcess
from tests.support.stack import S3_SOURCE, isolated_config, notifying_store, write_config

pytestmark = pytest.mark.kubernetes
BUCKET = "node"


@pytest.fixture(scope="module")
def node(node_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A store of the test's own (notifying the test's raw topic) and one worker with every role, running its
    jobs on the real node."""
    work = tmp_path_factory.mktemp("real-node")
    port = free_port()
    kubernetes = real_node_kubernetes_config(KubernetesControlPlane().kubeconfig_path(node_stack.ctx))
    config = isolated_config(node_stack, work, worker={"executor": "kubernetes"}, metrics={"port": port},
                             kubernetes=kubernetes)
    asyncio.run(apply_topics(write_config(config, work / "oscar-stream.yaml")))
    with notifying_store(node_stack, TopicNames(config["kafka"]["topic_prefix"]).raw(S3_SOURCE), work) as endpoint:
        config["storages"][0]["endpoint"] = endpoint
        settings = write_config(config, work / "oscar-stream.yaml")
        worker = CliProcess(work / "oscar-stream.yaml", "worker", log=work / "worker.log")
        try:
            worker.wait_http(f"http://127.0.0.1:{port}/readyz")
            yield settings
        finally:
            worker.stop()


@pytest.fixture
async def store(node: Settings) -> AsyncIterator[S3Store]:
    store = S3Store(node.storages[0])
    await store.ensure_bucket(BUCKET)
    yield store
    await store.close()


def _service(name: str, script: str, inputs: str, outputs: str | None = None, **extra: Any) -> ServiceSpec:
    return ServiceSpec(name=name, image=SHELL_IMAGE, script=script, cpu="0.25", memory="96Mi",
                       inputs=(InputSpec(S3_SOURCE, f"{BUCKET}/{inputs}"),),
                       outputs=(OutputSpec(S3_SOURCE, f"{BUCKET}/{outputs}"),) if outputs else (), **extra)


async def _upload(store: S3Store, tmp_path: Path, key: str, body: bytes) -> None:
    path = tmp_path / key.replace("/", "_")
    path.write_bytes(body)
    await store.upload(path, BUCKET, key)


async def _result(settings: Settings, service: str, timeout_s: float = 180) -> dict[str, Any]:
    topic = TopicNames(settings.kafka.topic_prefix).results
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        mine = [r for r in (orjson.loads(x.value) for x in await read_all(settings, topic)) if r["service"] == service]
        if mine:
            assert len(mine) == 1, mine
            result: dict[str, Any] = mine[0]
            return result
        await asyncio.sleep(1)
    raise AssertionError(f"no result for {service} in {timeout_s:.0f}s")


async def _pod(stack: Stack, job: str) -> Any:
    async with api(stack) as api_client:
        pods = await client.CoreV1Api(api_client).list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job}")
        [pod] = pods.items
        return pod


async def _read(store: S3Store, tmp_path: Path, key: str) -> bytes:
    target = tmp_path / f"download-{uuid.uuid4().hex}"
    await store.download(BUCKET, key, target)
    return target.read_bytes()


SHOUT = """#!/bin/sh
set -eu
name=$(basename "$INPUT_FILE_PATH" .txt)
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.up"
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
printf 'greeting=%s\\ntoken=%s\\nmemory=%s\\n' "$GREETING" "$API_TOKEN" "$limit" > "$TMP_OUTPUT_DIR/$name.env"
echo "shouted $STORAGE_OBJECT_KEY"
"""
COUNT = """#!/bin/sh
set -eu
wc -c < "$INPUT_FILE_PATH" | tr -d ' ' > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH" .up).count"
"""


async def test_an_upload_runs_two_stages_in_real_pods(node_stack: Stack, node: Settings, store: S3Store,
                                                     tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    shout = _service(f"shout-{run}", SHOUT, f"{run}/in", f"{run}/mid", variables={"GREETING": "hello"},
                     secrets={"API_TOKEN": "s3cr3t-value"})
    count = _service(f"count-{run}", COUNT, f"{run}/mid", f"{run}/out")
    count = replace(count, inputs=(InputSpec(S3_SOURCE, f"{BUCKET}/{run}/mid", suffixes=(".up",)),))
    await apply_services(node, [shout, count])
    await _upload(store, tmp_path, f"{run}/in/words.txt", b"real pods at last\n")

    first = await _result(node, shout.name)
    assert first["status"] == "succeeded", first
    assert sorted(o["key"] for o in first["outputs"]) == [f"{run}/mid/words.env", f"{run}/mid/words.up"]
    second = await _result(node, count.name)
    assert second["status"] == "succeeded", second
    assert [o["key"] for o in second["outputs"]] == [f"{run}/out/words.count"]

    assert await _read(store, tmp_path, f"{run}/mid/words.up") == b"REAL PODS AT LAST\n"
    assert await _read(store, tmp_path, f"{run}/out/words.count") == b"18\n"
    env = dict(line.split("=", 1) for line in (await _read(store, tmp_path, f"{run}/mid/words.env")).decode().split())
    # the variable and the secret reach the script, and the memory limit is the container's cgroup limit
    assert env == {"greeting": "hello", "token": "s3cr3t-value", "memory": str(96 * 1024 * 1024)}

    pod = await _pod(node_stack, first["job"])
    assert pod.spec.node_name == NODE_NAME and pod.spec.host_network is True
    finished = {s.name: s.state.terminated.exit_code for s in [*pod.status.init_container_statuses,
                                                                *pod.status.container_statuses]}
    assert finished == {"fetch": 0, "script": 0, "upload": 0}


async def test_a_failing_script_gives_a_failed_result_with_its_exit_code_and_log(
        node: Settings, store: S3Store, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    service = _service(f"fails-{run}", '#!/bin/sh\necho "cannot read $STORAGE_OBJECT_KEY" >&2\nexit 3\n',
                       f"{run}/in", retries=0)
    await apply_services(node, [service])
    await _upload(store, tmp_path, f"{run}/in/x.txt", b"x")
    result = await _result(node, service.name)
    assert result["status"] == "failed" and result["outputs"] == []
    assert "container script exited with code 3" in result["reason"], result["reason"]
    assert f"cannot read {run}/in/x.txt" in result["reason"]


async def test_a_script_over_its_deadline_is_stopped_and_fails(node: Settings, store: S3Store,
                                                              tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    service = _service(f"slow-{run}", "#!/bin/sh\nsleep 300\n", f"{run}/in", timeout_s=8, retries=0)
    await apply_services(node, [service])
    started = asyncio.get_running_loop().time()
    await _upload(store, tmp_path, f"{run}/in/x.txt", b"x")
    result = await _result(node, service.name)
    assert result["status"] == "failed" and result["reason"].startswith("DeadlineExceeded"), result
    assert asyncio.get_running_loop().time() - started < 120  # stopped by its deadline, not by the sleep


async def test_outputs_beyond_the_termination_message_size_are_all_reported(
        node: Settings, store: S3Store, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    many = ('#!/bin/sh\nset -eu\ni=0\nwhile [ $i -lt 120 ]; do\n'
            '  echo "$i" > "$TMP_OUTPUT_DIR/a-rather-long-output-file-name-to-fill-the-report-$i.txt"\n'
            '  i=$((i + 1))\ndone\n')
    service = _service(f"many-{run}", many, f"{run}/in", f"{run}/out")
    await apply_services(node, [service])
    await _upload(store, tmp_path, f"{run}/in/x.txt", b"x")
    result = await _result(node, service.name)
    assert result["status"] == "succeeded", result
    assert len(orjson.dumps(result["outputs"])) > 4096  # more than Kubernetes keeps of a termination message
    keys = {o["key"] for o in result["outputs"]}
    assert keys == {f"{run}/out/a-rather-long-output-file-name-to-fill-the-report-{i}.txt" for i in range(120)}
