"""OSCAR's ``Service`` JSON <-> :class:`ServiceSpec`, through the very validation ``oscar-stream validate`` and
``apply`` use (a service created through the API is the same thing as one applied from a file).

OSCAR's clients send the FDL entry of a service as JSON, the script inline; oscar-cli sends every field of its Go
struct, unset ones as zero values and nulls, which mean "not given" here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oscar_stream.config import StorageSettings
from oscar_stream.route.files import read_document
from oscar_stream.route.model import ServiceSpec
from oscar_stream.route.problems import Note, Problem
from oscar_stream.route.yaml_source import YamlDocument, format_path

REQUEST = Path("(request body)")
_QUANTITIES = ("cpu", "memory", "ephemeral_storage_request", "total_cpu", "total_memory")
_DEFAULT_CLUSTER = "oscar"  # OSCAR's FDL needs a cluster key; a deployment without a cluster_id has none


class InvalidService(ValueError):
    """The body is not a service oscar-stream can run; ``problems`` say where and what."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _unset(value: Any) -> bool:
    """oscar-cli's zero values: null, false, 0, "" and containers of nothing but those."""
    if isinstance(value, dict):
        return all(_unset(v) for v in value.values())
    if isinstance(value, list):
        return all(_unset(v) for v in value)
    return value in (None, False, 0, "")


def _given(body: dict[str, Any]) -> dict[str, Any]:
    """The fields that say something (quantities given as "" are OSCAR's defaults)."""
    given = {k: v for k, v in body.items() if not _unset(v) or k in ("name", "image", "script")}
    for key in _QUANTITIES:
        if given.get(key) == "":
            del given[key]
    return given


def _where(path: tuple[str | int, ...]) -> str:
    return format_path(path[4:]) if path[:2] == ("functions", "oscar") else format_path(path)


def _describe(item: Problem | Note) -> str:
    text = f"{_where(item.path)}: {item.message}"
    hint = getattr(item, "hint", "")
    return f"{text} ({hint})" if hint else text


def service_from_json(body: Any, cluster: str | None) -> tuple[ServiceSpec, list[Note]]:
    """The service in an API request body, checked as an FDL entry of ``cluster`` (notes and warnings too)."""
    if not isinstance(body, dict):
        raise InvalidService(["the service specification must be a JSON object"])
    doc = YamlDocument(REQUEST, {"functions": {"oscar": [{cluster or _DEFAULT_CLUSTER: _given(body)}]}})
    reader, found, _, _ = read_document(doc, scripts_inline=True)
    if reader.problems or not found:
        raise InvalidService([_describe(p) for p in reader.problems] or ["the service specification is empty"])
    [(spec, _)] = found
    if cluster is None:
        spec = ServiceSpec.from_record({**spec.to_record(with_version=False), "cluster": None})
    return spec, reader.notes


def describe_notes(notes: list[Note]) -> dict[str, list[str]]:
    return {level: [_describe(n) for n in notes if n.level == level] for level in ("warning", "note")}


def _location(storage: str, path: str, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> dict[str, Any]:
    location: dict[str, Any] = {"storage_provider": storage, "path": path}
    if prefixes:
        location["prefix"] = list(prefixes)
    if suffixes:
        location["suffix"] = list(suffixes)
    return location


def service_to_json(spec: ServiceSpec, token: str, store: StorageSettings | None) -> dict[str, Any]:
    """The service as OSCAR answers it: the fields as given, normalized paths, and what OSCAR's server adds
    (``token``, ``labels.oscar_service``, the default MinIO provider with hidden keys)."""
    default_minio: dict[str, Any] = {"endpoint": store.endpoint if store else "", "verify": store.verify_tls if store
                                     else True, "region": store.region if store else "", "access_key": "hidden",
                                     "secret_key": "hidden"}
    return {
        **spec.oscar_fields,
        "name": spec.name,
        "cluster_id": spec.cluster or "",
        "image": spec.image,
        "script": spec.script,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "enable_gpu": spec.gpus > 0,
        "log_level": spec.log_level or "INFO",
        "image_pull_secrets": list(spec.image_pull_secrets) or None,
        "environment": {"variables": dict(spec.variables), "secrets": dict.fromkeys(spec.secrets, "hidden")},
        "input": [_location(i.storage, i.path, i.prefixes, i.suffixes) for i in spec.inputs],
        "output": [_location(o.storage, o.path, o.prefixes, o.suffixes) for o in spec.outputs],
        "labels": {**spec.labels, "oscar_service": spec.name},
        "annotations": dict(spec.annotations),
        "token": token,
        "owner": "cluster_admin",
        "storage_providers": {"minio": {"default": default_minio}},
    }
