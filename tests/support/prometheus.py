"""Queries against the real Prometheus of the local stack."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp


async def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/api/v1/query",
                                                         params={"query": promql}) as response:
        body = await response.json()
    if body.get("status") != "success":
        raise AssertionError(f"Prometheus rejected {promql!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def wait_for_result(base_url: str, promql: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await query(base_url, promql)
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(1)
