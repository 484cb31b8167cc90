"""Routing on the real broker: live updates without a restart, chaining to ONE invocation per output, and a
cross-cluster pipeline between two oscar-stream deployments (two clusters sharing the broker under different
prefixes, the storage of one being reachable from the other)."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from oscar_stream.config import Settings, load_settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.versitygw import S3Notify, start_versitygw
from oscar_stream.stack.process import free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services, delete_service
from tests.support.kafka_io import produce, read_all
from tests.support.paths import FDL
from tests.support.processes import CliProcess
from tests.support.stack import isolated_config, write_config

pytestmark = pytest.mark.stack


def _event(bucket: str, key: str, etag: str = "e1", storage: str = "minio.default") -> StorageEvent:
    return StorageEvent(id=created_object_id(storage, bucket, key, None, etag, None), type=CREATED,
                        time="2026-01-01T00:00:00.000Z", storage=storage, kind="s3", bucket=bucket, key=key,
                        action="s3:ObjectCreated:Put", etag=etag)


async def _wait_records(settings: Settings, topic: str, predicate: Any, count: int, timeout_s: float = 60
                        ) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [r for r in (orjson.loads(x.value) for x in await read_all(settings, topic)) if predicate(r)]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


TABLE_V1 = """\
version: oscar-stream/v1
services:
  - {name: live-a, image: i, script_inline: "true", input: [{storage_provider: minio, path: live/in}]}
"""
TABLE_V2 = """\
version: oscar-stream/v1
services:
  - {name: live-b, image: i, script_inline: "true", input: [{storage_provider: minio, path: live/in}]}
"""


async def test_applying_a_table_changes_routing_in_a_running_worker(
        settings: Settings, config_file: Path, tmp_path: Path) -> None:
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    (tmp_path / "v1.yaml").write_text(TABLE_V1)
    (tmp_path / "v2.yaml").write_text(TABLE_V2)
    await apply_services(settings, load_routing_files([tmp_path / "v1.yaml"]).table.services)
    worker = CliProcess(config_file, "worker", "--roles", "route", log=tmp_path / "worker.log")
    try:
        await produce(settings, names.events, [_event("live", "in/1.dat").to_json()])
        first = await _wait_records(settings, names.invocations, lambda r: True, 1)
        assert [r["service"] for r in first] == ["live-a"]
        await apply_services(settings, load_routing_files([tmp_path / "v2.yaml"]).table.services)
        assert await delete_service(settings, "live-a")
        await asyncio.sleep(2)  # the worker reads the services topic continuously
        await produce(settings, names.events, [_event("live", "in/2.dat").to_json()])
        both = await _wait_records(settings, names.invocations, lambda r: True, 2)
        assert sorted((r["event"]["data"]["key"], r["service"]) for r in both) == [("in/1.dat", "live-a"),
                                                                                  ("in/2.dat", "live-b")]
        assert worker.proc.poll() is None  # same process: no restart
    finally:
        worker.stop()


async def test_a_jobs_output_and_the_stores_notification_of_it_lead_to_one_invocation(
        stack: Stack, settings: Settings, config_file: Path, tmp_path: Path) -> None:
    """two-stage.yaml (unchanged FDL): the store notifies Kafka of pick's output, the launcher publishes it
    too; locate must run once."""
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    for item in (f for f in FDL.iterdir() if f.is_file()):
        shutil.copy(item, tmp_path / item.name)
    await apply_services(settings, load_routing_files([tmp_path / "two-stage.yaml"]).table.services)
    ctx = StackContext(stack.settings.stack, settings.kafka.topic_prefix, Progress(quiet=True))
    port = free_port()
    gw = start_versitygw(ctx, "s3-chain", port, tmp_path / "buckets",
                         S3Notify(kafka_bootstrap=settings.kafka.bootstrap_servers,
                                  kafka_topic=names.raw("minio.default")), tmp_path / "versitygw.log")
    config = yaml.safe_load(config_file.read_text())
    config["storages"][0]["endpoint"] = f"http://127.0.0.1:{port}"
    config_file.write_text(yaml.safe_dump(config))
    store = S3Store(load_settings(config_file).storages[0])
    worker = CliProcess(config_file, "worker", log=tmp_path / "worker.log")
    try:
        await store.ensure_bucket("seismic")
        waveform = tmp_path / "ANMO.mseed"
        waveform.write_bytes(b"MSEED" * 200)
        await store.upload(waveform, "seismic", "waveforms/ANMO.mseed")
        results = await _wait_records(settings, names.results, lambda r: r["service"] == "locate", 1)
        assert [r["status"] for r in results] == ["succeeded"]
        detections = await _wait_records(settings, names.events,
                                         lambda r: r["data"]["key"] == "picks/ANMO.picks", 2)
        producers = sorted(r["data"]["producer"] for r in detections)
        assert producers == ["service:pick", "storage"]
        assert len({r["id"] for r in detections}) == 1  # same object, same identity
        await asyncio.sleep(3)
        locate_invocations = [r for r in (orjson.loads(x.value) for x in await read_all(settings, names.invocations))
                              if r["service"] == "locate"]
        assert len({r["id"] for r in locate_invocations}) == 1
        all_results = [r for r in (orjson.loads(x.value) for x in await read_all(settings, names.results))
                       if r["service"] == "locate"]
        assert len(all_results) == 1  # it ran once
        check = tmp_path / "location"
        await store.download("seismic", "locations/ANMO.json", check)
        assert check.read_text() == '{"picks": "ANMO.mseed 1000"}\n'  # pick.sh wrote the line, locate.sh wrapped it
    finally:
        worker.stop()
        await store.close()
        terminate(gw)


async def test_cross_cluster_pipeline(stack: Stack, tmp_path: Path) -> None:
    """cross-cluster.yaml, unchanged, applied on two clusters: ping-filter runs on the vessel and writes to the
    shore cluster's storage; classifier runs on shore. The vessel forwards the output event to shore's gateway."""
    for item in (f for f in FDL.iterdir() if f.is_file()):
        shutil.copy(item, tmp_path / item.name)
    shore_gateway = free_port()
    vessel_config = isolated_config(stack, tmp_path / "vessel", cluster_id="vessel", metrics={"port": free_port()})
    shore_config = isolated_config(stack, tmp_path / "shore", cluster_id="shore", metrics={"port": free_port()},
                                   gateway={"port": shore_gateway, "cluster_token": "shore-peer-token"})
    # The vessel reaches the shore's storage as minio.shore (here the same versitygw), and its gateway.
    s3 = dict(vessel_config["storages"][0])
    vessel_config["storages"].append({**s3, "id": "minio.shore"})
    vessel_config["clusters"] = [{"id": "shore", "gateway_url": f"http://127.0.0.1:{shore_gateway}",
                                "token": "shore-peer-token"}]
    (tmp_path / "vessel").mkdir()
    (tmp_path / "shore").mkdir()
    vessel = write_config(vessel_config, tmp_path / "vessel.yaml")
    shore = write_config(shore_config, tmp_path / "shore.yaml")
    services = load_routing_files([tmp_path / "cross-cluster.yaml"]).table.services
    for settings in (vessel, shore):
        await apply_topics(settings)
        await apply_services(settings, services)
    store = S3Store(vessel.storages[0])
    await store.ensure_bucket("sonar")
    await store.ensure_bucket("classify")
    processes = [CliProcess(tmp_path / "vessel.yaml", "worker", log=tmp_path / "vessel-worker.log"),
                 CliProcess(tmp_path / "shore.yaml", "worker", log=tmp_path / "shore-worker.log"),
                 CliProcess(tmp_path / "shore.yaml", "gateway", log=tmp_path / "shore-gateway.log")]
    try:
        ping = tmp_path / "ping-1.dat"
        ping.write_bytes(b"PING\x00\x01 echo")
        stored = await store.upload(ping, "sonar", "pings/ping-1.dat")
        ignored = await store.upload(ping, "sonar", "pings/other-1.dat")  # no ping- prefix: no job
        vessel_names, shore_names = TopicNames(vessel.kafka.topic_prefix), TopicNames(shore.kafka.topic_prefix)
        await produce(vessel, vessel_names.events, [_event("sonar", o.key, o.etag or "").to_json()
                                                for o in (stored, ignored)])
        shore_results = await _wait_records(shore, shore_names.results, lambda r: r["service"] == "classifier", 1, 90)
        assert [r["status"] for r in shore_results] == ["succeeded"]
        vessel_results = await _wait_records(vessel, vessel_names.results, lambda r: True, 2)
        kinds = Counter((r["service"], r["executor"], r["status"]) for r in vessel_results)
        assert kinds == Counter({("ping-filter", "local", "succeeded"): 1,
                                 ("classifier@shore", "remote", "succeeded"): 1})
        forwarded = await _wait_records(shore, shore_names.events, lambda r: r["data"]["key"] == "in/ping-1.dat", 1)
        assert [(r["data"]["storage"], r["data"]["bucket"]) for r in forwarded] == [("minio.default", "classify")]
        check = tmp_path / "check"
        await store.download("classify", "out/ping-1.dat", check)  # written by classifier on shore
        assert check.read_bytes() == b"PING\x00\x01 echo"
    finally:
        for process in processes:
            process.stop()
        await store.close()
