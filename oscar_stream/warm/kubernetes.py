"""Warm replicas as pods: a Deployment and a Service per warm service (launch/warm_objects.py), reconciled by
every worker from the services table, scaled from the work this worker sees, reached over HTTP; and exposed
services: their own server's Deployment, Service and HorizontalPodAutoscaler.

* **Reconcile.** A version the cluster does not have yet is written (create, or replace keeping the replica
  count); objects of services that are gone or no longer warm are deleted. Every worker does this; the writes
  are idempotent, so several workers converge.
* **Scale.** ``spec.replicas`` follows what this worker runs and queues (launch/autoscale.py): up at once when
  the work needs more, down to what it needs (``min_replicas`` at least) after ``idle_s`` without work. With
  several workers, each scales up for its own work; the one that scaled up scales down when idle.
* **Requests.** Through the Service (``kubernetes.warm_url``). While no replica is ready (a cold start, a
  rollout) a request waits and tries again, up to the cold-start allowance.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.core.invocation import Invocation
from oscar_stream.executors.kubernetes import RateLimiter, api_client, storage_secret
from oscar_stream.health import Component
from oscar_stream.http_replies import reply
from oscar_stream.launch import job_spec, warm_objects
from oscar_stream.launch.autoscale import wanted_replicas
from oscar_stream.launch.sync_answer import RAW_TYPE
from oscar_stream.retry import Backoff
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.http import INPUT_NAME_HEADER
from oscar_stream.warm.invoke import DEFAULT_TIMEOUT_S, Attempt
from oscar_stream.warm.replica import ReplicaGone

log = logging.getLogger(__name__)
KEEP_EVERY_S = 1.0
COLD_START_S = 120.0  # how long a request waits for a replica to become ready


class KubernetesWarm:
    """The Kubernetes backend of warm replicas (warm/backend.py)."""

    def __init__(self, settings: Settings, health: Component) -> None:
        self.settings = settings
        k8s = settings.kubernetes
        self.namespace = k8s.namespace
        self.deployment = job_spec.deployment_label(settings.app_id)
        self.placement = job_spec.Placement(k8s.host_network, k8s.node_selector, tuple(k8s.tolerations))
        self.health = health
        self.rate = RateLimiter(k8s.max_requests_per_second)
        self.api: client.ApiClient | None = None
        self.token: str | None = None
        self.connected = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._storage_secret: dict[str, Any] = {}
        self.applied: dict[str, str] = {}  # service -> version of its warm objects on the cluster
        self.exposed_applied: dict[str, str] = {}  # service -> version of its exposed objects on the cluster
        self.replicas: dict[str, int] = {}  # service -> spec.replicas as last seen or set
        self.running: dict[str, int] = {}  # requests of this worker, per service
        self.busy_at: dict[str, float] = {}  # when this worker last had work for the service

    # --- requests ------------------------------------------------------------------------------------------

    def exposed_url(self, service: ServiceSpec) -> str | None:
        if service.expose is None or self.exposed_applied.get(service.name) != service.version:
            return None
        return self.settings.kubernetes.warm_url.format(name=warm_objects.exposed_name(service.name),
                                                        namespace=self.namespace, port=service.expose.api_port)

    def url(self, service: ServiceSpec) -> str:
        port = warm_objects.dispatcher_port(service.name, self.placement.host_network)
        return self.settings.kubernetes.warm_url.format(name=warm_objects.warm_name(service.name),
                                                        namespace=self.namespace, port=port)

    async def run(self, service: ServiceSpec, payload: bytes, input_name: str, raw: bool) -> web.Response:
        headers = {INPUT_NAME_HEADER: input_name, "Accept": RAW_TYPE if raw else "*/*"}
        try:
            status, body, answer_headers = await self._post(service, f"/run/{service.name}", payload, headers)
        except ReplicaGone as err:
            return reply(503, str(err), headers={"Retry-After": "5"})
        return web.Response(status=status, body=body, headers=answer_headers)

    async def invoke(self, service: ServiceSpec, invocation: Invocation) -> Attempt:
        status, body, _ = await self._post(service, "/invoke", invocation.to_json(),
                                           {"Content-Type": "application/json"})
        if status != 200:
            raise ReplicaGone(f"the warm replicas of {service.name} answered {status}: {body[:300]!r}")
        return Attempt.from_json(body)

    async def _post(self, service: ServiceSpec, path: str, body: bytes,
                    headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """POST to the service's replicas, waiting for one to be ready (a 503 or a refused connection) up to
        the cold-start allowance."""
        await self.connected.wait()
        if self._http is None:
            self._http = aiohttp.ClientSession()
        name = service.name
        self.running[name] = self.running.get(name, 0) + 1
        self.busy_at[name] = time.monotonic()
        backoff = Backoff(0.1, 2.0)
        deadline = time.monotonic() + COLD_START_S
        timeout = aiohttp.ClientTimeout(total=(service.timeout_s or DEFAULT_TIMEOUT_S) + 30)
        try:
            await self._scale_for(service)
            while True:
                try:
                    async with self._http.post(self.url(service) + path, data=body, timeout=timeout, headers={
                            **headers, "Authorization": f"Bearer {self.token}"}) as answer:
                        content = await answer.read()
                        if answer.status != 503:
                            passed = ("Content-Type", "Retry-After")
                            return answer.status, content, {k: answer.headers[k] for k in passed
                                                            if k in answer.headers}
                        why = f"503 {content[:200]!r}"
                except aiohttp.ClientConnectionError as err:
                    why = str(err)
                if time.monotonic() > deadline:
                    raise ReplicaGone(f"no warm replica of {name} was ready within {COLD_START_S:g}s ({why})")
                await backoff.wait()
        finally:
            self.running[name] -= 1
            self.busy_at[name] = time.monotonic()

    # --- reconcile and scale -------------------------------------------------------------------------------

    async def keep(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:
        await self._connect()
        while True:
            try:
                await self._reconcile({s.name: s for s in services()})
                if self.health.state != "running":
                    self.health.running()
            except (ApiException, TimeoutError, OSError) as err:
                self.health.recovering(f"warm services: {type(err).__name__}: {err}")
                log.warning("reconciling warm services failed (%s); trying again", err)
            await asyncio.sleep(KEEP_EVERY_S)

    async def _connect(self) -> None:
        self.api = await api_client(self.settings)
        self._storage_secret = storage_secret(self.settings, self.namespace, self.deployment)
        backoff = Backoff(0.5, 10.0)
        while self.token is None:
            try:
                await self._create(self._storage_secret)
                self.token = await self._shared_token()
            except (ApiException, TimeoutError, OSError) as err:
                self.health.recovering(f"warm services: {type(err).__name__}: {err}")
                await backoff.wait()
        self.connected.set()

    async def _shared_token(self) -> str:
        """The deployment's warm token, made by the first worker that needs it and read by the others."""
        core = client.CoreV1Api(self.api)
        name = warm_objects.token_secret_name(self.deployment)
        await self._create(warm_objects.token_secret(self.namespace, self.deployment, secrets.token_hex(32)))
        found = await core.read_namespaced_secret(name, self.namespace, _request_timeout=30)
        return base64.b64decode(found.data[warm_objects.TOKEN_KEY]).decode()

    async def _create(self, body: dict[str, Any]) -> None:
        """Create an object unless it exists."""
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        create: Any = {"Secret": core.create_namespaced_secret, "ConfigMap": core.create_namespaced_config_map,
                  "Service": core.create_namespaced_service,
                  "Deployment": apps.create_namespaced_deployment}[body["kind"]]
        await self.rate.wait()
        try:
            await create(self.namespace, body, _request_timeout=30)
        except ApiException as err:
            if err.status != 409:
                raise

    async def _reconcile(self, services: dict[str, ServiceSpec]) -> None:
        warm = {name: s for name, s in services.items() if s.warm is not None}
        exposed = {name: s for name, s in services.items() if s.expose is not None}
        for service in warm.values():
            if self.applied.get(service.name) != service.version:
                await self._apply(service)
            await self._scale_down_when_idle(service)
        for service in exposed.values():
            if self.exposed_applied.get(service.name) != service.version:
                await self._apply_exposed(service)
        await self._delete_unwanted(warm, exposed)

    async def _apply(self, service: ServiceSpec) -> None:
        assert service.warm is not None
        await self._service_objects(service)
        body = warm_objects.warm_deployment(service, self.namespace, self.deployment,
                                            self.settings.kubernetes.helper_image,
                                            self._storage_secret["metadata"]["name"],
                                            service.warm.min_replicas, self.placement)
        self.replicas[service.name] = await self._put_deployment(body, service.warm.min_replicas)
        await self._create(warm_objects.warm_service_object(service, self.namespace, self.deployment,
                                                            self.placement.host_network))
        self.applied[service.name] = service.version
        log.info("warm service %s version %s is on the cluster", service.name, service.version[:12])

    async def _apply_exposed(self, service: ServiceSpec) -> None:
        assert service.expose is not None
        await self._service_objects(service)
        await self._put_deployment(warm_objects.exposed_deployment(service, self.namespace, self.deployment,
                                                                   self.placement), service.expose.min_replicas)
        await self._create(warm_objects.exposed_service_object(service, self.namespace, self.deployment))
        autoscaling = client.AutoscalingV2Api(self.api)
        hpa = warm_objects.exposed_autoscaler(service, self.namespace, self.deployment)
        await self.rate.wait()
        try:
            await autoscaling.create_namespaced_horizontal_pod_autoscaler(
                self.namespace, hpa, _request_timeout=30)  # type: ignore[arg-type]
        except ApiException as err:
            if err.status != 409:
                raise
            current = await autoscaling.read_namespaced_horizontal_pod_autoscaler(
                hpa["metadata"]["name"], self.namespace, _request_timeout=30)
            hpa["metadata"]["resourceVersion"] = current.metadata.resource_version
            await autoscaling.replace_namespaced_horizontal_pod_autoscaler(
                hpa["metadata"]["name"], self.namespace, hpa, _request_timeout=30)  # type: ignore[arg-type]
        self.exposed_applied[service.name] = service.version
        log.info("exposed service %s version %s is on the cluster", service.name, service.version[:12])

    async def _service_objects(self, service: ServiceSpec) -> None:
        await self._create(job_spec.script_configmap(service, self.namespace, self.deployment))
        if service.secrets:
            await self._create(job_spec.secrets_object(service, self.namespace, self.deployment))

    async def _put_deployment(self, body: dict[str, Any], floor: int) -> int:
        """Create the Deployment, or replace one of another version keeping its replica count (at least
        ``floor``); the replica count it has now."""
        apps = client.AppsV1Api(self.api)
        name, version = body["metadata"]["name"], body["metadata"]["annotations"][job_spec.ANNOTATION_VERSION]
        for _ in range(5):  # a replace races the controller's own writes (409 Conflict): read again and retry
            await self.rate.wait()
            try:
                current = await apps.read_namespaced_deployment(name, self.namespace, _request_timeout=30)
            except ApiException as err:
                if err.status != 404:
                    raise
                await self._create(body)
                return int(body["spec"]["replicas"])
            if (current.metadata.annotations or {}).get(job_spec.ANNOTATION_VERSION) == version:
                return int(current.spec.replicas or 0)
            replicas = max(current.spec.replicas or 0, floor)
            body["spec"]["replicas"] = replicas
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            await self.rate.wait()
            try:
                await apps.replace_namespaced_deployment(name, self.namespace, body,  # type: ignore[arg-type]
                                                         _request_timeout=30)
            except ApiException as err:
                if err.status == 409:
                    continue
                raise
            return replicas
        raise TimeoutError(f"Deployment {name} kept changing under 5 replacements")

    async def _scale_for(self, service: ServiceSpec) -> None:
        """Scale up at once when this worker's work needs more replicas than the Deployment has."""
        assert service.warm is not None
        if self.applied.get(service.name) != service.version:
            await self._apply(service)
        needed = wanted_replicas(service.warm, self.running.get(service.name, 0), 0)
        if needed > self.replicas.get(service.name, 0):
            await self._set_replicas(service, needed)

    async def _scale_down_when_idle(self, service: ServiceSpec) -> None:
        assert service.warm is not None
        name = service.name
        keep = wanted_replicas(service.warm, self.running.get(name, 0), 0)
        idle_for = time.monotonic() - self.busy_at.setdefault(name, time.monotonic())  # first seen: a full idle_s
        if self.replicas.get(name, 0) > keep and self.running.get(name, 0) == 0 and idle_for >= service.warm.idle_s:
            await self._set_replicas(service, keep)

    async def _set_replicas(self, service: ServiceSpec, replicas: int) -> None:
        await self.rate.wait()
        await client.AppsV1Api(self.api).patch_namespaced_deployment_scale(
            warm_objects.warm_name(service.name), self.namespace, {"spec": {"replicas": replicas}},
            _request_timeout=30)
        if replicas > self.replicas.get(service.name, 0):
            metrics.count(metrics.WARM_COLD_STARTS, service.name, amount=replicas - self.replicas.get(service.name, 0))
        self.replicas[service.name] = replicas
        metrics.WARM_REPLICAS.labels(service.name).set(replicas)
        metrics.WARM_RUNNING.labels(service.name).set(self.running.get(service.name, 0))

    async def _delete_unwanted(self, warm: dict[str, ServiceSpec], exposed: dict[str, ServiceSpec]) -> None:
        apps, core = client.AppsV1Api(self.api), client.CoreV1Api(self.api)
        autoscaling = client.AutoscalingV2Api(self.api)
        deployments = (apps.list_namespaced_deployment, apps.delete_namespaced_deployment)
        services = (core.list_namespaced_service, core.delete_namespaced_service)
        autoscalers = (autoscaling.list_namespaced_horizontal_pod_autoscaler,
                       autoscaling.delete_namespaced_horizontal_pod_autoscaler)
        for label, wanted, kinds, applied in (
                (warm_objects.LABEL_WARM, warm, (deployments, services), self.applied),
                (warm_objects.LABEL_EXPOSED, exposed, (deployments, services, autoscalers), self.exposed_applied)):
            selector = f"{job_spec.selector(self.deployment)},{label}=true"
            for list_objects, delete in kinds:
                await self.rate.wait()
                listing = await list_objects(self.namespace, label_selector=selector, _request_timeout=30)
                for item in listing.items:
                    service = (item.metadata.labels or {}).get(job_spec.LABEL_SERVICE, "")
                    if service in wanted:
                        continue
                    await self.rate.wait()
                    try:
                        await delete(item.metadata.name, self.namespace, _request_timeout=30)
                    except ApiException as err:
                        if err.status != 404:
                            raise
                    applied.pop(service, None)
                    if label == warm_objects.LABEL_WARM:
                        self.replicas.pop(service, None)
                        metrics.WARM_REPLICAS.labels(service).set(0)
                    log.info("deleted %s %s: its service is gone or changed kind", item.kind or "object",
                             item.metadata.name)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self.api is not None:
            await self.api.close()
