"""WarmExecutor: an event's invocation runs on a warm replica of its service instead of a job of its own — the
same contract (input staged, outputs uploaded and published), the same result per invocation id."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import ExecutorKind, Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.executors.base import Limiter, ResultSink
from oscar_stream.executors.local import LocalExecutor, ScriptFailed
from oscar_stream.executors.staging import download_input, upload_outputs
from oscar_stream.launch.contract import contract_variables
from oscar_stream.launch.sync_answer import log_tail
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.pools import WarmPools


class WarmExecutor(LocalExecutor):
    """Retries, metrics and logs as the local executor's; one attempt is one request on a replica.

    A replica that stops under a request (or a version replaced while it waited) raises, so the launch stage
    tries again; a script that fails or times out is the invocation's failed result."""

    kind: ExecutorKind = "warm"

    def __init__(self, sink: ResultSink, limiter: Limiter, stores: Stores, work_root: Path, pools: WarmPools) -> None:
        super().__init__(sink, limiter, stores, work_root)
        self.pools = pools

    async def _run_once(self, invocation: Invocation, service: ServiceSpec, attempt: int) -> Result:
        run_dir = self.work_root / service.name / invocation.id / f"attempt-{attempt}"
        log = run_dir / "log.txt"
        began = Result(invocation.id, service.name, invocation.event.id, "failed", self.kind, job=str(run_dir),
                       logs=str(log), started_at=now_rfc3339(), event_time=invocation.event.time)
        try:
            async with self.pools.pool(service).request(bounded=False) as (replica, folder):
                self.jobs.update(service.name, invocation.id, self.kind, "Running", start_time=now_rfc3339())
                input_dir, output_dir = folder / "input", folder / "output"
                input_file = await download_input(invocation.event, self.stores, input_dir)
                try:
                    code = await replica.run(folder, contract_variables(
                        invocation.event, str(input_file), str(input_dir), str(output_dir)), service.timeout_s)
                except TimeoutError:
                    raise ScriptFailed(f"script timed out after {service.timeout_s}s on a warm replica (which was "
                                       "restarted)") from None
                finally:
                    run_dir.mkdir(parents=True, exist_ok=True)  # cheaper inline than a thread hop
                    with contextlib.suppress(OSError):  # a replica stopped on a timeout takes its folder along
                        os.replace(folder / "log", log)
                if code != 0:
                    raise ScriptFailed(f"script exited with code {code}: {log_tail(log.read_bytes(), 3)} (log: {log})")
                outputs = await upload_outputs(output_dir, service.outputs, self.stores)
        except (StorageError, ScriptFailed) as err:
            return replace(began, reason=str(err), finished_at=now_rfc3339())
        return replace(began, status="succeeded", finished_at=now_rfc3339(), outputs=outputs)
