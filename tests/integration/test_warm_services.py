"""Warm services on the real servers: a gateway with OSCAR's API, two workers (local executor), Kafka and an S3
server of the test's own whose notifications reach the deployment. Synchronous invocations go through OSCAR's
own client (oscar_python's ``run_service(..., async_call=False)``); events reach a warm stage whose outputs
trigger a job stage."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from oscar_python.client import Client

from oscar_stream.config import Settings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.integration.test_oscar_api import Gateway
from tests.support.faults import Worker, until
from tests.support.kafka_io import read_records
from tests.support.stack import isolated_config, notifying_store, write_config

pytestmark = pytest.mark.stack

CLUSTER = "warm-test"
USER, PASSWORD = "oscar", "warm-test-password"
MODEL = """[ -f "$HOME/model" ] || { sleep 0.3; echo weights > "$HOME/model"; echo load >> {loads}; }\n"""
SYNC_SCRIPT = MODEL + """case "$(cat "$INPUT_FILE_PATH")" in
  fail) echo "bad input" >&2; exit 3 ;;
  nolog) echo "only a log line" ;;
  *) tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/out.txt" ;;
esac
"""


class Deployment:
    def __init__(self, url: str, settings: Settings, work: Path, workers: list[Worker]) -> None:
        self.url, self.settings, self.work, self.workers = url, settings, work, workers

    def client(self) -> Client:
        return Client({"cluster_id": CLUSTER, "endpoint": self.url, "user": USER, "password": PASSWORD,
                       "ssl": False})

    def create(self, name: str, script: str, extra: str, inputs: str = "") -> tuple[Client, str, Path]:
        """The service made from an FDL file through oscar_python; its token and the file counting its loads."""
        folder = self.work / name
        folder.mkdir()
        loads = folder / "loads"
        (folder / "script.sh").write_text(script.replace("{loads}", str(loads)))
        fdl = folder / "fdl.yaml"
        fdl.write_text(f"functions:\n  oscar:\n  - {CLUSTER}:\n      name: {name}\n      image: alpine\n"
                       f"      cpu: '0.5'\n      script: script.sh\n{extra}{inputs}")
        client = self.client()
        assert client.create_service(str(fdl)).status_code == 201
        return client, client.get_service(name).json()["token"], loads

    def metric(self, name: str, **labels: str) -> float:
        return sum(asyncio.run(w.metric(name, **labels)) for w in self.workers)


@pytest.fixture(scope="module")
def deployment(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("warm")
    config = isolated_config(stack, work, cluster_id=CLUSTER,
                             api={"username": USER, "password": PASSWORD, "token_secret": "warm-test-secret"})
    asyncio.run(apply_topics(write_config(config, work / "oscar-stream.yaml")))
    raw_topic = TopicNames(config["kafka"]["topic_prefix"]).raw("minio.default")
    with notifying_store(stack, raw_topic, work) as endpoint:
        config["storages"][0]["endpoint"] = endpoint
        settings = write_config(config, work / "oscar-stream.yaml")
        gateway = Gateway(config, work, "gateway")
        workers = [Worker(config, work, "worker-1"), Worker(config, work, "worker-2")]
        try:
            for process in workers:
                process.start()
            gateway.start()
            for process in workers:
                asyncio.run(process.wait_ready())
            yield Deployment(gateway.url, settings, work, workers)
        finally:
            gateway.stop()
            for process in workers:
                process.stop()


def _run(url: str, name: str, token: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(f"{url}/run/{name}", data=body, timeout=60,
                         headers={"Authorization": f"Bearer {token}", **headers})


def test_run_answers_with_the_output_through_oscar_python(deployment: Deployment, tmp_path: Path) -> None:
    name = "sync-upper"
    client, token, loads = deployment.create(name, SYNC_SCRIPT, "      synchronous: {min_scale: 0, max_scale: 2}\n")
    answer = client.run_service(name, input="moo", async_call=False, timeout=60)  # from zero replicas: waits
    assert answer.status_code == 200 and base64.b64decode(answer.text) == b"MOO"
    client.run_service(name, input="decoded by the client", async_call=False, output=str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == b"DECODED BY THE CLIENT"
    assert client.run_service(name, input="nolog", async_call=False).text == "only a log line\n"

    raw = _run(deployment.url, name, token, b"raw bytes", Accept="application/octet-stream")
    assert raw.status_code == 200 and raw.content == b"RAW BYTES"
    failed = _run(deployment.url, name, token, base64.b64encode(b"fail"))
    assert failed.status_code == 502 and failed.json()["exit_code"] == 3 and "bad input" in failed.json()["message"]
    assert _run(deployment.url, name, "0" * 64, b"x").status_code == 401

    for index in range(10):
        assert base64.b64decode(_run(deployment.url, name, token, f"n{index}".encode()).text) == f"N{index}".encode()
    started = deployment.metric("oscar_stream_warm_cold_starts_total", service=name)
    assert 1 <= started <= 2  # sequential requests: at most one replica on each worker
    assert loads.read_text().count("load") == started  # the model is loaded once per replica, not per request


def test_scale_up_under_load_refuse_when_full_and_down_to_zero(deployment: Deployment) -> None:
    name = "sync-slow"
    _, token, _ = deployment.create(name, "sleep 2; echo done\n",
                                    "      warm: {max_replicas: 2, concurrency: 1, idle_seconds: 1, queue: 1}\n")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: _run(deployment.url, name, token, f"{i}".encode()), range(12)))
    codes = sorted(a.status_code for a in answers)
    # each worker runs 2 and queues 1; a worker that is full passes the request to the other one
    assert codes == [200] * 6 + [429] * 6, codes
    assert all(a.headers.get("Retry-After") == "1" for a in answers if a.status_code == 429)
    assert all(a.text == "done\n" for a in answers if a.status_code == 200)
    assert deployment.metric("oscar_stream_warm_cold_starts_total", service=name) == 4
    assert deployment.metric("oscar_stream_warm_requests_total", service=name, outcome="refused") >= 6

    async def scaled_to_zero() -> bool:
        return sum([await w.metric("oscar_stream_warm_replicas", service=name) for w in deployment.workers]) == 0
    asyncio.run(until(scaled_to_zero, timeout_s=15, what="idle replicas stopped"))


def test_events_reach_a_warm_stage_whose_outputs_trigger_a_job(deployment: Deployment, tmp_path: Path) -> None:
    stage1, stage2, files = "warm-detect", "job-report", 6
    upper = 'sleep 0.1; tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n'
    _, _, loads = deployment.create(
        stage1, MODEL + upper,
        "      warm: {min_replicas: 1, max_replicas: 1}\n",
        "      input:\n      - {storage_provider: minio.default, path: wpipe/in}\n"
        "      output:\n      - {storage_provider: minio.default, path: wpipe/mid}\n")
    deployment.create(stage2, 'cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").report"\n', "",
                      "      input:\n      - {storage_provider: minio.default, path: wpipe/mid}\n"
                      "      output:\n      - {storage_provider: minio.default, path: wpipe/out}\n")
    settings = deployment.settings
    names = TopicNames(settings.kafka.topic_prefix)

    async def upload_and_collect() -> list[dict[str, Any]]:
        store = S3Store(settings.storages[0])
        try:
            for index in range(files):
                source = tmp_path / f"f{index}.txt"
                source.write_text(f"frame {index}")
                await store.upload(source, "wpipe", f"in/f{index}.txt")
            records = await read_records(settings, names.results, 2 * files, timeout_s=90)
            report = tmp_path / "report"
            await store.download("wpipe", "out/f0.txt.report", report)
            assert report.read_text() == "FRAME 0"
        finally:
            await store.close()
        return [orjson.loads(r.value) for r in records]

    results = asyncio.run(upload_and_collect())
    kinds = sorted((r["service"], r["executor"], r["status"]) for r in results)
    assert kinds == [(stage2, "local", "succeeded")] * files + [(stage1, "warm", "succeeded")] * files
    assert len({r["invocation_id"] for r in results}) == 2 * files  # one result per invocation
    started = deployment.metric("oscar_stream_warm_cold_starts_total", service=stage1)
    assert started == 2 and loads.read_text().count("load") == 2  # min_replicas 1 on each worker, loaded once
    jobs = deployment.client().list_jobs(stage1).json()["jobs"]
    assert len(jobs) == files and {j["status"] for j in jobs.values()} == {"Succeeded"}


def test_a_worker_away_leaves_run_to_the_other(deployment: Deployment) -> None:
    name = "sync-away"
    _, token, _ = deployment.create(name, SYNC_SCRIPT, "      synchronous: {min_scale: 1, max_scale: 1}\n")
    away = deployment.workers[1]
    away.kill()
    try:
        started = time.monotonic()
        for index in range(4):
            answer = _run(deployment.url, name, token, f"still {index}".encode())
            assert answer.status_code == 200 and base64.b64decode(answer.text) == f"STILL {index}".encode()
        assert time.monotonic() - started < 30
    finally:
        away.start()
        asyncio.run(away.wait_ready())


SERVER = """cat > "$HOME/server.py" <<'PY'
import http.server, os
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        body = f"{os.environ['GREETING']} {self.command} {self.path} {sent}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Not-Passed", "1")
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
PY
exec python3 "$HOME/server.py"
"""


def _until_served(url: str, **kwargs: Any) -> requests.Response:
    deadline = time.monotonic() + 30
    while True:
        answer = requests.get(url, timeout=10, **kwargs)
        if answer.status_code not in (502, 503) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_an_exposed_service_is_reached_through_the_gateway(deployment: Deployment) -> None:
    env = "      environment:\n        variables: {GREETING: hi}\n"
    deployment.create("exp-plain", SERVER, env + "      expose: {api_port: 8080}\n")
    _, token, _ = deployment.create("exp-rewritten", SERVER,
                                    env + "      expose: {api_port: 8080, rewrite_target: true, set_auth: true}\n")
    base = f"{deployment.url}/system/services"

    plain = _until_served(f"{base}/exp-plain/exposed/models/a%20b?x=1")  # no token needed without set_auth
    assert plain.status_code == 200, plain.text
    assert plain.text == "hi GET /system/services/exp-plain/exposed/models/a%20b?x=1 "  # the whole path
    assert plain.headers["Content-Type"] == "text/plain" and "X-Not-Passed" not in plain.headers
    for _ in range(4):  # both workers, whose servers may still be starting: the request waits for its server
        posted = requests.post(f"{base}/exp-plain/exposed/predict", data=b"features", timeout=60)
        assert posted.text == "hi POST /system/services/exp-plain/exposed/predict features"

    assert _until_served(f"{base}/exp-rewritten/exposed/").status_code == 401  # set_auth: the service's token
    rewritten = _until_served(f"{base}/exp-rewritten/exposed/predict?x=2",
                              headers={"Authorization": f"Bearer {token}"})
    assert rewritten.status_code == 200 and rewritten.text == "hi GET /predict?x=2 "  # rewrite_target
    assert requests.get(f"{base}/nobody/exposed/", timeout=10).status_code == 404


def test_a_request_waits_for_an_exposed_server_that_starts_again(deployment: Deployment) -> None:
    # a server that serves one request and exits
    one_request = SERVER.replace("ThreadingHTTPServer", "HTTPServer").replace("serve_forever()", "handle_request()")
    deployment.create("exp-once", one_request, "      environment:\n        variables: {GREETING: once}\n"
                      "      expose: {api_port: 8080}\n")
    url = f"{deployment.url}/system/services/exp-once/exposed/x"
    assert _until_served(url).text == "once GET /system/services/exp-once/exposed/x "
    for _ in range(4):  # each server exits after every request: the next one waits while it starts again
        answer = requests.get(url, timeout=60)
        assert answer.status_code == 200 and answer.text == "once GET /system/services/exp-once/exposed/x "
