"""LocalExecutor: runs the service script with /bin/sh in a work folder, with the pod's very contract."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

from oscar_stream import metrics
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.jobs import job_name
from oscar_stream.core.results import ExecutorKind, Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.executors.base import Executor, Limiter, Permit, ResultSink
from oscar_stream.executors.process_guard import dies_with_worker
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
    kind: ExecutorKind = "local"

    def __init__(self, sink: ResultSink, limiter: Limiter, stores: Stores, work_root: Path) -> None:
        super().__init__(sink, limiter)
        self.stores = stores
        self.work_root = work_root

    async def start(self) -> None:
        await self.stores.prepare()

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
        if self.logs is not None and result.logs:
            result = replace(result, log=await self.logs.keep_file(service.name, job_name(service.name,
                                                                                        invocation.id),
                                                                   Path(result.logs)))
        await self.sink(result)

    async def _run_once(self, invocation: Invocation, service: ServiceSpec, attempt: int) -> Result:
        job_dir = self.work_root / service.name / invocation.id
        run_dir = job_dir / f"attempt-{attempt}"
        input_dir, output_dir, log = job_dir / "input", run_dir / "output", run_dir / "log.txt"
        # Small folder operations run inline: a thread hop costs more than they do (a retry's leftovers may not
        # be small: that case goes to a thread).
        staged = (await asyncio.to_thread(_prepare, input_dir, output_dir, True) if attempt
                  else _prepare(input_dir, output_dir, False))
        self.jobs.update(service.name, invocation.id, self.kind, "Running", start_time=now_rfc3339())
        started = Result(invocation.id, service.name, invocation.event.id, "failed", self.kind, job=str(run_dir),
                         logs=str(log), started_at=now_rfc3339(), event_time=invocation.event.time)
        try:
            # A retry reuses the input of the attempt before, unless the script changed it.
            input_file = staged
            if input_file is None:
                input_file = await download_input(invocation.event, self.stores, input_dir)
                if service.retries:
                    await asyncio.to_thread(_remember_input, input_file)
            await self._run_script(service, invocation, input_file, input_dir, output_dir, run_dir, log)
            outputs = await upload_outputs(output_dir, service.outputs, self.stores)
        except (StorageError, ScriptFailed) as err:
            return replace(started, reason=str(err), finished_at=now_rfc3339())
        _discard_input(input_dir)  # the input alone, as a rule: cheaper inline than a thread hop
        return replace(started, status="succeeded", finished_at=now_rfc3339(), outputs=outputs)

    async def _run_script(self, service: ServiceSpec, invocation: Invocation, input_file: Path, input_dir: Path,
                          output_dir: Path, run_dir: Path, log: Path) -> None:
        script = run_dir / "script.sh"
        script.write_text(service.script)
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env["HOME"] = str(run_dir)
        env.update(script_environment(service, invocation.event, str(input_file), str(input_dir), str(output_dir)))
        env.update(service.secrets)
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", str(script), cwd=run_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
            with dies_with_worker(proc):
                try:
                    async with asyncio.timeout(service.timeout_s):
                        code = await proc.wait()
                except TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
                    raise ScriptFailed(f"script timed out after {service.timeout_s}s (log: {log})") from None
        if code != 0:
            text = await asyncio.to_thread(log.read_text, errors="replace")
            tail = text.strip().splitlines()[-3:]
            raise ScriptFailed(f"script exited with code {code}: {' | '.join(tail) or 'no output'} (log: {log})")



def _staged_marker(input_dir: Path) -> Path:
    """Next to (not in) the script's input folder: the downloaded input's name, size and modification time."""
    return input_dir.parent / "input.staged"


def _prepare(input_dir: Path, output_dir: Path, retry: bool) -> Path | None:
    """A fresh output folder, and the input staged by an earlier attempt if it is still as downloaded (else a
    fresh input folder and None: the caller downloads it)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    marker = _staged_marker(input_dir)
    if retry and marker.exists():
        name, size, mtime = marker.read_text().rsplit(" ", 2)
        staged = input_dir / name
        with contextlib.suppress(OSError):
            stat = staged.stat()
            if (stat.st_size, stat.st_mtime_ns) == (int(size), int(mtime)) and len(list(input_dir.iterdir())) == 1:
                return staged
    marker.unlink(missing_ok=True)
    shutil.rmtree(input_dir, ignore_errors=True)
    input_dir.mkdir(parents=True)
    return None


def _discard_input(input_dir: Path) -> None:
    shutil.rmtree(input_dir, ignore_errors=True)
    _staged_marker(input_dir).unlink(missing_ok=True)


def _remember_input(staged: Path) -> None:
    stat = staged.stat()
    _staged_marker(staged.parent).write_text(f"{staged.name} {stat.st_size} {stat.st_mtime_ns}")
