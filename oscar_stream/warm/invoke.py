"""One request on a warm pool, the two ways one arrives: a synchronous call (bytes in, OSCAR's answer out) and
an event's invocation (input staged from storage, outputs uploaded). The worker runs these on its own pools; in a
pod, the dispatcher beside the user's container runs them on its one replica."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from oscar_stream import metrics
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import StoredObject
from oscar_stream.executors.staging import download_input, files_under, upload_outputs
from oscar_stream.http_replies import reply
from oscar_stream.launch.contract import contract_variables
from oscar_stream.launch.sync_answer import log_tail, sync_answer
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.pool import PoolBusy, PoolClosed, WarmPool
from oscar_stream.warm.replica import ReplicaGone, write_file

DEFAULT_TIMEOUT_S = 300.0
INLINE_BYTES = 1 << 20  # outputs up to this size are read inline: a thread hop costs more than reading them


@dataclass(frozen=True)
class Attempt:
    """How one invocation went on a replica: ``error`` None means the script succeeded and its outputs were
    uploaded."""

    error: str | None
    log: bytes = b""
    outputs: list[StoredObject] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps({"error": self.error, "log": self.log.decode(errors="replace"),
                             "outputs": [asdict(o) for o in self.outputs]})

    @classmethod
    def from_json(cls, payload: bytes) -> Attempt:
        raw: dict[str, Any] = orjson.loads(payload)
        return cls(raw["error"], raw["log"].encode(), [StoredObject(**o) for o in raw["outputs"]])


async def run_invocation(pool: WarmPool, service: ServiceSpec, invocation: Invocation, stores: Stores) -> Attempt:
    """Stage the input, run the script once, upload the outputs. A replica that stops under the request (or a
    version replaced while it waited) raises ReplicaGone/PoolClosed: the caller tries again."""
    started = time.monotonic()
    attempt = Attempt("the replica went away")
    try:
        attempt = await _attempt(pool, service, invocation, stores)
        return attempt
    finally:
        metrics.count(metrics.WARM_REQUESTS, service.name, "succeeded" if attempt.error is None else "failed")
        metrics.child(metrics.WARM_REQUEST_SECONDS, service.name).observe(time.monotonic() - started)


async def _attempt(pool: WarmPool, service: ServiceSpec, invocation: Invocation, stores: Stores) -> Attempt:
    async with pool.request(bounded=False) as (replica, folder):
        input_dir, output_dir = folder / "input", folder / "output"
        try:
            input_file = await download_input(invocation.event, stores, input_dir)
        except StorageError as err:
            return Attempt(str(err))
        variables = contract_variables(invocation.event, str(input_file), str(input_dir), str(output_dir))
        try:
            code = await replica.run(folder, variables, service.timeout_s)
        except TimeoutError:
            return Attempt(f"script timed out after {service.timeout_s}s on a warm replica (which was restarted)")
        logged = _read_log(folder)
        if code != 0:
            return Attempt(f"script exited with code {code}: {log_tail(logged, 3)}", logged)
        try:
            return Attempt(None, logged, await upload_outputs(output_dir, service.outputs, stores))
        except StorageError as err:
            return Attempt(str(err), logged)


async def run_sync(pool: WarmPool, service: ServiceSpec, payload: bytes, input_name: str, raw: bool) -> web.Response:
    """One synchronous invocation: 200 with the answer, or why not."""
    name = Path(input_name).name or "input"
    started = time.monotonic()
    outcome = "failed"
    timeout = service.timeout_s or DEFAULT_TIMEOUT_S
    try:
        async with pool.request(in_memory=True) as (replica, folder):  # its size is bounded by the body limit
            input_dir, output_dir = f"{folder}/input", f"{folder}/output"
            input_file = f"{input_dir}/{name}"
            write_file(input_file, payload)  # small (the body limit): cheaper inline than a thread hop
            code = await replica.run(folder, {"INPUT_FILE_PATH": input_file, "TMP_INPUT_DIR": input_dir,
                                              "TMP_OUTPUT_DIR": output_dir}, timeout)
            small = _total_size(output_dir) < INLINE_BYTES
            logged, outputs = _collect(folder) if small else await asyncio.to_thread(_collect, folder)
        if code != 0:
            return reply(502, f"the script exited with code {code}: {log_tail(logged)}", exit_code=code)
        body, content_type = sync_answer(outputs, logged, raw)
        outcome = "succeeded"
        return web.Response(body=body, headers={"Content-Type": content_type})
    except PoolBusy as err:
        outcome = "refused"
        return reply(429, str(err), headers={"Retry-After": "1"})
    except TimeoutError:
        outcome = "timeout"
        return reply(504, f"the script did not finish within {timeout:g}s; its replica was restarted")
    except (ReplicaGone, PoolClosed) as err:
        return reply(503, str(err), headers={"Retry-After": "1"})
    finally:
        metrics.count(metrics.WARM_REQUESTS, service.name, outcome)
        metrics.child(metrics.WARM_REQUEST_SECONDS, service.name).observe(time.monotonic() - started)


def _read_log(folder: Path) -> bytes:
    try:
        return _read(f"{folder}/log")
    except FileNotFoundError:
        return b""


def _total_size(folder: str) -> int:
    with os.scandir(folder) as entries:
        return sum(e.stat().st_size if e.is_file() else INLINE_BYTES for e in entries)


def _collect(folder: Path) -> tuple[bytes, list[tuple[str, bytes]]]:
    return _read_log(folder), [(name, _read(path)) for name, path in files_under(f"{folder}/output")]


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
