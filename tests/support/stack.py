"""Test access to the local stack of real servers: start it (or reuse the running one) and derive per-test
settings (a unique topic prefix, so tests never see each other's records)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient

from oscar_stream.config import Settings, load_settings
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.versitygw import S3Notify, start_versitygw
from oscar_stream.stack.process import free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack

S3_SOURCE = "minio.default"
ISSUED_PREFIXES: list[str] = []  # topic prefixes handed out in this session, their topics deleted at its end


def stack_settings() -> Settings:
    return load_settings(None)


def ensure_stack(components: tuple[str, ...]) -> Stack:
    stack = Stack(stack_settings(), Progress())
    stack.up(components)
    return stack


def isolated_config(stack: Stack, work: Path, **extra: Any) -> dict[str, Any]:
    """A configuration for one test: its own topic prefix and consumer group, the stack's servers."""
    s = stack.settings.stack
    prefix = f"t{uuid.uuid4().hex[:10]}"
    ISSUED_PREFIXES.append(prefix)
    config: dict[str, Any] = {
        "app_id": f"{prefix}-worker",
        "kafka": {"bootstrap_servers": f"127.0.0.1:{s.kafka_port}", "topic_prefix": prefix},
        "sources": [{"id": S3_SOURCE, "kind": "s3", "key_encoding": "raw", "token": f"tok-{prefix}"}],
        "storages": [{"id": S3_SOURCE, "kind": "s3", "endpoint": f"http://127.0.0.1:{s.s3_port}",
                      "access_key": s.s3_access_key, "secret_key": s.s3_secret_key.get_secret_value()}],
        "worker": {"work_dir": str(work / "runs")},
        "stack": {"state_dir": str(s.state_dir), "cache_dir": str(s.cache_dir)},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


async def delete_topics_of(bootstrap: str, prefixes: list[str]) -> int:
    """Delete the topics of these prefixes (the deployment's, and faust's own ``<prefix>-worker-...``): a broker
    that keeps every test's topics makes each full metadata request, and everything after it, slower."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    await client.start()
    try:
        starts = tuple(f"{p}{sep}" for p in prefixes for sep in (".", "-"))
        doomed = [t for t in await client.list_topics() if t.startswith(starts)]
        for start in range(0, len(doomed), 200):
            await client.delete_topics(doomed[start:start + 200], timeout_ms=60_000)
        return len(doomed)
    finally:
        await client.close()


def write_config(config: dict[str, Any], path: Path) -> Settings:
    path.write_text(yaml.safe_dump(config))
    return load_settings(path)


@contextlib.contextmanager
def notifying_store(stack: Stack, raw_topic: str, work: Path) -> Iterator[str]:
    """A versitygw of the test's own whose notifications go to ``raw_topic`` (the stack's own S3 server
    notifies the stack's default prefix); yields its endpoint."""
    ctx = StackContext(stack.settings.stack, raw_topic.split(".", 1)[0], Progress(quiet=True))
    port = free_port()
    record = start_versitygw(ctx, f"s3-{port}", port, work / "buckets",
                             S3Notify(kafka_bootstrap=f"127.0.0.1:{stack.settings.stack.kafka_port}",
                                      kafka_topic=raw_topic), work / "versitygw.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(record)
