"""kubernetes-asyncio clients on the local stack's real API server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from oscar_stream.stack.components.kubernetes import KUBERNETES_VERSION
from oscar_stream.stack.stack import Stack
from tests.support.paths import REPO

NAMESPACE = "oscar-stream"


def kubeconfig(stack: Stack) -> str:
    return str(stack.settings.stack.state_dir / "kubernetes" / "kubeconfig")


def kubectl(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = stack.settings.stack.cache_dir / f"kubernetes-{KUBERNETES_VERSION}" / "bin" / "kubectl"
    return subprocess.run([str(binary), f"--kubeconfig={kubeconfig(stack)}", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def launcher_kubeconfig(stack: Stack, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount of our manifests, bound to their Role (applied for real, from the
    dev overlay): what runs with it can do only what the workers are granted in a real cluster."""
    rendered = kubectl(stack, "kustomize", str(REPO / "deploy" / "kustomize" / "overlays" / "dev"))
    assert rendered.returncode == 0, rendered.stderr
    rbac = [o for o in yaml.safe_load_all(rendered.stdout)
            if o and o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    applied = kubectl(stack, "apply", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    assert applied.returncode == 0, applied.stderr
    [account] = [o["metadata"] for o in rbac if o["kind"] == "ServiceAccount"]
    token = kubectl(stack, "create", "token", account["name"], "-n", account["namespace"], "--duration=1h")
    assert token.returncode == 0, token.stderr
    document = json.loads(Path(kubeconfig(stack)).read_text())
    for user in document["users"]:
        user["user"] = {"token": token.stdout.strip()}
    path.write_text(json.dumps(document))
    return path


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
