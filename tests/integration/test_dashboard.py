"""The Grafana dashboard is proven against the real Prometheus: a small pipeline exercises every part of the
system (gateway, dCache watcher, worker with a two-stage chain, a failing service with a retry, dead-letters,
an unmatched event), Prometheus scrapes the three processes, and EVERY query of the dashboard returns data."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from oscar_stream.config import Settings, load_settings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.stack.components.prometheus import add_scrape_target, remove_scrape_target
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.dcache_server import DcacheServer
from tests.support.kafka_io import read_records
from tests.support.processes import CliProcess
from tests.support.prometheus import query

pytestmark = pytest.mark.stack
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "oscar-stream-dashboard.json"

PIPELINE = """\
version: oscar-stream/v1
services:
  - name: dash-first
    image: alpine:3.22
    script_inline: |
      cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").step1"
    input: [{storage_provider: minio, path: dash/in}]
    output: [{storage_provider: minio, path: dash/mid}]
  - name: dash-second
    image: alpine:3.22
    script_inline: |
      wc -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").size"
    input: [{storage_provider: minio, path: dash/mid}]
    output: [{storage_provider: minio, path: dash/out}]
  - name: dash-broken
    image: alpine:3.22
    script_inline: |
      echo "this input is rejected" >&2
      exit 3
    retries: 1
    backoff_seconds: 0.2
    input: [{storage_provider: minio, path: dash/broken}]
  - name: dash-warm
    image: alpine:3.22
    script_inline: |
      cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"
    warm: {min_replicas: 1, max_replicas: 2}
    input: [{storage_provider: minio, path: dash/warm}]
"""


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _expressions() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " ".join(p["title"].lower() for p in _panels())
    for topic in ("received", "latency", "dead-letters", "lag", "active jobs", "succeeded", "gateway"):
        assert topic in titles


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace('"$service"', '".*"')


async def _post(url: str, body: bytes, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status


def _notification(bucket: str, key: str, etag: str) -> bytes:
    return orjson.dumps({"Records": [{"eventName": "s3:ObjectCreated:Put", "eventTime": "2026-01-01T00:00:00Z",
                                      "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag,
                                                                                    "size": 5}}}]})


@pytest.fixture
async def dcache() -> AsyncIterator[DcacheServer]:
    server = DcacheServer()
    await server.start()
    yield server
    await server.stop()


async def test_every_dashboard_query_returns_data(stack: Stack, config: dict[str, Any], tmp_path: Path,
                                                  dcache: DcacheServer) -> None:
    worker_port, gateway_port, watcher_port = free_port(), free_port(), free_port()
    config["sources"].append({"id": "webdav.dcache", "kind": "dcache", "url": dcache.url, "username": "beamline",
                              "password": "secret-pw", "subscriptions": [{"path": "/data/in"}]})
    config["gateway"] = {"port": gateway_port}

    def config_for(name: str, metrics_port: int) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "metrics": {"port": metrics_port}}))
        return path

    # The gateway serves /metrics on its own port; the others on their metrics port.
    files = {"worker": config_for("worker", worker_port), "gateway": config_for("gateway", free_port()),
             "watcher": config_for("watcher", watcher_port)}
    settings: Settings = load_settings(files["worker"])
    await apply_topics(settings)
    table = tmp_path / "pipeline.yaml"
    table.write_text(PIPELINE)
    await apply_services(settings, load_routing_files([table]).table.services)
    processes = [
        CliProcess(files["worker"], "worker", log=tmp_path / "worker.log"),
        CliProcess(files["gateway"], "gateway", log=tmp_path / "gateway.log"),
        CliProcess(files["watcher"], "dcache-watch", log=tmp_path / "watcher.log"),
    ]
    state = stack.settings.stack.state_dir
    targets = {f"dash-{n}-{settings.kafka.topic_prefix}": f"127.0.0.1:{p}"
               for n, p in (("worker", worker_port), ("gateway", gateway_port), ("watcher", watcher_port))}
    try:
        await asyncio.to_thread(processes[0].wait_http, f"http://127.0.0.1:{worker_port}/readyz")
        await asyncio.to_thread(processes[1].wait_http, f"http://127.0.0.1:{gateway_port}/readyz")
        await asyncio.to_thread(processes[2].wait_http, f"http://127.0.0.1:{watcher_port}/readyz")
        for name, address in targets.items():
            add_scrape_target(state, name, address)
        store = S3Store(settings.storages[0])
        await store.ensure_bucket("dash")
        token = config["sources"][0]["token"]
        hook = f"http://127.0.0.1:{gateway_port}/webhook/minio.default"
        for index, folder in enumerate(["in", "in", "broken", "nobody-wants-this", "warm"]):
            source = tmp_path / f"f{index}.txt"
            source.write_bytes(b"hello" * (index + 1))
            stored = await store.upload(source, "dash", f"{folder}/f{index}.txt")
            assert await _post(hook, _notification("dash", stored.key, stored.etag or ""), token) == 200
        assert await _post(hook, b"{not json", token) == 200  # dead-lettered by the normalizer
        await store.close()
        dcache.emit_system("EVENT_LOSS")
        names = TopicNames(settings.kafka.topic_prefix)
        results = await read_records(settings, names.results, 6, timeout_s=90)
        statuses = sorted((orjson.loads(r.value)["service"], orjson.loads(r.value)["status"]) for r in results)
        assert statuses == [("dash-broken", "failed"), ("dash-first", "succeeded"), ("dash-first", "succeeded"),
                            ("dash-second", "succeeded"), ("dash-second", "succeeded"), ("dash-warm", "succeeded")]
        prometheus = f"http://127.0.0.1:{stack.settings.stack.prometheus_port}"
        await asyncio.sleep(3 * stack.settings.stack.scrape_interval_s + 6)  # lag is exported every 5s
        empty: list[str] = []
        for _ in range(20):
            empty = []
            for expr in _expressions():
                series = await query(prometheus, _grafana_to_promql(expr))
                mine = [s for s in series if not s["metric"].get("instance_name")
                        or s["metric"]["instance_name"] in targets]
                if not mine:
                    empty.append(expr)
            if not empty:
                break
            await asyncio.sleep(2)
        assert empty == [], f"dashboard queries without data: {empty}"
        succeeded = await query(prometheus, 'sum(oscar_stream_jobs_succeeded_total{service="dash-first"})')
        assert [float(s["value"][1]) for s in succeeded] == [2.0]
        top = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "oscar_stream", "--config", str(files["worker"]), "top", "--once", "--interval",
            "0.5", "--metrics", f"http://127.0.0.1:{worker_port}/metrics", stdout=asyncio.subprocess.PIPE)
        screen = (await top.communicate())[0].decode()
        assert top.returncode == 0, screen
        rows = {line.split()[0]: line.split()[1:] for line in screen.splitlines()
                if line.startswith(("dash-first", "dash-second", "dash-broken", "dash-warm"))}
        # active, launched, succeeded, failed, warm replicas, waiting, cold starts
        assert rows["dash-first"] == ["0", "2", "2", "0", "0", "0", "0"] and rows["dash-broken"][3] == "1"
        assert rows["dash-warm"] == ["0", "1", "1", "0", "1", "0", "1"]
        assert "dash-broken" in screen.split("RECENT FAILURES", 1)[1] and "exited with code 3" in screen
        assert "THROUGHPUT /s" in screen and "LAG (records)" in screen
        failed = await query(prometheus, 'sum(oscar_stream_jobs_failed_total{service="dash-broken"})')
        retried = await query(prometheus, 'sum(oscar_stream_jobs_retried_total{service="dash-broken"})')
        assert [float(s["value"][1]) for s in failed + retried] == [1.0, 1.0]
    finally:
        for name in targets:
            remove_scrape_target(state, name)
        for process in processes:
            process.stop()
