"""Small HTTP pieces the gateway's endpoints share: JSON replies, bodies read within a limit, bearer tokens."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def reply(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.Response(body=orjson.dumps({"status": status, "message": message, **extra}), status=status,
                        content_type="application/json", headers=headers)


def unavailable() -> web.Response:
    return reply(503, "Kafka is unavailable; retry later", headers={"Retry-After": "5"})


async def read_body(request: web.BaseRequest, limit: int) -> bytes | web.Response:
    """The whole body, or a 413 reply when it is over ``limit`` bytes (declared or, when chunked, as read)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return reply(413, f"body of {declared} bytes is over the limit of {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        return reply(413, f"body is over the limit of {limit} bytes")
    return body


def bearer(request: web.BaseRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None
