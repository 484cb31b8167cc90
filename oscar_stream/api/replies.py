"""The shapes of the API's answers: compact JSON as OSCAR writes it, and the errors clients see."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from oscar_stream.http_replies import reply


def json_reply(status: int, document: Any) -> web.Response:
    """Compact JSON, as OSCAR writes it (clients match substrings such as ``"name":"oscar"``)."""
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json",
                        charset="utf-8")


def empty(status: int) -> web.Response:
    return web.Response(status=status)


def unauthorized(scheme: str) -> web.Response:
    return reply(401, "missing or wrong credentials", headers={"WWW-Authenticate": f'{scheme} realm="oscar-stream"'})


def method_not_allowed(path: str, allowed: str) -> web.Response:
    return reply(405, f"{path} accepts {allowed} only", headers={"Allow": allowed})
