"""The in-pod helper as a process against versitygw (S3) and a real WebDAV server (dCache inputs), and the
local executor end to end: the script's contract, its outputs, their events, timeouts and the concurrency
limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import StoredObject
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.model import ServiceSpec
from oscar_stream.stack.process import free_port, port_open
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from tests.support.kafka_io import produce, read_all, read_records
from tests.support.processes import CliProcess

pytestmark = pytest.mark.stack


def _event(stored: StoredObject) -> StorageEvent:
    return StorageEvent(id=created_object_id(stored.storage, stored.bucket, stored.key, None, stored.etag, None),
                        type=CREATED, time="2026-03-01T10:00:00.000Z", storage=stored.storage,
                        kind="dcache" if stored.bucket is None else "s3", bucket=stored.bucket, key=stored.key,
                        action="s3:ObjectCreated:Put" if stored.bucket else "IN_CLOSE_WRITE", size=stored.size,
                        etag=stored.etag)


def _helper(config_file: Path, invocation: Invocation, outputs: list[dict[str, Any]], *args: str
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSCAR_STREAM_CONFIG": str(config_file),
           "OSCAR_STREAM_INVOCATION": invocation.to_json().decode(),
           "OSCAR_STREAM_OUTPUTS": orjson.dumps(outputs).decode()}
    return subprocess.run([sys.executable, "-m", "oscar_stream", "job", *args], env=env, capture_output=True,
                          text=True, timeout=60)


async def test_helper_fetches_and_uploads_with_s3(settings: Settings, config_file: Path, tmp_path: Path) -> None:
    store = S3Store(settings.storages[0])
    await store.ensure_bucket("helper")
    source = tmp_path / "in.dat"
    source.write_bytes(b"input bytes")
    stored = await store.upload(source, "helper", "in/sample 1.dat")
    service = ServiceSpec(name="helper-test", image="i", script="s")
    invocation = Invocation.of(service.name, service.version, _event(stored))
    outputs: list[dict[str, Any]] = [{"storage": "minio.default", "path": "helper/out"},
               {"storage": "minio.default", "path": "helper/png-only", "suffixes": [".png"]}]
    fetched = _helper(config_file, invocation, outputs, "fetch", "--input-dir", str(tmp_path / "input"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "input" / "sample 1.dat").read_bytes() == b"input bytes"
    out_dir = tmp_path / "output"
    (out_dir / "nested").mkdir(parents=True)
    (out_dir / "result.txt").write_text("result")
    (out_dir / "nested" / "plot.png").write_bytes(b"\x89PNG")
    report = tmp_path / "termination-log"
    uploaded = _helper(config_file, invocation, outputs, "upload", "--output-dir", str(out_dir), "--report",
                       str(report))
    assert uploaded.returncode == 0, uploaded.stderr
    rows = orjson.loads(report.read_text())
    assert sorted(row[2] for row in rows) == ["out/nested/plot.png", "out/result.txt", "png-only/nested/plot.png"]
    check = tmp_path / "check"
    for row in rows:
        await store.download(row[1], row[2], check)
        assert check.read_bytes() == (out_dir / row[2].split("/", 1)[1]).read_bytes()
    await store.close()


@pytest.fixture
def webdav(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real WebDAV server (wsgidav) with basic auth, standing in for a dCache door."""
    root = tmp_path / "dav"
    (root / "data" / "in").mkdir(parents=True)
    port = free_port()
    config = tmp_path / "wsgidav.yaml"
    config.write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": port, "provider_mapping": {"/": str(root)},
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": False,
                               "default_to_digest": False},
        "simple_dc": {"user_mapping": {"*": {"beamline": {"password": "dav-pw"}}}},
        "verbose": 1,
    }))
    log = (tmp_path / "wsgidav.log").open("wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "wsgidav"), "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        if port_open("127.0.0.1", port):
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", root
    process.terminate()
    process.wait(10)
    log.close()


def test_helper_fetches_dcache_inputs_and_uploads_over_webdav(
        config: dict[str, Any], config_file: Path, tmp_path: Path, webdav: tuple[str, Path]) -> None:
    url, root = webdav
    config["storages"].append({"id": "webdav.dcache", "kind": "webdav", "endpoint": url, "username": "beamline",
                               "password": "dav-pw"})
    config_file.write_text(yaml.safe_dump(config))
    (root / "data" / "in" / "run-7.h5").write_bytes(b"HDF5 payload")
    event = _event(StoredObject("webdav.dcache", None, "/data/in/run-7.h5", 12, None))
    dav = ServiceSpec(name="dav-test", image="i", script="s")
    invocation = Invocation.of(dav.name, dav.version, event)
    outputs: list[dict[str, Any]] = [{"storage": "webdav.dcache", "path": "/data/summaries"}]
    fetched = _helper(config_file, invocation, outputs, "fetch", "--input-dir", str(tmp_path / "input"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "input" / "run-7.h5").read_bytes() == b"HDF5 payload"
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "run-7.txt").write_text("summary")
    uploaded = _helper(config_file, invocation, outputs, "upload", "--output-dir", str(tmp_path / "output"),
                       "--report", str(tmp_path / "report"))
    assert uploaded.returncode == 0, uploaded.stderr
    assert (root / "data" / "summaries" / "run-7.txt").read_text() == "summary"
    report = orjson.loads((tmp_path / "report").read_text())
    assert report[0][:3] == ["webdav.dcache", None, "/data/summaries/run-7.txt"]
    config["storages"][-1]["password"] = "wrong"
    config_file.write_text(yaml.safe_dump(config))
    refused = _helper(config_file, invocation, outputs, "fetch", "--input-dir", str(tmp_path / "again"))
    assert refused.returncode == 1 and "GET /data/in/run-7.h5 answered 401" in refused.stderr


CONTRACT = """\
version: oscar-stream/v1
services:
  - name: contract
    image: alpine:3.22
    script_inline: |
      set -eu
      {
        echo "INPUT_FILE_PATH=$INPUT_FILE_PATH"
        echo "TMP_INPUT_DIR=$TMP_INPUT_DIR"
        echo "TMP_OUTPUT_DIR=$TMP_OUTPUT_DIR"
        echo "STORAGE_OBJECT_KEY=$STORAGE_OBJECT_KEY"
        echo "EVENT_TIME=$EVENT_TIME"
        echo "GREETING=$GREETING"
        echo "API_TOKEN=$API_TOKEN"
        echo "CONTENT=$(cat "$INPUT_FILE_PATH")"
        echo "IN_INPUT_DIR=$(dirname "$INPUT_FILE_PATH")"
      } > "$TMP_OUTPUT_DIR/env.txt"
      printf '%s' "$EVENT" > "$TMP_OUTPUT_DIR/event.json"
    environment:
      variables: {GREETING: hello}
      secrets: {API_TOKEN: tok-123}
    input: [{storage_provider: minio, path: contract/in}]
    output: [{storage_provider: minio, path: contract/out}]
  - name: sleepy
    image: alpine:3.22
    script_inline: |
      date +%s.%N > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").start"
      sleep 1
      date +%s.%N > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").end"
    concurrency: 2
    input: [{storage_provider: minio, path: contract/sleepy}]
    output: [{storage_provider: minio, path: contract/sleepy-out}]
  - name: stuck
    image: alpine:3.22
    script_inline: "sleep 30"
    timeout_seconds: 1
    input: [{storage_provider: minio, path: contract/stuck}]
"""


async def test_local_executor_contract_outputs_timeout_and_limit(
        settings: Settings, config_file: Path, tmp_path: Path) -> None:
    await apply_topics(settings)
    table = tmp_path / "table.yaml"
    table.write_text(CONTRACT)
    services = {s.name: s for s in load_routing_files([table]).table.services}
    await apply_services(settings, services.values())
    store = S3Store(settings.storages[0])
    await store.ensure_bucket("contract")
    stored: dict[str, list[StoredObject]] = {"contract": [], "sleepy": [], "stuck": []}
    for folder, count in (("in", 1), ("sleepy", 6), ("stuck", 1)):
        for index in range(count):
            source = tmp_path / f"{folder}-{index}"
            source.write_bytes(f"payload {folder} {index}".encode())
            name = "contract" if folder == "in" else folder
            stored[name].append(await store.upload(source, "contract", f"{folder}/file {index}+x.txt"))
    names = TopicNames(settings.kafka.topic_prefix)
    worker = CliProcess(config_file, "worker", "--roles", "route,launch", log=tmp_path / "worker.log")
    try:
        events = [_event(o) for objects in stored.values() for o in objects]
        await produce(settings, names.events, [e.to_json() for e in events])
        records = await read_records(settings, names.results, 8, timeout_s=90)
        results = {orjson.loads(r.value)["invocation_id"]: orjson.loads(r.value) for r in records}
        by_service: dict[str, list[dict[str, Any]]] = {}
        for result in results.values():
            by_service.setdefault(result["service"], []).append(result)
        [stuck] = by_service["stuck"]
        assert stuck["status"] == "failed" and "timed out after 1s" in stuck["reason"]
        [contract] = by_service["contract"]
        assert contract["status"] == "succeeded"
        out = {Path(o["key"]).name: o for o in contract["outputs"]}
        check = tmp_path / "check"
        await store.download("contract", out["env.txt"]["key"], check)
        env = dict(line.split("=", 1) for line in check.read_text().splitlines())
        assert env["STORAGE_OBJECT_KEY"] == "in/file 0+x.txt"
        assert env["INPUT_FILE_PATH"].endswith("/input/file 0+x.txt") and env["IN_INPUT_DIR"] == env["TMP_INPUT_DIR"]
        assert env["CONTENT"] == "payload in 0" and env["GREETING"] == "hello" and env["API_TOKEN"] == "tok-123"
        assert env["EVENT_TIME"] == "2026-03-01T10:00:00.000Z"
        await store.download("contract", out["event.json"]["key"], check)
        record = orjson.loads(check.read_bytes())["Records"][0]
        assert record["s3"]["object"]["key"] == "in%2Ffile+0%2Bx.txt"  # as MinIO would send it
        assert record["s3"]["bucket"]["name"] == "contract" and record["eventName"] == "s3:ObjectCreated:Put"
        # Every output became an event, with the id the store's own notification of that upload would get.
        output_events = [orjson.loads(r.value) for r in await read_all(settings, names.events)]
        produced = {e["id"] for e in output_events if e["data"]["producer"] == "service:contract"}
        assert produced == {created_object_id("minio.default", "contract", o["key"], o["version_id"], o["etag"], None)
                            for o in contract["outputs"]}
        spans = []
        for result in by_service["sleepy"]:
            assert result["status"] == "succeeded"
            times = {}
            for output in result["outputs"]:
                await store.download("contract", output["key"], check)
                times[Path(output["key"]).suffix] = float(check.read_text())
            spans.append((times[".start"], times[".end"]))
        assert len(spans) == 6
        peak = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
        assert peak == 2  # the limit was reached, never exceeded
    finally:
        worker.stop()
        await store.close()

