"""CPU time from Linux's /proc: of the machine, of a process and of the children it waited for."""

from __future__ import annotations

import os
from pathlib import Path


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _ticks()


def children_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the children a running process has waited for (a worker's local scripts)."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / _ticks()


def machine_seconds() -> tuple[float, float]:
    """(busy, all) CPU time of every core since boot; busy is anything but idling and waiting for I/O."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy / _ticks(), (busy + idle + iowait) / _ticks()


def machine_busy_seconds() -> float:
    return machine_seconds()[0]
