"""The warm replicas' HTTP endpoint in a worker: ``POST /run/<service>`` (forwarded by a gateway, which checked
the client's service token) runs the script once on a warm replica and answers as OSCAR's supervisor does."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from oscar_stream import metrics
from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.launch.sync_answer import RAW_TYPE, decode_input, log_tail, sync_answer
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.pool import PoolBusy, PoolClosed, WarmPool
from oscar_stream.warm.pools import WarmPools
from oscar_stream.warm.replica import ReplicaGone

log = logging.getLogger(__name__)
INPUT_NAME_HEADER = "X-Oscar-Stream-Input-Name"
DEFAULT_TIMEOUT_S = 300.0
INLINE_BYTES = 1 << 20  # outputs up to this size are read inline: a thread hop costs more than reading them


class WarmEndpoint:
    def __init__(self, pools: WarmPools, service_of: Callable[[str], ServiceSpec | None], max_body: int) -> None:
        self.pools = pools
        self.service_of = service_of  # a warm service of this cluster, by name
        self.max_body = max_body
        self.token = secrets.token_hex(32)
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self, host: str, port: int, advertised: str | None) -> str:
        server = web.Server(self._handle, client_max_size=self.max_body + 1)
        runner = self._runner = web.ServerRunner(server, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        self.url = advertised or f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 2 or parts[0] != "run":
            return reply(404, "only POST /run/<service> is served here")
        if not secrets.compare_digest(bearer(request) or "", self.token):
            return reply(401, "this endpoint takes requests from oscar-stream's gateways only")
        service = self.service_of(parts[1])
        if service is None or service.warm is None:
            return reply(404, f"service {parts[1]!r} has no warm replicas here",
                         hint="give it 'warm:' (or 'synchronous:' in an FDL file) and apply it again")
        body = await read_body(request, self.max_body)
        if isinstance(body, web.Response):
            return body
        return await run_once(self.pools.pool(service), service, decode_input(body),
                              request.headers.get(INPUT_NAME_HEADER, "input"),
                              raw=request.headers.get("Accept", "") == RAW_TYPE)


async def run_once(pool: WarmPool, service: ServiceSpec, payload: bytes, input_name: str, raw: bool) -> web.Response:
    """One synchronous invocation on the pool: 200 with the answer, or why not."""
    name = Path(input_name).name or "input"
    started = time.monotonic()
    outcome = "failed"
    try:
        async with pool.request() as (replica, folder):
            input_dir, output_dir = folder / "input", folder / "output"
            (input_dir / name).write_bytes(payload)  # small (the body limit): cheaper inline than a thread hop
            code = await replica.run(folder, {"INPUT_FILE_PATH": str(input_dir / name),
                                              "TMP_INPUT_DIR": str(input_dir),
                                              "TMP_OUTPUT_DIR": str(output_dir)},
                                     service.timeout_s or DEFAULT_TIMEOUT_S)
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
        return reply(504, f"the script did not finish within {service.timeout_s or DEFAULT_TIMEOUT_S:g}s; its "
                          "replica was restarted")
    except (ReplicaGone, PoolClosed) as err:
        return reply(503, str(err), headers={"Retry-After": "1"})
    finally:
        metrics.count(metrics.WARM_REQUESTS, service.name, outcome)
        metrics.child(metrics.WARM_REQUEST_SECONDS, service.name).observe(time.monotonic() - started)


def _total_size(folder: Path) -> int:
    with os.scandir(folder) as entries:
        return sum(e.stat().st_size if e.is_file() else INLINE_BYTES for e in entries)


def _collect(folder: Path) -> tuple[bytes, list[tuple[str, bytes]]]:
    log_file, output_dir = folder / "log", folder / "output"
    logged = log_file.read_bytes() if log_file.exists() else b""
    outputs = [(p.relative_to(output_dir).as_posix(), p.read_bytes())
               for p in sorted(output_dir.rglob("*")) if p.is_file()]
    return logged, outputs
