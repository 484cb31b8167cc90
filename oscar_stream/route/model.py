"""The typed model of services, their inputs and outputs: what routing tables and FDL files become."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import orjson

from oscar_stream.core.events import CREATED, EventType, StorageEvent
from oscar_stream.core.ids import identity_id

DEFAULT_CPU = "0.2"
DEFAULT_MEMORY = "256Mi"


def split_path(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


@dataclass(frozen=True, slots=True)
class InputSpec:
    """Objects under ``path`` on ``storage`` (bucket first for S3) whose relative name passes the filters."""

    storage: str
    path: str  # without leading, trailing or doubled slashes
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    events: frozenset[EventType] = frozenset({CREATED})

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", "/".join(split_path(self.path)))

    @property
    def segments(self) -> tuple[str, ...]:
        return split_path(self.path)

    def matches(self, event: StorageEvent) -> bool:
        """Assumes the event is on ``storage`` under ``path`` (the index checked that); applies the filters."""
        if event.type not in self.events:
            return False
        relative = event.path[len(self.path) + 1:] if self.path else event.path
        if self.prefixes and not relative.startswith(self.prefixes):
            return False
        if self.suffixes and not event.path.endswith(self.suffixes):
            return False
        return not self.globs or any(fnmatch.fnmatchcase(relative, g) for g in self.globs)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Files the script writes to $TMP_OUTPUT_DIR whose names pass the filters go to ``path`` on ``storage``."""

    storage: str
    path: str
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def accepts(self, file_name: str) -> bool:
        if self.prefixes and not file_name.startswith(self.prefixes):
            return False
        return not self.suffixes or file_name.endswith(self.suffixes)

    def object_path(self, relative_name: str) -> tuple[str | None, str]:
        """(bucket, key) for an output file; for WebDAV/dCache the bucket is None and the key absolute."""
        segments = split_path(self.path)
        if self.storage.startswith(("webdav.", "dcache.")):
            return None, "/" + "/".join((*segments, relative_name))
        return segments[0], "/".join((*segments[1:], relative_name))


@dataclass(frozen=True, slots=True)
class WarmSpec:
    """Warm replicas: long-lived copies of the service that run the script per request (``POST /run``) and, when
    ``take_events``, per routed event instead of one job each."""

    min_replicas: int = 0
    max_replicas: int = 4
    concurrency: int = 1  # requests one replica runs at once
    idle_s: float = 60.0  # a replica with nothing to do for this long is stopped (down to min_replicas)
    queue: int = 100  # requests that may wait for a free replica before the next one is refused (429)
    take_events: bool = True

    @property
    def capacity(self) -> int:
        return self.max_replicas * self.concurrency


@dataclass(frozen=True, slots=True)
class ExposeSpec:
    """An exposed service: the service's own long-running server on ``api_port`` (OSCAR's ``expose``), reached
    through the gateway at ``/system/services/<name>/exposed/...``."""

    api_port: int
    min_replicas: int = 1
    max_replicas: int = 1
    cpu_threshold: int = 80  # percent of the CPU request, the autoscaler's target on Kubernetes
    rewrite_target: bool = False  # the server sees the path after .../exposed (else the whole path)
    default_command: bool = False  # run the image's own command instead of the script (Kubernetes only)
    set_auth: bool = False  # requests need the service's token


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    script: str
    cluster: str | None = None
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    gpus: int = 0
    ephemeral_storage: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    concurrency: int = 10
    retries: int = 0
    backoff_s: float = 10.0
    timeout_s: int | None = None
    ttl_s: int = 3600
    log_level: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    not_used: tuple[str, ...] = ()  # OSCAR fields accepted from the file that oscar-stream does not implement
    oscar_fields: Mapping[str, Any] = field(default_factory=dict)  # those fields as given, to answer OSCAR's API
    token_nonce: str | None = None  # with the deployment's secret, derives the service's token (never stored)
    warm: WarmSpec | None = None
    expose: ExposeSpec | None = None

    @property
    def qualified(self) -> str:
        """The service's name with the cluster it runs on (``name@cluster``): the same name may be declared for
        several clusters (OSCAR's replicas), each a service of its own."""
        return f"{self.name}@{self.cluster}" if self.cluster else self.name

    @cached_property
    def version(self) -> str:
        """A content hash: any change to the definition (script included) gives a new version."""
        return identity_id(orjson.dumps(self.to_record(with_version=False), option=orjson.OPT_SORT_KEYS).decode())

    def to_record(self, with_version: bool = True) -> dict[str, Any]:
        """The JSON form published on the services topic."""
        record = asdict(self)
        record["inputs"] = [{**asdict(i), "events": sorted(i.events)} for i in self.inputs]
        record["variables"] = dict(self.variables)
        record["secrets"] = dict(self.secrets)
        record["labels"] = dict(self.labels)
        record["annotations"] = dict(self.annotations)
        record["oscar_fields"] = dict(self.oscar_fields)
        for optional in ("warm", "expose"):
            if record[optional] is None:
                del record[optional]  # a service without them keeps the version it had before they existed
        if with_version:
            record["version"] = self.version
        return record

    def redacted(self) -> dict[str, Any]:
        """The record for humans: secret values replaced."""
        record = self.to_record()
        record["secrets"] = dict.fromkeys(self.secrets, "***")
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ServiceSpec:
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        fields["inputs"] = tuple(
            InputSpec(
                storage=i["storage"], path=i["path"], prefixes=tuple(i.get("prefixes", ())),
                suffixes=tuple(i.get("suffixes", ())), globs=tuple(i.get("globs", ())),
                events=frozenset(i.get("events", (CREATED,))),
            )
            for i in record.get("inputs", ())
        )
        fields["outputs"] = tuple(
            OutputSpec(storage=o["storage"], path=o["path"], prefixes=tuple(o.get("prefixes", ())),
                       suffixes=tuple(o.get("suffixes", ())))
            for o in record.get("outputs", ())
        )
        if record.get("warm") is not None:
            fields["warm"] = WarmSpec(**record["warm"])
        if record.get("expose") is not None:
            fields["expose"] = ExposeSpec(**record["expose"])
        for name in ("image_pull_secrets", "not_used"):
            fields[name] = tuple(record.get(name, ()))
        return cls(**fields)


@dataclass(frozen=True)
class ClusterSpec:
    id: str
    endpoint: str | None  # None: left blank in the file, for the user to fill in
    auth_user: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    ssl_verify: bool = True


@dataclass(frozen=True)
class StorageProviderSpec:
    id: str  # "<type>.<name>", e.g. minio.default, webdav.dcache
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RoutingTable:
    services: tuple[ServiceSpec, ...]
    storage_providers: tuple[StorageProviderSpec, ...] = ()
    clusters: tuple[ClusterSpec, ...] = ()
