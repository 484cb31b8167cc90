"""``oscar-stream topics``: declare the system's Kafka topics on a broker."""

from __future__ import annotations

import asyncio

import click
import yaml
from aiokafka.errors import KafkaError

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.kafka.topics_admin import apply_topics, desired_topics
from oscar_stream.topics import TopicFileError, strimzi_topics


@click.group("topics")
def topics_group() -> None:
    """Kafka topics declared in topics/."""


@topics_group.command("apply")
@click.pass_context
@friendly_errors(TopicFileError, KafkaError)
def apply(ctx: click.Context) -> None:
    """Create or update every declared topic (idempotent); print what changed."""
    settings = settings_from(ctx)
    for change in asyncio.run(apply_topics(settings)):
        click.echo(str(change))


@topics_group.command("strimzi")
@click.option("--cluster", default="kafka", show_default=True, help="the Strimzi Kafka cluster (strimzi.io/cluster)")
@click.option("--namespace", default="kafka", show_default=True, help="namespace of the Topic Operator")
@click.pass_context
@friendly_errors(TopicFileError)
def strimzi(ctx: click.Context, cluster: str, namespace: str) -> None:
    """Print the declared topics as Strimzi KafkaTopic resources (YAML)."""
    settings = settings_from(ctx)
    resources = strimzi_topics(desired_topics(settings), settings.kafka.replication_factor, cluster, namespace)
    click.echo(yaml.safe_dump_all(resources, sort_keys=False), nl=False)


@topics_group.command("list")
@click.pass_context
@friendly_errors(TopicFileError)
def list_(ctx: click.Context) -> None:
    """Print the declared topics with their partitions and cleanup policy."""
    for name, spec in sorted(desired_topics(settings_from(ctx)).items()):
        click.echo(f"{name:<40} partitions={spec.partitions:<3} {spec.config.get('cleanup.policy', '')}")
