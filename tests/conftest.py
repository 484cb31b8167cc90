from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oscar_stream.config import Settings
from oscar_stream.stack.stack import Stack
from tests.support.stack import ISSUED_PREFIXES, delete_topics_of, ensure_stack, isolated_config, write_config


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Kafka, versitygw and Prometheus: started once (or reused when already running). The topics the tests
    made are deleted at the end."""
    started = ensure_stack(("kafka", "s3", "prometheus"))
    yield started
    if ISSUED_PREFIXES and started.running("kafka"):
        bootstrap = f"127.0.0.1:{started.settings.stack.kafka_port}"
        asyncio.run(delete_topics_of(bootstrap, ISSUED_PREFIXES))


@pytest.fixture(scope="session")
def kube_stack(stack: Stack) -> Stack:
    return ensure_stack(("kafka", "s3", "prometheus", "kubernetes"))


@pytest.fixture(scope="session")
def node_stack(kube_stack: Stack) -> Stack:
    """The control plane with its real node (kubelet, containerd, runc) besides kwok's fake one."""
    return ensure_stack(("kafka", "s3", "prometheus", "kubernetes", "kubernetes-node"))


@pytest.fixture
def config(stack: Stack, tmp_path: Path) -> dict[str, Any]:
    return isolated_config(stack, tmp_path)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "oscar-stream.yaml"


@pytest.fixture
def settings(config: dict[str, Any], config_file: Path) -> Settings:
    return write_config(config, config_file)
