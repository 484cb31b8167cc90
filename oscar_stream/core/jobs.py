"""What OSCAR's API calls a job: one invocation of one service, its state, its times and where its log is.

The launch stage writes a record at each step (queued, running, ended) to the compacted jobs topic; every
gateway replica follows that topic to answer ``GET /system/logs/<service>``. A job's name is derived from its
invocation id (``<service>-<first 23 hex digits>``), so it is the same for both executors, it is the name of the
Kubernetes Job, and it starts with ``<service>-`` as OSCAR's clients expect.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.times import parse_time, rfc3339_seconds

JobStatus = Literal["Pending", "Running", "Succeeded", "Failed"]
FINISHED: frozenset[str] = frozenset({"Succeeded", "Failed"})
_DNS = re.compile(r"[^a-z0-9-]+")


def job_name(service: str, invocation_id: str) -> str:
    """DNS-1123, at most 63 characters: a redelivered invocation gets the same name."""
    prefix = _DNS.sub("-", service.lower()).strip("-")[:39]
    return f"{prefix}-{invocation_id[:23]}"


@dataclass(frozen=True)
class LogLocation:
    storage: str
    bucket: str | None
    key: str


@dataclass(frozen=True)
class JobRecord:
    job: str
    service: str
    invocation_id: str
    status: JobStatus
    executor: str
    creation_time: str
    start_time: str | None = None
    finish_time: str | None = None
    reason: str | None = None
    logs: LogLocation | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, payload: bytes) -> JobRecord:
        try:
            doc: dict[str, Any] = orjson.loads(payload)
            logs = doc.get("logs")
            doc["logs"] = LogLocation(**logs) if isinstance(logs, dict) else None
            return cls(**doc)
        except (orjson.JSONDecodeError, TypeError) as err:
            raise InvalidEvent(f"not a job record: {err}") from err

    def oscar_info(self) -> dict[str, str]:
        """OSCAR's JobInfo: the status and the times that are known, in seconds as OSCAR writes them (never a
        null: clients read it literally)."""
        info = {"status": self.status, "creation_time": _seconds(self.creation_time)}
        if self.start_time:
            info["start_time"] = _seconds(self.start_time)
        if self.finish_time:
            info["finish_time"] = _seconds(self.finish_time)
        return info


def _seconds(moment: str) -> str:
    return rfc3339_seconds(parse_time(moment)) if moment else moment
