"""What every stack component provides: install (cached), start (and wait until ready), health."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from oscar_stream.config import StackSettings
from oscar_stream.stack.process import ProcessRecord
from oscar_stream.stack.progress import Progress


@dataclass(frozen=True)
class StackContext:
    settings: StackSettings
    topic_prefix: str
    progress: Progress

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    def workdir(self, component: str) -> Path:
        path = self.state_dir / component
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, component: str, name: str | None = None) -> Path:
        return self.state_dir / "logs" / f"{name or component}.log"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    endpoints: dict[str, str] = field(default_factory=dict)


class Component(ABC):
    name: str
    needs: tuple[str, ...] = ()

    @abstractmethod
    def install(self, ctx: StackContext) -> None:
        """Make the component's binaries available (cached, keyed on version). May be slow the first time."""

    @abstractmethod
    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        """Start the component's processes and return once it is ready to serve."""

    @abstractmethod
    def health(self, ctx: StackContext) -> Health:
        """Probe the running component (without starting anything)."""

    def refresh(self, ctx: StackContext) -> None:  # noqa: B027  # an optional hook, empty for most components
        """Bring a running component up to date with what was built since it started (cheap when nothing was)."""

    def stopped(self, ctx: StackContext) -> None:  # noqa: B027  # an optional hook, empty for most components
        """Clean up what outlives the component's processes (none do, unless a component says otherwise)."""

    def version(self) -> str:
        return ""
