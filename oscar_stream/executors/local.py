"""LocalExecutor: runs the service script with /bin/sh in a work folder, with the pod's very contract."""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from oscar_stream import metrics
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.executors.base import Executor, Limiter, Permit, ResultSink
from oscar_stream.executors.staging import download_input, upload_outputs
from oscar_stream.launch.contract import script_environment
from oscar_stream.retry import Backoff
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores

_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class ScriptFailed(Exception):
    pass


class LocalExecutor(Executor):
    kind = "local"

    def __init__(self, sink: ResultSink, limiter: Limiter, stores: Stores, work_root: Path) -> None:
        super().__init__(sink, limiter)
        self.stores = stores
        self.work_root = work_root

    async def launch(self, invocation: Invocation, service: ServiceSpec, permit: Permit) -> None:
        """Runs the job to its end (with the service's retries) and publishes the result before returning.

        Between two attempts the job holds no slot of its service: a failing service that waits out its
        backoff leaves its slots to the invocations queued behind it."""
        labels = (service.name, self.kind)
        metrics.JOBS_LAUNCHED.labels(*labels).inc()
        started = time.monotonic()
        backoff = Backoff(service.backoff_s, cap_s=3600.0)
        attempt = 0
        while True:
            metrics.JOBS_ACTIVE.labels(*labels).inc()
            try:
                result = await self._run_once(invocation, service, attempt)
            finally:
                metrics.JOBS_ACTIVE.labels(*labels).dec()
                permit.release()
            if result.status == "succeeded" or attempt >= service.retries:
                break
            attempt += 1
            metrics.JOBS_RETRIED.labels(*labels).inc()
            await backoff.wait()
            permit = await self.limiter.acquire(service.name)
        metrics.JOB_DURATION.labels(*labels).observe(time.monotonic() - started)
        (metrics.JOBS_SUCCEEDED if result.status == "succeeded" else metrics.JOBS_FAILED).labels(*labels).inc()
        await self.sink(result)

    async def _run_once(self, invocation: Invocation, service: ServiceSpec, attempt: int) -> Result:
        run_dir = self.work_root / service.name / invocation.id / f"attempt-{attempt}"
        input_dir, output_dir, log = run_dir / "input", run_dir / "output", run_dir / "log.txt"
        await asyncio.to_thread(_fresh_dirs, input_dir, output_dir)
        started = Result(invocation.id, service.name, invocation.event.id, "failed", self.kind, job=str(run_dir),
                         logs=str(log), started_at=now_rfc3339(), event_time=invocation.event.time)
        try:
            input_file = await download_input(invocation.event, self.stores, input_dir)
            await self._run_script(service, invocation, input_file, input_dir, output_dir, run_dir, log)
            outputs = await upload_outputs(output_dir, service.outputs, self.stores)
        except (StorageError, ScriptFailed) as err:
            return replace(started, reason=str(err), finished_at=now_rfc3339())
        await asyncio.to_thread(shutil.rmtree, input_dir, True)
        return replace(started, status="succeeded", finished_at=now_rfc3339(), outputs=outputs)

    async def _run_script(self, service: ServiceSpec, invocation: Invocation, input_file: Path, input_dir: Path,
                          output_dir: Path, run_dir: Path, log: Path) -> None:
        script = run_dir / "script.sh"
        await asyncio.to_thread(script.write_text, service.script)
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env["HOME"] = str(run_dir)
        env.update(script_environment(service, invocation.event, str(input_file), str(input_dir), str(output_dir)))
        env.update(service.secrets)
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", str(script), cwd=run_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_worker,
            )
            try:
                code = await asyncio.wait_for(proc.wait(), timeout=service.timeout_s)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                raise ScriptFailed(f"script timed out after {service.timeout_s}s (log: {log})") from None
            except asyncio.CancelledError:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
        if code != 0:
            text = await asyncio.to_thread(log.read_text, errors="replace")
            tail = text.strip().splitlines()[-3:]
            raise ScriptFailed(f"script exited with code {code}: {' | '.join(tail) or 'no output'} (log: {log})")


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_worker() -> None:
    """In the script's process, before it starts: be killed when the worker dies (even by kill -9), as a
    pod's processes are. The partition's new owner runs the invocation again; an orphan must not race it."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _fresh_dirs(*dirs: Path) -> None:
    for folder in dirs:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
