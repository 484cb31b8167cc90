"""faust topic objects for byte keys and values (oscar-stream serializes with orjson itself)."""

from __future__ import annotations

from typing import Any

import faust


def byte_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
