"""Test access to the local stack of real servers: start it (or reuse the running one) and derive per-test
settings (a unique topic prefix, so tests never see each other's records)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from oscar_stream.config import Settings, load_settings
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import Stack

S3_SOURCE = "minio.default"


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


def write_config(config: dict[str, Any], path: Path) -> Settings:
    path.write_text(yaml.safe_dump(config))
    return load_settings(path)
