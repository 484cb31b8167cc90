"""What every endpoint of the API shares: the settings, the Kafka link, the tables read from Kafka and the API's
own S3 store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from oscar_stream.api.tokens import service_token
from oscar_stream.config import Settings, StorageSettings
from oscar_stream.kafka.link import KafkaLink
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.jobs_table import JobsTable
from oscar_stream.worker.services_table import ServicesTable
from oscar_stream.worker.warm_endpoints import WarmEndpoints

log = logging.getLogger(__name__)
_TOKENS_KEPT = 10_000


@dataclass
class ApiContext:
    settings: Settings
    link: KafkaLink
    names: TopicNames = field(init=False)
    services: ServicesTable = field(init=False)
    jobs: JobsTable = field(init=False)
    warm: WarmEndpoints = field(init=False)
    storage: StorageSettings | None = field(init=False)
    store: S3Store | None = field(init=False)
    _tokens: dict[tuple[str, str], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.names = TopicNames(self.settings.kafka.topic_prefix)
        self.services = ServicesTable(self.settings.kafka, self.names.services, self.settings.cluster_id)
        self.jobs = JobsTable(self.settings.kafka, self.names.jobs)
        self.warm = WarmEndpoints(self.settings.kafka, self.names.warm)
        self.storage = self.settings.api_storage()
        self.store = S3Store(self.storage) if self.storage is not None else None

    @property
    def body_limit(self) -> int:
        return self.settings.gateway.max_body_bytes

    def local(self, name: str) -> ServiceSpec | None:
        """The service of this cluster named ``name``; services of other clusters are not served here."""
        spec = self.services.index.get(name)
        return spec if spec is not None and self.services.is_local(spec) else None

    def token(self, spec: ServiceSpec) -> str:
        """The service's token, derived once per (name, nonce): an HMAC per request was a visible part of a
        synchronous call's cost."""
        key = (spec.name, spec.token_nonce or "")
        token = self._tokens.get(key)
        if token is None:
            secret = self.settings.api.token_secret
            assert secret is not None  # the API is on only with a secret
            if len(self._tokens) >= _TOKENS_KEPT:
                self._tokens.clear()  # services deleted and made again leave old nonces behind
            token = self._tokens[key] = service_token(secret, spec.name, key[1])
        return token


async def ensure_bucket(store: S3Store, bucket: str) -> None:
    """Create ``bucket`` if it is missing; a store that refuses is reported, not fatal (the service may still
    read from a bucket made by hand)."""
    try:
        await store.ensure_bucket(bucket)
    except StorageError as err:
        log.warning("bucket %s could not be created: %s", bucket, err)
