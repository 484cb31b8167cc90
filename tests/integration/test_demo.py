"""The main job: `oscar-stream demo` runs the two-stage pipeline on the local stack and every report is right."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from oscar_stream.config import StorageSettings
from oscar_stream.stack.components.kubernetes_node import NODE_NAME
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from tests.support.kube import NAMESPACE, kubectl

pytestmark = pytest.mark.stack


async def test_demo_small_run_checks_every_output(stack: Stack, tmp_path: Path) -> None:
    # Files left behind by an interrupted earlier demo must not be counted as this run's work.
    s = stack.settings.stack
    store = S3Store(StorageSettings(id=s.s3_source_id, endpoint=f"http://127.0.0.1:{s.s3_port}",
                                    access_key=s.s3_access_key, secret_key=s.s3_secret_key))
    await store.ensure_bucket("demo")
    stray = tmp_path / "stray.csv"
    stray.write_text("id,station,value\n1,north,2.5\n")
    for index in range(2):
        await store.upload(stray, "demo", f"raw/interrupted-{index}.csv")
    await store.close()
    out = await _demo_checks_every_report(6)
    # Where the CPU went: every part of the machine's time is counted once, and the worker had some of it.
    split = re.search(r"CPU of all cores during the run \(([\d.]+)s\): scripts ([\d.]+)s .*, worker ([\d.]+)s .*, "
                      r"gateway ([\d.]+)s .*, Kafka, S3 and the rest ([\d.]+)s .*, idle ([\d.]+)s", out)
    assert split is not None, out
    total, *parts = (float(value) for value in split.groups())
    # (each part is rounded to 0.1 s, and /proc counts processes and cores in ticks at different moments)
    assert parts[1] > 0 and abs(sum(parts) - total) <= max(0.5, 0.05 * total), split.group(0)
    assert "the worker was ready" in out


async def test_demo_runs_its_jobs_in_real_pods(node_stack: Stack) -> None:
    out = await _demo_checks_every_report(4, "--executor", "kubernetes")
    assert "kubernetes executor" in out
    jobs = kubectl(node_stack, "get", "pods", "-n", NAMESPACE, "-l", "oscar-stream.io/service in (stats,report)",
                   "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{'\\n'}{end}")
    assert jobs.returncode == 0, jobs.stderr
    assert f"{NODE_NAME} Succeeded" in jobs.stdout.splitlines()


async def _demo_checks_every_report(files: int, *options: str) -> str:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oscar_stream", "demo", "--files", str(files), "--keep", "--timeout", "240", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(demo.communicate(), 400)
    out = stdout.decode()
    assert demo.returncode == 0, out + stderr.decode()
    n = files
    for expected in (
        f"{n} files in, checked {n} reports (all correct)",
        f"stage stats   jobs launched {n:>4}, succeeded {n:>4}, failed   0, outputs written {n}",
        f"stage report  jobs launched {n:>4}, succeeded {n:>4}, failed   0, outputs written {n}",
        f"stats: {n} received → {n} routed → {n} launched → {n} done | report: {n} received → {n} routed → "
        f"{n} launched → {n} done",
        "upload -> final report latency: p50",
    ):
        assert expected in out, f"{expected!r} not in the demo's output:\n{out}"
    return out
