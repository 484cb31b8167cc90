"""OSCAR's Manager API on the gateway, driven by OSCAR's own Python client (oscar_python from PyPI) against the
real servers: a gateway and a worker (local executor), Kafka, and an S3 server of the test's own whose
notifications reach the test's deployment. Shapes and status codes oscar_python does not look at are checked
with plain HTTP."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from oscar_python.client import Client

from oscar_stream.config import Settings
from oscar_stream.core.jobs import JobRecord
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.topics import TopicNames
from tests.support.faults import Worker
from tests.support.kafka_io import produce_records
from tests.support.processes import CliProcess
from tests.support.stack import isolated_config, notifying_store, write_config

pytestmark = pytest.mark.stack

CLUSTER = "api-test"
USER, PASSWORD = "oscar", "api-test-password"
FDL = """\
functions:
  oscar:
  - {cluster}:
      name: {name}
      image: ghcr.io/grycap/cowsay
      cpu: '0.5'
      memory: 256Mi
      script: script.sh
      log_level: CRITICAL
      environment:
        variables:
          GREETING: {greeting}
      input:
      - storage_provider: minio.default
        path: {name}/in
      output:
      - storage_provider: minio.default
        path: {name}/out
"""
SCRIPT = """#!/bin/sh
echo "$GREETING from $(basename "$INPUT_FILE_PATH"): $(cat "$INPUT_FILE_PATH")"
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"
"""


class Deployment:
    """Two gateway replicas (``url`` and ``replica_url``) and two workers in one group, as a user scales out."""

    def __init__(self, url: str, replica: Gateway, settings: Settings, work: Path) -> None:
        self.url, self.replica, self.settings, self.work = url, replica, settings, work
        self.auth = (USER, PASSWORD)

    @property
    def replica_url(self) -> str:
        return self.replica.url

    def client(self, url: str | None = None) -> Client:
        return Client({"cluster_id": CLUSTER, "endpoint": url or self.url, "user": USER, "password": PASSWORD,
                       "ssl": False})

    def fdl(self, name: str, greeting: str = "Hello") -> Path:
        folder = self.work / name
        folder.mkdir(exist_ok=True)
        (folder / "script.sh").write_text(SCRIPT)
        path = folder / "fdl.yaml"
        path.write_text(FDL.format(cluster=CLUSTER, name=name, greeting=greeting))
        return path


class Gateway:
    def __init__(self, config: dict[str, Any], work: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = work / f"{name}.yaml"
        self.work, self.name, self.starts = work, name, 0
        write_config({**config, "gateway": {"port": self.port}}, self.config_file)
        self.process: CliProcess | None = None

    def start(self) -> None:
        self.starts += 1
        self.process = CliProcess(self.config_file, "gateway", log=self.work / f"{self.name}-{self.starts}.log")
        self.process.wait_http(f"{self.url}/readyz")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="module")
def deployment(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("api")
    config = isolated_config(stack, work, cluster_id=CLUSTER,
                             api={"username": USER, "password": PASSWORD, "token_secret": "api-test-secret"})
    asyncio.run(apply_topics(write_config(config, work / "oscar-stream.yaml")))  # the store needs its topic
    raw_topic = TopicNames(config["kafka"]["topic_prefix"]).raw("minio.default")
    with notifying_store(stack, raw_topic, work) as endpoint:
        config["storages"][0]["endpoint"] = endpoint
        settings = write_config(config, work / "oscar-stream.yaml")
        gateways = [Gateway(config, work, "gateway-a"), Gateway(config, work, "gateway-b")]
        workers = [Worker(config, work, "worker-1"), Worker(config, work, "worker-2")]
        try:
            for process in workers:
                process.start()
            for gateway in gateways:
                gateway.start()
            for process in workers:
                asyncio.run(process.wait_ready())
            yield Deployment(gateways[0].url, gateways[1], settings, work)
        finally:
            for gateway in gateways:
                gateway.stop()
            for process in workers:
                process.stop()


def _wait_for_job(client: Client, service: str, done: int = 1, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = client.list_jobs(service).json()["jobs"]
        if sum(1 for j in jobs.values() if j["status"] in ("Succeeded", "Failed")) >= done:
            return dict(jobs)
        assert time.monotonic() < deadline, f"jobs of {service} did not end: {jobs}"
        time.sleep(0.3)


def test_cluster_information_with_oscar_python(deployment: Deployment) -> None:
    client = deployment.client()
    assert client.health_check().text == "Ok"
    info = client.get_cluster_info().json()
    assert info["version"] and "git_commit" in info
    config = client.get_cluster_config()
    assert '"name":"oscar"' in config.text  # compact JSON, as OSCAR's clients match it
    provider = config.json()["minio_provider"]
    assert provider["endpoint"] == deployment.settings.storages[0].endpoint and provider["verify"] is True
    assert provider["access_key"] == deployment.settings.storages[0].access_key


def test_a_service_lifecycle_with_oscar_python(deployment: Deployment, tmp_path: Path) -> None:
    client, name = deployment.client(), "cowsay-api"
    created = client.create_service(str(deployment.fdl(name)))
    assert created.status_code == 201
    service = client.get_service(name).json()
    token = service["token"]
    assert len(token) == 64 and int(token, 16) >= 0
    assert service["labels"]["oscar_service"] == name and "storage_providers" in service
    assert service["input"] == [{"storage_provider": "minio.default", "path": f"{name}/in"}]
    assert name in [s["name"] for s in client.list_services().json()]

    assert client.update_service(name, str(deployment.fdl(name, greeting="Hi"))).status_code == 204
    updated = client.get_service(name).json()
    assert updated["environment"]["variables"]["GREETING"] == "Hi" and updated["token"] == token  # kept

    answer = client.run_service(name, input="moo", async_call=True)
    assert answer.status_code == 201 and answer.headers["X-Oscar-Stream-Job"].startswith(f"{name}-")
    jobs = _wait_for_job(client, name)
    [(job, info)] = jobs.items()
    assert job.startswith(f"{name}-") and info["status"] == "Succeeded"
    assert set(info) == {"status", "creation_time", "start_time", "finish_time"}
    log = client.get_job_logs(name, job).text
    assert log.startswith("Hi from ") and log.rstrip().endswith(": moo")

    # An upload through oscar_python's storage client (straight to S3) triggers a job through the store's
    # notification; its output is downloaded the same way.
    storage = client.create_storage_client(name)
    upload = tmp_path / "frame.txt"
    upload.write_text("uploaded frame")
    storage.upload_file("minio.default", str(upload), f"{name}/in")
    _wait_for_job(client, name, done=2)
    (tmp_path / "got").mkdir()
    for _ in range(50):
        listed = storage.list_files_from_path("minio.default", f"{name}/out").get("Contents", [])
        if any(o["Key"] == "out/frame.txt.out" for o in listed):
            break
        time.sleep(0.3)
    storage.download_file("minio.default", str(tmp_path / "got"), f"{name}/out/frame.txt.out")
    assert (tmp_path / "got" / "frame.txt.out").read_text() == "uploaded frame"

    assert client.remove_job(name, job).status_code == 204
    assert job not in client.list_jobs(name).json()["jobs"]
    assert client.remove_all_jobs(name).status_code == 204
    assert client.list_jobs(name).json()["jobs"] == {}
    assert client.remove_service(name).status_code == 204
    with pytest.raises(requests.HTTPError) as missing:
        client.get_service(name)
    assert missing.value.response is not None and missing.value.response.status_code == 404


def test_what_oscar_python_does_not_look_at(deployment: Deployment) -> None:
    url, auth = deployment.url, deployment.auth
    assert requests.get(f"{url}/system/info", timeout=10).status_code == 401
    refused = requests.get(f"{url}/system/services", auth=(USER, "wrong"), timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(f"{url}/system/config/", auth=auth, timeout=10).status_code == 200  # the storage client's
    spec = {"name": "bad-spec", "image": "alpine", "script": "true", "memory": "lots",
            "input": [{"storage_provider": "minio.nowhere", "path": "x/in"}]}
    bad = requests.post(f"{url}/system/services", data=orjson.dumps(spec), auth=auth, timeout=10)
    assert bad.status_code == 400
    problems = bad.json()["problems"]
    assert any(p.startswith("memory: 'lots' is not a Kubernetes quantity") for p in problems)
    assert any(p.startswith("input[0].storage_provider: unknown storage provider 'minio.nowhere'") for p in problems)
    not_json = requests.post(f"{url}/system/services", data=b"{", auth=auth, headers={"Content-Type": "text/json"},
                             timeout=10)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]

    # oscar-cli sends every field, unset ones as zero values and nulls.
    full = {"name": "zeros", "image": "alpine", "script": "true", "cpu": "", "memory": "", "log_level": "",
            "alpine": False, "enable_gpu": False, "environment": {"variables": None, "secrets": None},
            "input": None, "output": None, "labels": None, "annotations": None, "image_pull_secrets": None,
            "expose": {"min_scale": 0, "max_scale": 0, "api_port": 0}, "synchronous": {"min_scale": 0,
                                                                                      "max_scale": 0},
            "mount": {"storage_provider": "", "path": ""}, "replicas": None, "volume": None, "token": ""}
    made = requests.post(f"{url}/system/services", data=orjson.dumps(full), auth=auth, timeout=10)
    assert made.status_code == 201 and made.json()["warnings"] == []
    again = requests.post(f"{url}/system/services", data=orjson.dumps(full), auth=auth, timeout=10)
    assert again.status_code == 409
    warned = requests.put(f"{url}/system/services", auth=auth, timeout=10, data=orjson.dumps(
        {**full, "mount": {"storage_provider": "minio", "path": "zeros/shared"}}))
    assert warned.status_code == 200 and "'mount' is accepted but not implemented" in warned.json()["warnings"][0]
    token = requests.get(f"{url}/system/services/zeros", auth=auth, timeout=10).json()["token"]

    job = f"{url}/job/zeros"
    assert requests.post(job, data=b"x", auth=auth, timeout=10).status_code == 401  # Basic is not a token
    assert requests.post(job, data=b"x", headers={"Authorization": "Bearer " + "0" * 64}, timeout=10).status_code \
        == 401
    huge = requests.post(job, data=b"x" * 1_100_000, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert huge.status_code == 413
    run = requests.post(f"{url}/run/zeros", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert run.status_code == 404 and "takes no synchronous invocations" in run.json()["message"]
    assert requests.delete(f"{url}/system/services/zeros", auth=auth, timeout=10).status_code == 204
    assert requests.get(f"{url}/system/services/zeros", auth=auth, timeout=10).status_code == 404


def test_job_listing_pages_and_never_writes_null(deployment: Deployment) -> None:
    url, auth, name = deployment.url, deployment.auth, "paged"
    spec = {"name": name, "image": "alpine", "script": "true"}
    assert requests.post(f"{url}/system/services", data=orjson.dumps(spec), auth=auth, timeout=10).status_code == 201
    records = [JobRecord(f"{name}-{i:023x}", name, f"{i:032x}", "Pending" if i % 2 else "Succeeded", "local",
                         f"2026-11-30T10:{i // 60:02d}:{i % 60:02d}.000Z") for i in range(150)]
    asyncio.run(produce_records(deployment.settings, TopicNames(deployment.settings.kafka.topic_prefix).jobs,
                                [(r.job.encode(), r.to_json(), []) for r in records]))
    deadline = time.monotonic() + 30
    while True:
        first = requests.get(f"{url}/system/logs/{name}", auth=auth, timeout=10)
        if first.json().get("remaining_jobs") == 80 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    page = first.json()
    assert len(page["jobs"]) == 70 and page["next_page"] == "70" and b"null" not in first.content
    newest = max(r.creation_time for r in records)[:19] + "Z"  # OSCAR writes times to the second
    assert any(job["creation_time"] == newest for job in page["jobs"].values())
    rest = requests.get(f"{url}/system/logs/{name}?page=70", auth=auth, timeout=10).json()
    second = requests.get(f"{url}/system/logs/{name}?page=140", auth=auth, timeout=10).json()
    assert len(rest["jobs"]) == 70 and len(second["jobs"]) == 10 and "next_page" not in second
    assert len({*page["jobs"], *rest["jobs"], *second["jobs"]}) == 150
    pending = next(r.job for r in records if r.status == "Pending")
    assert requests.delete(f"{url}/system/logs/{name}/{pending}", auth=auth, timeout=10).status_code == 409
    assert requests.delete(f"{url}/system/logs/{name}", auth=auth, timeout=10).status_code == 204
    left = requests.get(f"{url}/system/logs/{name}?page=0", auth=auth, timeout=10).json()
    assert len(left["jobs"]) == 70 and left["remaining_jobs"] == 5  # the 75 pending ones
    assert {job["status"] for job in left["jobs"].values()} == {"Pending"}


def test_a_storage_notification_posted_to_job_runs_that_object(deployment: Deployment, tmp_path: Path) -> None:
    """OSCAR's MinIO webhook posts the store's notification to /job/<svc> with the service's token."""
    client, name = deployment.client(), "from-webhook"
    client.create_service(str(deployment.fdl(name)))
    storage = client.create_storage_client(name)
    source = tmp_path / "note.txt"
    source.write_text("from a notification")
    storage.upload_file("minio.default", str(source), "from-webhook/elsewhere")  # not the service's input folder
    token = client.get_service(name).json()["token"]
    notification = {"Records": [{"eventName": "s3:ObjectCreated:Put", "eventTime": "2026-11-30T10:00:00Z",
                                 "s3": {"bucket": {"name": name}, "object": {"key": "elsewhere%2Fnote.txt"}}}]}
    answer = requests.post(f"{deployment.url}/job/{name}", data=orjson.dumps(notification), timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201
    [(job, info)] = _wait_for_job(client, name).items()
    assert info["status"] == "Succeeded" and answer.headers["X-Oscar-Stream-Job"] == job
    assert client.get_job_logs(name, job).text.strip() == "Hello from note.txt: from a notification"
    payload = base64.b64encode(b"base64 payload")
    assert client.run_service(name, input=payload.decode(), async_call=True).status_code == 201
    _wait_for_job(client, name, done=2)
    client.remove_service(name)


def test_any_replica_answers_and_tokens_survive_restarts(deployment: Deployment) -> None:
    """Nothing only one gateway holds: a service made on one replica is served by the other, a job posted to
    one is listed, read and deleted on the other, and the token is the same after a restart."""
    first, second, name = deployment.client(), deployment.client(deployment.replica_url), "replicated"
    assert first.create_service(str(deployment.fdl(name))).status_code == 201
    token = first.get_service(name).json()["token"]
    deadline = time.monotonic() + 20
    while requests.get(f"{deployment.replica_url}/system/services/{name}", auth=deployment.auth,
                       timeout=10).status_code == 404:
        assert time.monotonic() < deadline, "the other replica never saw the new service"
        time.sleep(0.2)
    assert second.get_service(name).json()["token"] == token
    for index in range(4):  # spread over both workers' partitions
        assert second.run_service(name, input=f"via b {index}", async_call=True).status_code == 201
    jobs = _wait_for_job(first, name, done=4)
    assert {info["status"] for info in jobs.values()} == {"Succeeded"}
    logs = sorted(first.get_job_logs(name, job).text.strip().rsplit(": ", 1)[1] for job in jobs)
    assert logs == [f"via b {index}" for index in range(4)]
    removed = next(iter(jobs))
    assert second.remove_job(name, removed).status_code == 204
    deadline = time.monotonic() + 20
    while removed in first.list_jobs(name).json()["jobs"]:
        assert time.monotonic() < deadline, "the deletion never reached the other replica"
        time.sleep(0.2)

    deployment.replica.stop()
    deployment.replica.start()
    assert second.get_service(name).json()["token"] == token
    assert len(second.list_jobs(name).json()["jobs"]) == 3
    assert first.remove_service(name).status_code == 204
