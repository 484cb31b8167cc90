"""The one place for configuration: environment variables (``OSCAR_STREAM_*``) over a YAML file over defaults.

Nested fields use ``__`` in environment variables, e.g. ``OSCAR_STREAM_KAFKA__BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from oscar_stream.core.errors import OscarStreamError

CONFIG_ENV = "OSCAR_STREAM_CONFIG"
_REPO_TOPICS = Path(__file__).resolve().parent.parent / "topics"
STORAGE_ID_PATTERN = r"^[a-z][a-z0-9]*\.[A-Za-z0-9][A-Za-z0-9_-]*$"


class ConfigError(OscarStreamError):
    """Configuration that cannot be used; the message names the file, the field and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def _writable_folder(folder: Path) -> Path | None:
    return folder if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else None


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = Field(default="oscar", pattern=r"^[A-Za-z0-9._-]+$")
    client_id: str = "oscar-stream"
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    session_timeout_s: float = Field(
        default=6.0, ge=1, description="how long a silent consumer keeps its partitions before others take them over "
                                       "(the broker's group.min.session.timeout.ms is 6 s by default)")
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="consumer heartbeat: a member learns of a rebalance at its next heartbeat")
    delivery_timeout_s: float = Field(
        default=30.0, gt=0, description="longest wait for Kafka to acknowledge a write before the client is rebuilt")


class DcachePath(_Section):
    path: str = Field(pattern=r"^/")
    flags: list[str] = Field(default_factory=lambda: ["IN_CLOSE_WRITE", "IN_MOVED_TO"])


class SourceSettings(_Section):
    """A storage system that notifies oscar-stream. Its raw records land on ``<prefix>.raw.<id>``."""

    id: str = Field(pattern=STORAGE_ID_PATTERN, description="storage id as FDL files name it, e.g. minio.default")
    kind: Literal["s3", "dcache"] = "s3"
    token: SecretStr | None = Field(default=None, description="bearer token required by the webhook gateway")
    key_encoding: Literal["url", "raw"] = Field(
        default="url", description="'url': object keys arrive URL-encoded (MinIO, AWS); 'raw': as stored"
    )
    url: str | None = Field(default=None, description="dCache frontend base URL, e.g. https://host:3880")
    client_id: str | None = Field(default=None, description="dCache channel client-id, to find the channel again")
    subscriptions: list[DcachePath] = Field(default_factory=list)
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    verify_tls: bool = True

    @model_validator(mode="after")
    def _dcache_needs_url(self) -> SourceSettings:
        if self.kind == "dcache" and (not self.url or not self.subscriptions):
            raise ValueError("a dcache source needs 'url' and at least one entry in 'subscriptions'")
        return self


class StorageSettings(_Section):
    """Where inputs are read and outputs written: S3 endpoints and WebDAV doors, by storage id."""

    id: str = Field(pattern=STORAGE_ID_PATTERN)
    kind: Literal["s3", "webdav"] = "s3"
    endpoint: str
    access_key: str | None = None
    secret_key: SecretStr | None = None
    region: str = "us-east-1"
    verify_tls: bool = True
    username: str | None = None
    password: SecretStr | None = None


class GatewaySettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=18470, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_000_000, gt=0, le=1_000_000,
                                description="largest body accepted; with the record's headers it must fit one "
                                            "Kafka request (1 MiB)")
    kafka_timeout_s: float = Field(default=10.0, gt=0)
    cluster_token: SecretStr | None = Field(
        default=None, description="token other clusters present to POST /v1/events (cross-cluster pipelines)"
    )


class ApiSettings(_Section):
    """OSCAR's Manager API on the gateway (``/system/...``, ``/job/<service>``): off unless credentials are set."""

    username: str | None = Field(default=None, description="HTTP Basic user for /system/... (OSCAR's OSCAR_USERNAME)")
    password: SecretStr | None = None
    token_secret: SecretStr | None = Field(
        default=None, description="derives each service's token (with a nonce kept in the service's record): the "
                                  "same on every gateway replica; changing it changes every service's token")
    storage: str | None = Field(
        default=None, pattern=STORAGE_ID_PATTERN,
        description="the S3 store OSCAR's clients are pointed at (minio_provider): input buckets are created there, "
                    "and job payloads and logs are kept there (default: the first S3 storage)")
    bucket: str = Field(default="oscar-stream", description="bucket for job payloads (jobs/) and job logs (logs/)")
    name: str = Field(default="oscar", description="the cluster name /system/config reports")

    @property
    def enabled(self) -> bool:
        return self.username is not None and self.password is not None and self.token_secret is not None


class ClusterSettings(_Section):
    """Another cluster running oscar-stream: events for its services are forwarded to its gateway."""

    id: str
    gateway_url: str = Field(description="base URL of the remote oscar-stream gateway")
    token: SecretStr = Field(description="the remote gateway's cluster_token")
    verify_tls: bool = True


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=18471, ge=0, le=65535)


class KubernetesSettings(_Section):
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str = "oscar-stream"
    max_requests_per_second: float = Field(default=50.0, gt=0)
    helper_image: str = "ghcr.io/oscar-stream/oscar-stream:0.1.0"
    host_network: bool = Field(default=False, description="run job pods in the node's network namespace (the "
                                                          "local stack's real node: its servers listen on loopback)")
    node_selector: dict[str, str] = Field(default_factory=dict, description="labels a node must have to run jobs")
    tolerations: list[dict[str, str]] = Field(default_factory=list, description="taints of those nodes that jobs "
                                                                                "tolerate (Kubernetes' fields)")
    warm_url: str = Field(default="http://{name}.{namespace}.svc:{port}",
                          description="how workers reach a warm service's pods ({name}: its Service, {namespace}, "
                                      "{port}); the local stack's node shares the host's network: "
                                      "http://127.0.0.1:{port}")
    cleanup_interval_s: float = Field(default=60.0, gt=0, description="how often unused ConfigMaps/Secrets are sought")
    cleanup_grace_s: float = Field(default=600.0, ge=0,
                                   description="how long an object stays unused before it is deleted")


class StackSettings(_Section):
    """The local stack of real servers used by the demo and the tests."""

    state_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "oscar-stream/stack")
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "oscar-stream")
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    s3_port: int = 17070
    s3_access_key: str = "oscar-local"
    s3_secret_key: SecretStr = SecretStr("oscar-local-secret")
    s3_source_id: str = Field(default="minio.default", pattern=STORAGE_ID_PATTERN)
    prometheus_port: int = 19090
    scrape_interval_s: float = 2.0
    apiserver_port: int = 16443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380


class WorkerSettings(_Section):
    executor: Literal["local", "kubernetes"] = "local"
    work_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "oscar-stream/runs")
    batch_size: int = Field(default=2000, ge=1, description="records per batch of the normalize and route agents")
    instance_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="a name unique to this worker that survives its restarts (e.g. the pod name): Kafka's static "
                    "membership then gives a restarted worker its partitions back at once, without a rebalance")
    max_queued_invocations: int = Field(
        default=10_000, ge=1, description="invocations a worker holds waiting for a free slot of their service; "
                                          "beyond that it stops reading until some have started")
    result_lookback_s: float = Field(
        default=900.0, ge=0, description="on taking over a partition, results published this long before its first "
                                         "unfinished invocation are read, so copies of finished ones are recognised")
    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="a stage that has not made a step for this long is reported unready; after "
                                        "twice as long, unhealthy (so Kubernetes restarts the worker)")
    memory_dir: Path | None = Field(
        default_factory=lambda: _writable_folder(Path("/dev/shm")),
        description="a memory file system (tmpfs) where local warm replicas stage synchronous requests (/run: their "
                    "size is bounded by gateway.max_body_bytes); a disk's file system costs several times more per "
                    "request. Default: /dev/shm when writable; null: under work_dir")
    warm_host: str = Field(default="127.0.0.1", description="address the warm replicas' endpoint binds to")
    warm_port: int = Field(default=0, ge=0, le=65535, description="its port (0: any free port)")
    warm_url: str | None = Field(
        default=None, description="the endpoint's address as gateways reach it (default: http://<host>:<port>; set "
                                  "it when the worker binds 0.0.0.0 or sits behind a Service)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OSCAR_STREAM_", env_nested_delimiter="__", extra="forbid")

    cluster_id: str | None = Field(
        default=None, description="this cluster's id in FDL files; services of other clusters are remote"
    )
    app_id: str = Field(default="oscar-stream", description="consumer group (and faust app) id of the workers")
    worker: WorkerSettings = Field(default_factory=WorkerSettings)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    storages: list[StorageSettings] = Field(default_factory=list)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    clusters: list[ClusterSettings] = Field(default_factory=list)
    stack: StackSettings = Field(default_factory=StackSettings)
    topics_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("OSCAR_STREAM_TOPICS_DIR") or _REPO_TOPICS),
        description="folder of topic declarations (the repository's topics/)",
    )

    @field_validator("sources", "storages", "clusters")
    @classmethod
    def _unique_ids(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is declared twice")
            seen.add(item.id)
        return items

    def source(self, source_id: str) -> SourceSettings | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def cluster(self, cluster_id: str) -> ClusterSettings | None:
        return next((c for c in self.clusters if c.id == cluster_id), None)

    def storage(self, storage_id: str) -> StorageSettings | None:
        return next((s for s in self.storages if s.id == storage_id), None)

    def api_storage(self) -> StorageSettings | None:
        """The S3 store of OSCAR's API (``api.storage``, or the first S3 storage)."""
        if self.api.storage is not None:
            return self.storage(self.api.storage)
        return next((s for s in self.storages if s.kind == "s3"), None)


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    lines.append("Fix the field(s) above; see README 'Configuration' for every setting.")
    return "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from env vars over ``config_file`` (or ``$OSCAR_STREAM_CONFIG``) over defaults.

    ``overrides`` are keyword arguments that win over everything (used by tests and the CLI).
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None:
        try:
            return Settings(**overrides)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(err, "environment variables")) from err
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist (given by --config or ${CONFIG_ENV})")
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"configuration file {path} is not valid YAML: {err}") from err

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=path)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls), file_secret_settings)

    try:
        return _FromFile(**overrides)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, f"{path} and environment variables")) from err
