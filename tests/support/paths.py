"""Where the tests' own sample inputs live (``tests/data``, written for this project)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
EVENTS = DATA / "events"
FDL = DATA / "fdl"
