"""Topic declarations (the repository's ``topics/`` folder) and the names they take under a prefix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class TopicFileError(Exception):
    pass


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9.{}_-]+$")
    description: str
    partitions: int = Field(ge=1)
    key: str
    config: dict[str, str] = Field(default_factory=dict)
    per_source: bool = False
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    def full_names(self, prefix: str, source_ids: list[str]) -> list[str]:
        if self.per_source:
            return [f"{prefix}.{self.name.format(source=sid)}" for sid in source_ids]
        return [f"{prefix}.{self.name}"]


def load_topic_specs(folder: Path) -> dict[str, TopicSpec]:
    """Every ``*.yaml`` in ``folder`` by file stem; errors name the file and the field."""
    specs: dict[str, TopicSpec] = {}
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise TopicFileError(f"no topic declarations (*.yaml) in {folder}; set topics_dir or OSCAR_STREAM_TOPICS_DIR")
    for path in files:
        try:
            specs[path.stem] = TopicSpec.model_validate(yaml.safe_load(path.read_text()))
        except yaml.YAMLError as err:
            raise TopicFileError(f"{path}: not valid YAML: {err}") from err
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise TopicFileError(f"{path}: {problems}") from err
    invocations, results = specs.get("invocations"), specs.get("results")
    if invocations and results and invocations.partitions != results.partitions:
        raise TopicFileError(f"{folder}: invocations.yaml declares {invocations.partitions} partitions and "
                             f"results.yaml {results.partitions}; they must be equal (results are placed by "
                             "invocation id, on the partition number of their invocation)")
    return specs


@dataclass(frozen=True)
class TopicNames:
    """The full topic names of one deployment (all of them share ``prefix``)."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def invocations(self) -> str:
        return f"{self.prefix}.invocations"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def services(self) -> str:
        return f"{self.prefix}.services"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def warm(self) -> str:
        return f"{self.prefix}.warm"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    def raw(self, source_id: str) -> str:
        return f"{self.prefix}.raw.{source_id}"

    def source_of_raw(self, topic: str) -> str | None:
        head = f"{self.prefix}.raw."
        return topic[len(head):] if topic.startswith(head) else None


def strimzi_topics(topics: dict[str, TopicSpec], replicas: int, cluster: str, namespace: str) -> list[dict[str, Any]]:
    """Strimzi KafkaTopic resources for the topics of one deployment (the Topic Operator creates them)."""
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": name.replace("_", "-").lower(), "namespace": namespace,
                         "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "oscar-stream"}},
            "spec": {"topicName": name, "partitions": spec.partitions, "replicas": replicas,
                     "config": dict(spec.config)},
        }
        for name, spec in sorted(topics.items())
    ]


AGENTS = ("normalize", "route", "launch")


def agent_group(app_id: str, agent: str) -> str:
    """The consumer group of one agent of a deployment (``app_id`` itself is the faust app's own group)."""
    return f"{app_id}-{agent}"
