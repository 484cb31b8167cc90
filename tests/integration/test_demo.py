"""The main job: `oscar-stream demo` runs the two-stage pipeline on the local stack and every report is right."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oscar_stream.stack.stack import Stack

pytestmark = pytest.mark.stack


def test_demo_small_run_checks_every_output(stack: Stack) -> None:
    done = subprocess.run([sys.executable, "-m", "oscar_stream", "demo", "--files", "6", "--keep", "--timeout", "180"],
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "6 files in, checked 6 reports (all correct)" in out
    assert "stage stats   jobs launched    6, succeeded    6, failed   0, outputs written 6" in out
    assert "stage report  jobs launched    6, succeeded    6, failed   0, outputs written 6" in out
    assert "stats: 6 received → 6 routed → 6 launched → 6 done | report: 6 received → 6 routed → 6 launched → 6 done" \
        in out
    assert "upload -> final report latency: p50" in out
