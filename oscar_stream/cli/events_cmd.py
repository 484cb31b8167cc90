"""``oscar-stream events parse``: what a store's payload becomes, to debug what a store sends."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from oscar_stream.config import SourceSettings
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.times import now_rfc3339
from oscar_stream.ingest.sse import SseParser
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification

SOURCE_KINDS = ("minio", "aws", "s3", "versitygw", "dcache")


def parse_payload_file(
    file: Path, kind: str, storage: str | None, dcache_path: str | None
) -> tuple[list[StorageEvent], list[str]]:
    """Canonical events of a payload file, and the dead-letter reasons of what could not be used."""
    payload = file.read_bytes()
    events: list[StorageEvent] = []
    failures: list[str] = []
    received = now_rfc3339()
    if kind == "dcache":
        parser = SseParser()
        for message in parser.feed(payload + b"\n\n"):
            context = SseContext(message.event, message.id, channel=str(file), path=dcache_path)
            try:
                outcome = parse_dcache_message(message.data.encode(), context, storage or "webdav.dcache",
                                               received)
            except ParseError as err:
                failures.append(f"message id {message.id}: {err}")
                continue
            events += outcome.events
            if outcome.ignored:
                click.echo(f"ignored: message id {message.id}: {outcome.ignored}", err=True)
        return events, failures
    source = SourceSettings(id=storage or "minio.default", kind="s3",
                            key_encoding="raw" if kind == "versitygw" else "url")
    try:
        outcome = parse_s3_notification(payload, source.id, source.key_encoding, received)
    except ParseError as err:
        return [], [str(err)]
    if outcome.ignored:
        click.echo(f"ignored: {outcome.ignored}", err=True)
    return outcome.events, outcome.rejects


@click.group("events")
def events_group() -> None:
    """Storage events: parse what a store sends."""


@events_group.command("parse")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--source", "kind", type=click.Choice(SOURCE_KINDS), default="minio", show_default=True,
              help="who sent it: minio/aws/s3 (URL-encoded keys), versitygw (raw keys), dcache (SSE text)")
@click.option("--storage", default=None, help="storage id to stamp on the events (default minio.default, "
                                               "or webdav.dcache for dcache)")
@click.option("--dcache-path", default=None, help="for dcache: the folder the subscription watches")
def parse(file: Path, kind: str, storage: str | None, dcache_path: str | None) -> None:
    """Print the canonical events FILE becomes (JSON lines); exit 1 with the reason if it is dead-lettered."""
    events, failures = parse_payload_file(file, kind, storage, dcache_path)
    for event in events:
        click.echo(event.to_json().decode())
    for failure in failures:
        click.echo(f"dead-letter: {failure}", err=True)
    if failures:
        sys.exit(1)
