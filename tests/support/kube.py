"""kubernetes-asyncio clients on the local stack's real API server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kubernetes_asyncio import client, config

from oscar_stream.stack.stack import Stack

NAMESPACE = "oscar-stream"


def kubeconfig(stack: Stack) -> str:
    return str(stack.settings.stack.state_dir / "kubernetes" / "kubeconfig")


@asynccontextmanager
async def api(stack: Stack) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig(stack), client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        yield api_client


async def wait_for(check: Any, timeout_s: float = 60.0, every_s: float = 0.3) -> Any:
    """Poll ``await check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


def job_condition(job: Any) -> str | None:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None
