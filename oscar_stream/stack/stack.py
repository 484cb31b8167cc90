"""``oscar-stream stack up | down | status | logs``: the local stack's lifecycle, recorded in ``stack.json``."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from oscar_stream.config import Settings, SourceSettings
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.components.kafka import Kafka
from oscar_stream.stack.components.kubernetes import KubernetesControlPlane
from oscar_stream.stack.components.kubernetes_node import KubernetesNode
from oscar_stream.stack.components.prometheus import Prometheus
from oscar_stream.stack.components.versitygw import VersityGw
from oscar_stream.stack.process import ProcessRecord, StackError, terminate
from oscar_stream.stack.progress import Progress

_CONTROL_PLANE = KubernetesControlPlane()
COMPONENTS: dict[str, Component] = {
    c.name: c for c in (Kafka(), VersityGw(), Prometheus(), _CONTROL_PLANE, KubernetesNode(_CONTROL_PLANE))
}
_SLOW_BUILDS = ("kubernetes", "kubernetes-node")
DEFAULT_COMPONENTS = ("kafka", "s3", "prometheus")
ALL_COMPONENTS = tuple(COMPONENTS)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    health: Health
    pids: list[int]
    log: str


class Stack:
    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.ctx = StackContext(settings.stack, settings.kafka.topic_prefix, progress or Progress())

    @property
    def _state_file(self) -> Path:
        return self.settings.stack.state_dir / "stack.json"

    def _records(self) -> dict[str, list[ProcessRecord]]:
        if not self._state_file.exists():
            return {}
        raw = json.loads(self._state_file.read_text())
        return {name: [ProcessRecord(**r) for r in recs] for name, recs in raw.get("components", {}).items()}

    def _save(self, records: dict[str, list[ProcessRecord]]) -> None:
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "components": {name: [asdict(r) for r in recs] for name, recs in records.items()},
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.rename(self._state_file)

    def running(self, name: str) -> bool:
        recs = self._records().get(name, [])
        return bool(recs) and all(r.alive() for r in recs) and COMPONENTS[name].health(self.ctx).ok

    def up(self, names: tuple[str, ...] = DEFAULT_COMPONENTS) -> None:
        """Start what is not running yet (idempotent). Slow installs overlap with starting the fast parts."""
        unknown = set(names) - set(COMPONENTS)
        if unknown:
            raise StackError(f"unknown component(s) {sorted(unknown)}; choose from {list(COMPONENTS)}")
        ordered = _with_dependencies(names)
        progress = self.ctx.progress
        with ThreadPoolExecutor(max_workers=2) as pool:
            # The Kubernetes builds are the slow ones; they run beside the other components' start.
            slow: dict[str, Future[None]] = {
                n: pool.submit(COMPONENTS[n].install, self.ctx)
                for n in ordered
                if n in _SLOW_BUILDS and not self.running(n)
            }
            for name in ordered:
                component = COMPONENTS[name]
                if self.running(name):
                    progress.say(name, "already running")
                    component.refresh(self.ctx)
                    continue
                self.stop(name)
                if name in slow:
                    progress.say(name, "waiting for its build to finish")
                    slow[name].result()
                else:
                    component.install(self.ctx)
                started = component.start(self.ctx)
                records = self._records()
                records[name] = started
                self._save(records)
                if name == "kafka":
                    self._ensure_topics()
        progress.say("stack", f"up: {', '.join(ordered)} (state in {self.settings.stack.state_dir})")

    def _ensure_topics(self) -> None:
        """The deployment's topics, and the raw topic the stack's own S3 server writes its notifications to."""
        settings = self.settings
        stack_source = settings.stack.s3_source_id
        if all(source.id != stack_source for source in settings.sources):
            source = SourceSettings(id=stack_source, kind="s3", key_encoding="raw")
            settings = settings.model_copy(update={"sources": [*settings.sources, source]})
        changes = asyncio.run(apply_topics(settings))
        created = [c.topic for c in changes if c.action != "unchanged"]
        self.ctx.progress.say("kafka", f"topics ready ({len(changes)} declared, changed: {created or 'none'})")

    def stop(self, name: str) -> None:
        """Stop one component's (or adopted group's) processes and forget them."""
        records = self._records()
        for record in reversed(records.pop(name, [])):
            terminate(record)
        if name in COMPONENTS:
            COMPONENTS[name].stopped(self.ctx)
        self._save(records)

    def adopted(self, name: str) -> bool:
        """Whether processes recorded under ``name`` are still alive."""
        return any(r.alive() for r in self._records().get(name, []))

    def adopt(self, name: str, records: list[ProcessRecord]) -> None:
        """Processes started next to the stack (the demo's worker and gateway): recorded at once, so that
        ``down`` (or the next demo) stops them even when whoever started them was killed."""
        all_records = self._records()
        all_records[name] = records
        self._save(all_records)

    def down(self, names: tuple[str, ...] | None = None) -> list[str]:
        """Stop exactly the processes ``up`` (or ``adopt``) started (by pid), dependents first."""
        present = list(self._records())
        adopted = [n for n in present if n not in ALL_COMPONENTS and names is None]
        chosen = adopted + [n for n in reversed(ALL_COMPONENTS) if n in present and (names is None or n in names)]
        for name in chosen:
            self.ctx.progress.say(name, "stopping")
            self.stop(name)
        return chosen

    def status(self) -> list[ComponentStatus]:
        records = self._records()
        out = []
        for name, component in COMPONENTS.items():
            recs = records.get(name, [])
            alive = bool(recs) and all(r.alive() for r in recs)
            health = component.health(self.ctx) if alive else Health(False, "not started")
            out.append(ComponentStatus(name, alive and health.ok, health, [r.pid for r in recs],
                                       str(self.ctx.log(name))))
        return out

    def log_path(self, name: str) -> Path:
        if name not in COMPONENTS:
            raise StackError(f"unknown component {name!r}; choose from {list(COMPONENTS)}")
        return self.ctx.log(name)


def _with_dependencies(names: tuple[str, ...]) -> list[str]:
    out: list[str] = []

    def visit(name: str) -> None:
        for dep in COMPONENTS[name].needs:
            visit(dep)
        if name not in out:
            out.append(name)

    for name in ALL_COMPONENTS:
        if name in names:
            visit(name)
    return out
