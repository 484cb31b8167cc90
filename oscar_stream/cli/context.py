"""Shared CLI plumbing: settings loading and turning known errors into a clear message and exit code."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from oscar_stream.config import ConfigError, Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")


class UserFacingError(Exception):
    """An error whose message already tells the user what to do; printed without a traceback."""


def settings_from(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        config: Path | None = obj.get("config")
        obj["settings"] = load_settings(config)
    settings: Settings = obj["settings"]
    return settings


def quiet_kafka_client() -> None:
    """For commands that report progress themselves: aiokafka logs the transient errors it retries anyway
    (no leader yet for a new topic, a group coordinator still loading) as ERROR lines a user cannot act on."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def friendly_errors(*kinds: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Print ``error: <message>`` and exit 1 for the given exception types (plus configuration errors)."""
    handled: tuple[type[Exception], ...] = (ConfigError, UserFacingError, *kinds)

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except handled as err:
                click.echo(f"error: {err}", err=True)
                sys.exit(1)

        return inner

    return wrap
