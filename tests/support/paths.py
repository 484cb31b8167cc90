"""Where the shared sample inputs live (``../shared`` beside the clone, as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("OSCAR_STREAM_SHARED", REPO.parent / "shared"))
EVENTS = SHARED / "fixtures" / "events"
FDL = SHARED / "fixtures" / "fdl"
