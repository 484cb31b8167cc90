"""versitygw (Apache-2.0 S3 gateway) on a POSIX directory, sending bucket notifications to Kafka or a webhook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oscar_stream.stack.artifacts import cached_dir, require_tool, run_logged
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.process import ProcessRecord, port_open, spawn, wait_until

VERSITYGW_VERSION = "v1.8.0"
_MODULE = "github.com/versity/versitygw"


def versitygw_binary(ctx: StackContext) -> Path:
    return ctx.cache_dir / f"versitygw-{VERSITYGW_VERSION}" / "bin" / "versitygw"


def install_versitygw(ctx: StackContext, component: str) -> Path:
    binary = versitygw_binary(ctx)
    if binary.exists():
        return binary
    go = require_tool("go", "Install the Go toolchain (1.24 or newer).")

    def build(tmp: Path) -> None:
        ldflags = f"-s -w -X main.Version={VERSITYGW_VERSION} -X main.Build=release"
        run_logged(
            [go, "install", "-trimpath", f"-ldflags={ldflags}", f"{_MODULE}/cmd/versitygw@{VERSITYGW_VERSION}"],
            ctx.log(component, "versitygw-install"), ctx.progress, component,
            f"building versitygw {VERSITYGW_VERSION} with go install",
            env={"GOBIN": str(tmp / "bin")},
        )

    cached_dir(ctx.cache_dir, binary.parent.parent.name, build, ctx.progress, component)
    return binary


@dataclass(frozen=True)
class S3Notify:
    """Where versitygw sends bucket notifications: a Kafka topic, or a webhook URL (or neither)."""

    kafka_bootstrap: str | None = None
    kafka_topic: str | None = None
    webhook_url: str | None = None


def versitygw_argv(binary: Path, port: int, root: Path, notify: S3Notify) -> list[str]:
    # --keep-alive: as MinIO and AWS do; without it versitygw closes the connection after every request.
    argv = [str(binary), "--port", f"127.0.0.1:{port}", "--quiet", "--health", "/health", "--keep-alive"]
    if notify.kafka_topic and notify.kafka_bootstrap:
        argv += ["--event-kafka-url", notify.kafka_bootstrap, "--event-kafka-topic", notify.kafka_topic,
                 "--event-kafka-key", "versitygw"]
    if notify.webhook_url:
        argv += ["--event-webhook-url", notify.webhook_url]
    return [*argv, "posix", str(root)]


def start_versitygw(
    ctx: StackContext, component: str, port: int, root: Path, notify: S3Notify, log: Path
) -> ProcessRecord:
    """Start one versitygw; credentials go through the environment, never the command line."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "ROOT_ACCESS_KEY": ctx.settings.s3_access_key,
        "ROOT_SECRET_KEY": ctx.settings.s3_secret_key.get_secret_value(),
    }
    record = spawn(component, versitygw_argv(versitygw_binary(ctx), port, root, notify), log, env=env)
    wait_until(record, lambda: port_open("127.0.0.1", port), 60, f"S3 port 127.0.0.1:{port}")
    return record


class VersityGw(Component):
    name = "s3"
    needs = ("kafka",)

    def version(self) -> str:
        return VERSITYGW_VERSION

    def install(self, ctx: StackContext) -> None:
        install_versitygw(ctx, self.name)

    def notify(self, ctx: StackContext) -> S3Notify:
        return S3Notify(
            kafka_bootstrap=f"127.0.0.1:{ctx.settings.kafka_port}",
            kafka_topic=f"{ctx.topic_prefix}.raw.{ctx.settings.s3_source_id}",
        )

    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        port = ctx.settings.s3_port
        with ctx.progress.step(self.name, f"starting versitygw on 127.0.0.1:{port}"):
            record = start_versitygw(
                ctx, self.name, port, ctx.workdir(self.name) / "buckets", self.notify(ctx), ctx.log(self.name)
            )
        return [record]

    def health(self, ctx: StackContext) -> Health:
        port = ctx.settings.s3_port
        ok = port_open("127.0.0.1", port)
        notify = self.notify(ctx)
        return Health(
            ok,
            f"versitygw {VERSITYGW_VERSION} {'serving' if ok else 'not answering'} S3 on 127.0.0.1:{port}; "
            f"notifications -> Kafka topic {notify.kafka_topic}",
            {"s3_endpoint": f"http://127.0.0.1:{port}", "notification_topic": notify.kafka_topic or ""},
        )
