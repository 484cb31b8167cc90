"""Where the machine's CPU went during a demo run: the scripts, oscar-stream's worker and gateway, the rest."""

from __future__ import annotations

from dataclasses import dataclass

from oscar_stream.observe.cpu import children_cpu_seconds, machine_seconds, process_cpu_seconds


@dataclass(frozen=True)
class CpuSample:
    busy: float
    total: float
    worker: float
    scripts: float  # the worker's children it waited for: its local scripts
    gateway: float

    @classmethod
    def now(cls, worker_pid: int, gateway_pid: int) -> CpuSample:
        busy, total = machine_seconds()
        return cls(busy, total, process_cpu_seconds(worker_pid), children_cpu_seconds(worker_pid),
                   process_cpu_seconds(gateway_pid))


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds spent between two samples."""

    cores_seconds: float
    scripts: float
    worker: float
    gateway: float
    rest: float  # Kafka, the S3 server, this command and anything else on the machine
    idle: float

    @classmethod
    def between(cls, start: CpuSample, end: CpuSample) -> CpuSplit:
        busy = end.busy - start.busy
        scripts, worker, gateway = end.scripts - start.scripts, end.worker - start.worker, end.gateway - start.gateway
        return cls(end.total - start.total, scripts, worker, gateway, max(0.0, busy - scripts - worker - gateway),
                   max(0.0, end.total - start.total - busy))

    def line(self) -> str:
        parts = {"scripts": self.scripts, "worker": self.worker, "gateway": self.gateway,
                 "Kafka, S3 and the rest": self.rest, "idle": self.idle}
        share = ", ".join(f"{name} {seconds:.1f}s ({seconds / max(self.cores_seconds, 1e-9):.0%})"
                          for name, seconds in parts.items())
        return f"  CPU of all cores during the run ({self.cores_seconds:.1f}s): {share}"
