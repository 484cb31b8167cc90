"""What a worker reports on /readyz and /healthz, from what its parts say about themselves.

Each long-running part (an agent, the services table, the Kubernetes watch) is a :class:`Component` that
steps (``beat``) every time its loop turns and says whether it is working or recovering (reconnecting after
Kafka or the Kubernetes API went away). Every wait inside those loops has a deadline, so a part that stops
stepping is stuck, not waiting: it makes the worker unready, and after twice as long unhealthy, so that
Kubernetes restarts it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["starting", "running", "recovering"]


@dataclass
class Component:
    name: str
    state: State = "starting"
    detail: str = ""
    last_step: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last_step = time.monotonic()

    def running(self, detail: str = "") -> None:
        self.state, self.detail = "running", detail
        self.beat()

    def recovering(self, detail: str) -> None:
        self.state, self.detail = "recovering", detail
        self.beat()

    def silent_for(self, now: float) -> float:
        return now - self.last_step


@dataclass
class Health:
    stall_timeout_s: float
    components: dict[str, Component] = field(default_factory=dict)

    def component(self, name: str) -> Component:
        return self.components.setdefault(name, Component(name))

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        parts = {c.name: {"state": c.state, "silent_s": round(c.silent_for(now), 1),
                          **({"detail": c.detail} if c.detail else {})} for c in self.components.values()}
        ready = bool(self.components) and all(
            c.state == "running" and c.silent_for(now) < self.stall_timeout_s for c in self.components.values())
        alive = all(c.silent_for(now) < 2 * self.stall_timeout_s for c in self.components.values())
        return {"ready": ready, "alive": alive, "components": parts}
