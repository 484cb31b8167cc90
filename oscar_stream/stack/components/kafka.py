"""Apache Kafka 4.x, single node in KRaft mode, from jars resolved with Maven."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from oscar_stream.stack.artifacts import cached_dir, require_tool, run_logged
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.process import ProcessRecord, StackError, port_open, spawn, wait_until

_ASSETS = resources.files("oscar_stream.stack") / "assets" / "kafka"


def _pom() -> str:
    return (_ASSETS / "pom.xml").read_text()


class Kafka(Component):
    name = "kafka"

    def version(self) -> str:
        found = re.search(r"<kafka.version>([^<]+)</kafka.version>", _pom())
        assert found, "assets/kafka/pom.xml must set <kafka.version>"
        return found.group(1)

    def _libs(self, ctx: StackContext) -> Path:
        digest = hashlib.sha256(_pom().encode()).hexdigest()[:10]
        return ctx.cache_dir / f"kafka-{self.version()}-{digest}" / "libs"

    def install(self, ctx: StackContext) -> None:
        if self._libs(ctx).is_dir():
            return
        mvn = require_tool("mvn", "Install Maven (Debian package 'maven') and Java 17+.")
        require_tool("java", "Install a Java 17+ runtime (Debian package 'openjdk-17-jre-headless').")

        def build(tmp: Path) -> None:
            (tmp / "pom.xml").write_text(_pom())
            run_logged(
                [mvn, "-B", "-q", "-f", str(tmp / "pom.xml"), "dependency:copy-dependencies",
                 "-DincludeScope=runtime", f"-DoutputDirectory={tmp / 'libs'}"],
                ctx.log(self.name, "kafka-install"), ctx.progress, self.name,
                f"resolving Kafka {self.version()} jars with Maven",
            )

        cached_dir(ctx.cache_dir, self._libs(ctx).parent.name, build, ctx.progress, self.name)

    def _properties(self, ctx: StackContext, data: Path) -> str:
        s = ctx.settings
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{s.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "",
        ])

    def _java(self, ctx: StackContext, heap: str, *args: str) -> list[str]:
        java = require_tool("java", "Install a Java 17+ runtime.")
        log4j = ctx.workdir(self.name) / "log4j2.properties"
        return [java, f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self._libs(ctx)}/*", *args]

    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        work = ctx.workdir(self.name)
        data = work / "data"
        props = work / "server.properties"
        props.write_text(self._properties(ctx, data))
        shutil.copyfile(str(_ASSETS / "log4j2.properties"), work / "log4j2.properties")
        if not (data / "meta.properties").exists():
            with ctx.progress.step(self.name, "formatting storage (first start of this state dir)"):
                cluster_id = subprocess.run(
                    self._java(ctx, "256m", "kafka.tools.StorageTool", "random-uuid"),
                    check=True, capture_output=True, text=True,
                ).stdout.strip().splitlines()[-1]
                fmt = subprocess.run(
                    self._java(ctx, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id,
                               "-c", str(props), "--standalone"),
                    capture_output=True, text=True,
                )
                if fmt.returncode != 0:
                    raise StackError(f"kafka: formatting {data} failed:\n{fmt.stdout}\n{fmt.stderr}")
        log = ctx.log(self.name)
        marker = log.stat().st_size if log.exists() else 0
        record = spawn(self.name, self._java(ctx, ctx.settings.kafka_heap, "kafka.Kafka", str(props)), log)

        def started() -> bool:
            with log.open("rb") as handle:
                handle.seek(marker)
                return b"Kafka Server started" in handle.read()

        with ctx.progress.step(self.name, f"starting broker on 127.0.0.1:{ctx.settings.kafka_port}"):
            wait_until(record, started, 120, "the 'Kafka Server started' log line")
            wait_until(record, lambda: port_open("127.0.0.1", ctx.settings.kafka_port), 30, "its port")
        return [record]

    def health(self, ctx: StackContext) -> Health:
        address = f"127.0.0.1:{ctx.settings.kafka_port}"
        ok = port_open("127.0.0.1", ctx.settings.kafka_port)
        return Health(ok, f"Kafka {self.version()} (KRaft) {'accepting' if ok else 'not answering'} on {address}",
                      {"bootstrap_servers": address})
