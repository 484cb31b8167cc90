"""``oscar-stream topics``: declare the system's Kafka topics on a broker."""

from __future__ import annotations

import asyncio

import click
from aiokafka.errors import KafkaError

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.kafka.topics_admin import apply_topics, desired_topics
from oscar_stream.topics import TopicFileError


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


@topics_group.command("list")
@click.pass_context
@friendly_errors(TopicFileError)
def list_(ctx: click.Context) -> None:
    """Print the declared topics with their partitions and cleanup policy."""
    for name, spec in sorted(desired_topics(settings_from(ctx)).items()):
        click.echo(f"{name:<40} partitions={spec.partitions:<3} {spec.config.get('cleanup.policy', '')}")
