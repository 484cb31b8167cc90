"""Reading a batch/v1 Job as the API server sends it (JSON with camelCase fields, times as RFC 3339 text).

The executor's watch reads Jobs as plain dictionaries: turning every watch event into kubernetes-asyncio model
objects cost ~0.3 ms of CPU per event (several events per Job), as much as the rest of launching one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from oscar_stream.core.times import rfc3339


@dataclass(frozen=True)
class Finished:
    status: Literal["succeeded", "failed"]
    reason: str | None
    at: datetime | None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def time_text(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def finished(job: dict[str, Any]) -> Finished | None:
    """How the Job ended, or None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") != "True":
            continue
        at = parse_time(condition.get("lastTransitionTime"))
        if condition.get("type") == "Complete":
            return Finished("succeeded", None, at)
        if condition.get("type") == "Failed":
            return Finished("failed", f"{condition.get('reason')}: {condition.get('message')}", at)
    return None


def referenced_objects(job: dict[str, Any]) -> set[str]:
    """ConfigMap and Secret names the Job's pods mount or read."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    names: set[str] = set()
    for volume in pod.get("volumes") or ():
        if "configMap" in volume:
            names.add(volume["configMap"]["name"])
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
    for container in [*(pod.get("initContainers") or ()), *(pod.get("containers") or ())]:
        for source in container.get("envFrom") or ():
            for ref in ("configMapRef", "secretRef"):
                if ref in source:
                    names.add(source[ref]["name"])
    return names
