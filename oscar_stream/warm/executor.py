"""WarmExecutor: an event's invocation runs on a warm replica of its service instead of a job of its own — the
same contract (input staged, outputs uploaded and published), the same result per invocation id."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import ExecutorKind, Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.executors.base import Limiter, ResultSink
from oscar_stream.executors.local import LocalExecutor
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.backend import WarmBackend


class WarmExecutor(LocalExecutor):
    """Retries, metrics and logs as the local executor's; one attempt is one request on a replica (local or in
    a pod). A replica that stops under a request raises, so the launch stage tries again; a script that fails or
    times out is the invocation's failed result."""

    kind: ExecutorKind = "warm"

    def __init__(self, sink: ResultSink, limiter: Limiter, stores: Stores, work_root: Path,
                 backend: WarmBackend) -> None:
        super().__init__(sink, limiter, stores, work_root)
        self.backend = backend

    async def _run_once(self, invocation: Invocation, service: ServiceSpec, attempt: int) -> Result:
        run_dir = self.work_root / service.name / invocation.id / f"attempt-{attempt}"
        log = run_dir / "log.txt"
        began = Result(invocation.id, service.name, invocation.event.id, "failed", self.kind, job=str(run_dir),
                       logs=str(log), started_at=now_rfc3339(), event_time=invocation.event.time)
        self.jobs.update(service.name, invocation.id, self.kind, "Running", start_time=began.started_at)
        outcome = await self.backend.invoke(service, invocation)
        run_dir.mkdir(parents=True, exist_ok=True)  # cheaper inline than a thread hop
        log.write_bytes(outcome.log)
        if outcome.error is not None:
            return replace(began, reason=f"{outcome.error} (log: {log})", finished_at=now_rfc3339())
        return replace(began, status="succeeded", finished_at=now_rfc3339(), outputs=outcome.outputs)
