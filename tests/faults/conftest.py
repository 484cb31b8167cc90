"""Fault tests report figures (inputs, outputs, lost, run twice, duplicates, times to recover); they are
printed at the end of the run, and written as JSON to $OSCAR_STREAM_FAULT_REPORT when it is set."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    return FIGURES.setdefault(request.node.name, {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault figures")
    for test, values in FIGURES.items():
        terminalreporter.write_line(f"{test}:")
        for name, value in values.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            terminalreporter.write_line(f"    {name:<34} {shown}")
    report = os.environ.get("OSCAR_STREAM_FAULT_REPORT")
    if report:
        with open(report, "w") as out:
            json.dump(FIGURES, out, indent=2, sort_keys=True)
