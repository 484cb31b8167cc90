"""Prometheus from the distribution package, scraping targets listed in file_sd files of the state dir.

Adding a target is writing one JSON file (``add_scrape_target``); Prometheus notices the change on its own,
so the demo, the tests and ``oscar-stream`` processes can register their /metrics without a restart.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from oscar_stream.stack.artifacts import require_tool
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.process import ProcessRecord, spawn, wait_until

_INSTALL_HINT = "Install Debian's package: apt-get update && apt-get install -y prometheus"


def targets_dir(ctx: StackContext) -> Path:
    path = ctx.workdir("prometheus") / "targets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_scrape_target(state_dir: Path, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
    """Register ``address`` (host:port serving /metrics) under job ``oscar-stream``; returns the file written."""
    folder = state_dir / "prometheus" / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": {"instance_name": name, **(labels or {})}}]))
    tmp.rename(target)
    return target


def remove_scrape_target(state_dir: Path, name: str) -> None:
    (state_dir / "prometheus" / "targets" / f"{name}.json").unlink(missing_ok=True)


def _config(ctx: StackContext) -> str:
    interval = f"{ctx.settings.scrape_interval_s:g}s"
    return "\n".join([
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        "  - job_name: oscar-stream",
        "    file_sd_configs:",
        f"      - files: ['{targets_dir(ctx)}/*.json']",
        "        refresh_interval: 5s",
        "  - job_name: prometheus",
        "    static_configs:",
        f"      - targets: ['127.0.0.1:{ctx.settings.prometheus_port}']",
        "",
    ])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Prometheus(Component):
    name = "prometheus"

    def version(self) -> str:
        return "distribution package"

    def install(self, ctx: StackContext) -> None:
        require_tool("prometheus", _INSTALL_HINT)

    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        work = ctx.workdir(self.name)
        config = work / "prometheus.yml"
        config.write_text(_config(ctx))
        port = ctx.settings.prometheus_port
        argv = [
            require_tool("prometheus", _INSTALL_HINT),
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=2d",
            "--web.enable-lifecycle",
        ]
        with ctx.progress.step(self.name, f"starting Prometheus on 127.0.0.1:{port}"):
            record = spawn(self.name, argv, ctx.log(self.name))
            wait_until(record, lambda: _ready(port), 60, f"http://127.0.0.1:{port}/-/ready")
        return [record]

    def health(self, ctx: StackContext) -> Health:
        port = ctx.settings.prometheus_port
        ok = _ready(port)
        targets = sorted(p.stem for p in targets_dir(ctx).glob("*.json"))
        return Health(
            ok,
            f"Prometheus {'ready' if ok else 'not ready'} on 127.0.0.1:{port}; scrape targets: {targets or 'none'}",
            {"prometheus_url": f"http://127.0.0.1:{port}"},
        )
