from __future__ import annotations

import pytest

from tests.support.paths import EVENTS, FDL


def pytest_configure(config: pytest.Config) -> None:
    if not EVENTS.is_dir() or not FDL.is_dir():
        raise pytest.UsageError(
            f"shared fixtures not found at {EVENTS.parent}; clone next to ../shared or set OSCAR_STREAM_SHARED"
        )
