"""Configuration errors name the file and the field; Kubernetes quantities are checked before any API call."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from oscar_stream.config import ConfigError, load_settings
from oscar_stream.route.quantity import QuantityError, parse_quantity


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka: {bootstrap_servers: 'a:1', topic_prefix: p}\n")
    monkeypatch.setenv("OSCAR_STREAM_KAFKA__BOOTSTRAP_SERVERS", "b:2")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "b:2" and settings.kafka.topic_prefix == "p"
    assert settings.gateway.host == "127.0.0.1" and settings.metrics.host == "127.0.0.1"


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("gateway: {port: 99999}\nsources: [{id: 'no dots', kind: s3}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert str(config) in message and "gateway.port" in message and "sources.0.id" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    config.write_text("kafka: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config)


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sources: [{id: minio.default, token: very-secret}]\n")
    assert "very-secret" not in repr(load_settings(config))


def test_dcache_source_needs_url_and_subscriptions(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sources: [{id: webdav.dcache, kind: dcache}]\n")
    with pytest.raises(ConfigError, match="a dcache source needs 'url'"):
        load_settings(config)


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), ("256Mi", Decimal(2**28)), ("1.5Gi", Decimal(3 * 2**29)),
    ("1e3", Decimal(1000)), (0.5, Decimal("0.5"))])
def test_quantities(text: str | float, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["2 gigs", "", "-1", "1.2.3", "5Xi", "Mi"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
