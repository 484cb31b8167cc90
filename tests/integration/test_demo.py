"""The main job: `oscar-stream demo` runs the two-stage pipeline on the local stack and every report is right."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from oscar_stream.config import StorageSettings
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store

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
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oscar_stream", "demo", "--files", "6", "--keep", "--timeout", "180",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(demo.communicate(), 300)
    out = stdout.decode()
    assert demo.returncode == 0, out + stderr.decode()
    for expected in (
        "6 files in, checked 6 reports (all correct)",
        "stage stats   jobs launched    6, succeeded    6, failed   0, outputs written 6",
        "stage report  jobs launched    6, succeeded    6, failed   0, outputs written 6",
        "stats: 6 received → 6 routed → 6 launched → 6 done | report: 6 received → 6 routed → 6 launched → 6 done",
        "upload -> final report latency: p50",
    ):
        assert expected in out, f"{expected!r} not in the demo's output:\n{out}"
