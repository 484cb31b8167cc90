"""KubernetesExecutor: one batch/v1 Job per invocation through kubernetes-asyncio.

* Launch = create the Job (its name comes from the invocation id): 409 AlreadyExists means "already launched".
* 429, 5xx and timeouts are retried with exponential backoff and jitter; when they persist the launch raises
  and the launch agent tries again later (the invocation waits, nothing is lost). Any other refusal (422
  invalid spec, 403, 404) becomes a failed result with the server's message.
* Every worker of a deployment watches the deployment's Jobs whose result is not published yet (one watch per
  worker, label selector, re-listing on 410 Gone), but a worker acts only on the Jobs of the invocations
  partitions it owns: it counts their running Jobs against its share of the service's limit, publishes their
  results and then labels the Job reported, which takes it out of every worker's watch. So what a worker holds
  and lists again grows with the work in flight, not with the Jobs the namespace keeps until their TTL. When
  partitions move between workers, the new owner takes their Jobs over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
import yaml
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result, StoredObject
from oscar_stream.executors.base import Executor, Limiter, Permit, ResultSink
from oscar_stream.health import Component
from oscar_stream.launch import job_spec, job_status, output_report
from oscar_stream.launch.cleanup import UnneededTracker
from oscar_stream.retry import RETRIABLE_HTTP, Backoff, retrying
from oscar_stream.route.model import ServiceSpec

log = logging.getLogger(__name__)
FAILURE_TAIL = 800  # characters of a failed container's log in a result's reason
LIST_PAGE = 500  # Jobs per page of a listing


class RateLimiter:
    """A token bucket shared by every API call of this executor."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


async def api_client(settings: Settings) -> client.ApiClient:
    """A client of the configured cluster: the kubeconfig file, or in a pod its ServiceAccount."""
    configuration = client.Configuration()
    k8s = settings.kubernetes
    if k8s.kubeconfig is None:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=str(k8s.kubeconfig), context=k8s.context,
                                      client_configuration=configuration)
    return client.ApiClient(configuration)


def storage_secret(settings: Settings, namespace: str, deployment: str) -> dict[str, Any]:
    """The helper's configuration (storage endpoints and credentials), named by content so rotation is safe."""
    storages = [
        {**s.model_dump(mode="json", exclude={"secret_key", "password"}),
         **({"secret_key": s.secret_key.get_secret_value()} if s.secret_key else {}),
         **({"password": s.password.get_secret_value()} if s.password else {})}
        for s in settings.storages
    ]
    document = yaml.safe_dump({"storages": storages}, sort_keys=True)
    # The deployment is part of the name: each deployment deletes its own, so two must never share one.
    digest = hashlib.blake2b(f"{deployment}\n{document}".encode(), digest_size=5).hexdigest()
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": f"oscar-stream-storage-{digest}", "namespace": namespace,
                     "labels": job_spec.owned_labels(deployment)},
        "stringData": {"storage.yaml": document},
    }


class KubernetesExecutor(Executor):
    kind = "kubernetes"

    def __init__(self, sink: ResultSink, limiter: Limiter, settings: Settings, health: Component | None = None) -> None:
        super().__init__(sink, limiter)
        self.settings = settings
        self.namespace = settings.kubernetes.namespace
        self.deployment = job_spec.deployment_label(settings.app_id)
        self._selector = job_spec.selector(self.deployment)
        self._unreported = job_spec.unreported_selector(self.deployment)
        k8s = settings.kubernetes
        self._placement = job_spec.Placement(k8s.host_network, k8s.node_selector, tuple(k8s.tolerations))
        self.rate = RateLimiter(settings.kubernetes.max_requests_per_second)
        self.api: client.ApiClient | None = None
        self.health = health or Component("kubernetes")
        self._jobs: dict[str, JobView] = {}
        self._permits: dict[str, Permit] = {}
        self._ensured: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    async def start(self) -> None:
        self.api = await api_client(self.settings)
        self._storage_secret = storage_secret(self.settings, self.namespace, self.deployment)
        self._watcher = asyncio.ensure_future(self._watch_forever())
        await self.synced.wait()

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.api:
            await self.api.close()

    # --- API calls with retries --------------------------------------------------------------------------

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def once() -> Any:
            await self.rate.wait()
            answer = await fn(*args, _request_timeout=30, **kwargs)
            if kwargs.get("_preload_content") is False:
                answer = await answer_body(answer)
            if self.health.state == "recovering":
                self.health.running()
            return answer

        def failed(err: BaseException) -> None:
            if transient(err):
                self.health.recovering(f"Kubernetes API: {what}: {type(err).__name__}: {err}")

        return await retrying(once, what=what, retryable=transient, attempts=9, hint=_retry_after, log=log,
                              on_failure=failed)

    async def _ensure(self, body: dict[str, Any]) -> None:
        """Create a ConfigMap/Secret once per name (409: somebody created it already)."""
        name = body["metadata"]["name"]
        if name in self._ensured:
            return
        core = client.CoreV1Api(self.api)
        create = core.create_namespaced_config_map if body["kind"] == "ConfigMap" else core.create_namespaced_secret
        try:
            await self._call(f"create {body['kind']} {name}", create, self.namespace, body)
        except ApiException as err:
            if err.status != 409:
                raise
        self._ensured.add(name)

    # --- launch ------------------------------------------------------------------------------------------

    async def launch(self, invocation: Invocation, service: ServiceSpec, permit: Permit) -> None:
        name = job_spec.job_name(invocation)
        labels = (service.name, self.kind)
        body = job_spec.build_job(invocation, service, self.namespace, self.settings.kubernetes.helper_image,
                                  self._storage_secret["metadata"]["name"], self.deployment, self._placement)
        try:
            await self._ensure(self._storage_secret)
            await self._ensure(job_spec.script_configmap(service, self.namespace, self.deployment))
            if service.secrets:
                await self._ensure(job_spec.secrets_object(service, self.namespace, self.deployment))
            self._permits[name] = permit
            await self._call(f"create Job {name}", client.BatchV1Api(self.api).create_namespaced_job,
                             self.namespace, body, _preload_content=False)  # the answer is not needed
        except ApiException as err:
            self._permits.pop(name, None)
            permit.release()
            if err.status == 409:
                metrics.JOBS_DUPLICATE.labels(*labels).inc()
                return
            if transient(err):
                raise
            reason = _api_reason(err)
            log.error("Kubernetes refused Job %s for %s: %s", name, service.name, reason)
            metrics.JOBS_FAILED.labels(*labels).inc()
            await self.sink(Result.failed(invocation, self.kind, f"Kubernetes refused the Job: {reason}",
                                          job=name))
            return
        except BaseException:
            self._permits.pop(name, None)
            permit.release()
            raise
        metrics.JOBS_LAUNCHED.labels(*labels).inc()
        metrics.JOBS_ACTIVE.labels(*labels).inc()

    # --- cleanup -----------------------------------------------------------------------------------------

    async def maintain(self, services: Callable[[], Iterable[ServiceSpec]]) -> None:
        """Delete this deployment's ConfigMaps and Secrets that nothing needs any more (see cleanup.py)."""
        await self.synced.wait()
        k8s = self.settings.kubernetes
        tracker = UnneededTracker(k8s.cleanup_grace_s)
        core = client.CoreV1Api(self.api)
        while True:
            try:
                await self._sweep(core, tracker, services)
            except (ApiException, TimeoutError, OSError) as err:
                log.warning("cleaning up ConfigMaps/Secrets failed (%s); trying again later", err)
            await asyncio.sleep(k8s.cleanup_interval_s)

    async def _sweep(self, core: client.CoreV1Api, tracker: UnneededTracker,
                     services: Callable[[], Iterable[ServiceSpec]]) -> None:
        needed = {self._storage_secret["metadata"]["name"]}
        for service in services():
            needed |= job_spec.current_objects(service, self.deployment)
        for view in self._jobs.values():
            needed |= view.references
        kinds = {
            "ConfigMap": (core.list_namespaced_config_map, core.delete_namespaced_config_map),
            "Secret": (core.list_namespaced_secret, core.delete_namespaced_secret),
        }
        present: list[tuple[str, str]] = []
        for kind, (list_objects, _) in kinds.items():
            listing = await self._call(f"list {kind}s", list_objects, self.namespace, label_selector=self._selector)
            present += [(kind, item.metadata.name) for item in listing.items]
        for kind, name in tracker.due(present, needed, time.monotonic()):
            try:
                await self._call(f"delete {kind} {name}", kinds[kind][1], name, self.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
            self._ensured.discard(name)
            log.info("deleted %s %s: no current service version and no Job uses it", kind, name)

    # --- the watch ---------------------------------------------------------------------------------------

    async def _watch_forever(self) -> None:
        """List once, then watch from where the list (or the last event or bookmark) left off. The API server
        ends each watch after ``timeout_seconds``; the next one goes on from the last version seen. Only an
        expired version (410 Gone) or a failure lists again: a listing of every Job, every 30 s, cost a worker
        its memory and its CPU once the namespace held thousands of Jobs (benchmarks/jobs_growth.py)."""
        batch = client.BatchV1Api(self.api)
        backoff = Backoff(0.5, 10.0)
        version: str | None = None  # None: list first
        while True:
            try:
                if version is None:
                    version = await self._list_all(batch)
                    self.synced.set()
                    self.health.running()
                    backoff.reset()
                stream = watch.Watch(return_type="object")  # events as dictionaries: see job_status.py
                async with stream:
                    async for change in stream.stream(batch.list_namespaced_job, self.namespace,
                                                      label_selector=self._unreported, resource_version=version,
                                                      allow_watch_bookmarks=True, timeout_seconds=30):
                        self.health.beat()
                        job = change["object"]
                        version = (job.get("metadata") or {}).get("resourceVersion") or version
                        if change["type"] == "DELETED":  # deleted, or labelled reported
                            self._forget(job["metadata"]["name"])
                        elif change["type"] in ("ADDED", "MODIFIED"):
                            await self._observe(job)
                self.health.beat()
                continue
            except ApiException as err:
                if err.status == 410:
                    log.info("Job watch expired (410 Gone); listing again")
                    version = None
                    continue
                problem = f"Job watch failed: {_api_reason(err)}"
            except (TimeoutError, OSError) as err:
                problem = f"Job watch interrupted: {type(err).__name__}: {err}"
            except Exception as err:
                # e.g. publishing a result failed for good: the Job is not marked published, so the next
                # listing handles it again.
                log.exception("handling a Job change failed; listing again")
                problem = f"handling a Job change failed: {type(err).__name__}: {err}"
            version = None
            self.health.recovering(problem)
            log.warning("%s; listing again", problem)
            await backoff.wait()

    async def _list_all(self, batch: client.BatchV1Api) -> str:
        """Observe every unreported Job of the deployment, a page at a time, as plain JSON (the client's model
        classes cost ~10x the memory and CPU); forget those that are gone. The listing's resource version."""
        present: set[str] = set()
        token: str | None = None
        while True:
            page = orjson.loads(await self._call("list Jobs", batch.list_namespaced_job, self.namespace,
                                                 label_selector=self._unreported, limit=LIST_PAGE, _continue=token,
                                                 _preload_content=False))
            for job in page.get("items") or ():
                present.add(job["metadata"]["name"])
                await self._observe(job)
            token = page["metadata"].get("continue")
            if not token:
                break
        for gone in set(self._jobs) - present:
            self._forget(gone)
        return str(page["metadata"]["resourceVersion"])

    def _forget(self, name: str) -> None:
        self._jobs.pop(name, None)
        self._drop_permit(name)

    def _drop_permit(self, name: str) -> None:
        permit = self._permits.pop(name, None)
        if permit is not None:
            permit.release()
            metrics.JOBS_ACTIVE.labels(permit.service, self.kind).dec()

    async def _observe(self, job: dict[str, Any]) -> None:
        known = self._jobs.get(job["metadata"]["name"])
        view = JobView.of(job, known)
        self._jobs[view.name] = view
        if view.running and not (known and known.running) and self.owns(view.invocation_id):
            self.jobs.update(view.service, view.invocation_id, self.kind, "Running", view.creation_time,
                             job_status.time_text(view.started))
        await self._settle(view)

    async def _settle(self, view: JobView) -> None:
        """Act on a Job as its owner does: count it while it runs, publish its result once it has ended."""
        if not self.owns(view.invocation_id):
            return
        if view.ended is None:
            if view.name not in self._permits:
                self._permits[view.name] = self.limiter.adopt(view.service)
                metrics.JOBS_ACTIVE.labels(view.service, self.kind).inc()
            return
        if view.published:  # by a worker of a version before the label, or the label's patch failed
            self._drop_permit(view.name)
            await self._label_reported(view.name)
            return
        result = await self._result(view)
        if self.logs is not None:
            result = replace(result, log=await self.logs.keep(view.service, view.name, await self._pod_log(view.name)))
        await self.sink(result)
        view.published = True
        self._drop_permit(view.name)
        (metrics.JOBS_SUCCEEDED if view.ended.status == "succeeded" else metrics.JOBS_FAILED).labels(
            view.service, self.kind).inc()
        if view.started is not None and view.completed is not None:
            metrics.JOB_DURATION.labels(view.service, self.kind).observe(
                max(0.0, (view.completed - view.started).total_seconds()))
        await self._label_reported(view.name)

    async def _label_reported(self, name: str) -> None:
        """Take the Job out of every worker's watch (the watch hears it as DELETED). If this fails the Job stays
        in view, and a later listing may publish its result again: the same invocation id, which the ledger
        and the results topic's readers take as one."""
        with contextlib.suppress(ApiException, TimeoutError, OSError):
            await self._call(f"label Job {name} reported", client.BatchV1Api(self.api).patch_namespaced_job,
                             name, self.namespace, {"metadata": {"labels": {job_spec.LABEL_REPORTED: "true"}}},
                             _preload_content=False)

    async def ownership_changed(self) -> None:
        for view in list(self._jobs.values()):
            if self.owns(view.invocation_id):
                await self._settle(view)
            else:
                self._drop_permit(view.name)

    async def _result(self, view: JobView) -> Result:
        assert view.ended is not None
        return Result(
            invocation_id=view.invocation_id,
            service=view.service,
            event_id=view.event_id,
            status=view.ended.status,
            executor=self.kind,
            reason=(view.ended.reason + await self._failure(view.name)) if view.ended.reason else None,
            job=view.name,
            logs=f"kubectl logs -n {self.namespace} job/{view.name} -c script",
            started_at=job_status.time_text(view.started),
            finished_at=job_status.time_text(view.completed),
            event_time=view.event_time,
            outputs=await self._outputs(view.name) if view.ended.status == "succeeded" else [],
        )

    async def _pod_log(self, name: str) -> bytes:
        """The script's log (and a helper's, when the job failed in it), or why there is none."""
        core = client.CoreV1Api(self.api)
        try:
            pods = await self._call("list pods", core.list_namespaced_pod, self.namespace,
                                    label_selector=f"job-name={name}")
            parts = []
            for pod in pods.items:
                statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
                failed = {st.name for st in statuses
                          if st.state and st.state.terminated and st.state.terminated.exit_code != 0}
                for container in ("script", *sorted(failed - {"script"})):
                    text = await self._call(f"read the log of {name}", core.read_namespaced_pod_log,
                                            pod.metadata.name, self.namespace, container=container)
                    parts.append(text if container == "script" else f"\n--- {container} ---\n{text}")
            return "".join(parts).encode() if parts else b"(the job's pod is gone: no log)\n"
        except (ApiException, TimeoutError, OSError) as err:
            reason = _api_reason(err) if isinstance(err, ApiException) else f"{type(err).__name__}: {err}"
            return f"(Kubernetes could not give the pod's log: {reason})\n".encode()

    async def _outputs(self, name: str) -> list[StoredObject]:
        """What the upload container reported in its termination message (or, over its size limit, its log)."""
        core = client.CoreV1Api(self.api)
        pods = await self._call("list pods", core.list_namespaced_pod, self.namespace,
                                label_selector=f"job-name={name}")
        for pod in pods.items:
            for status in (pod.status.container_statuses or []) if pod.status else []:
                terminated = status.state.terminated if status.state else None
                if status.name == "upload" and terminated and terminated.exit_code == 0 and terminated.message:
                    try:
                        report = output_report.read_report(terminated.message)
                        if isinstance(report, list):
                            return report
                        text = await self._call(f"read the upload log of {name}", core.read_namespaced_pod_log,
                                                pod.metadata.name, self.namespace, container="upload")
                        return output_report.read_log_rows(text, report)
                    except InvalidEvent as err:
                        log.warning("Job %s: %s", name, err)
        return []

    async def _failure(self, name: str) -> str:
        """Which container of the Job's pod failed and how: exit code, and the tail of its log that
        Kubernetes kept as its termination message."""
        try:
            pods = await self._call("list pods", client.CoreV1Api(self.api).list_namespaced_pod, self.namespace,
                                    label_selector=f"job-name={name}")
        except (ApiException, TimeoutError, OSError):
            return ""
        for pod in pods.items:
            statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
            for status in statuses:
                terminated = status.state.terminated if status.state else None
                if terminated and terminated.exit_code != 0:
                    tail = (terminated.message or "").strip()[-FAILURE_TAIL:]
                    return (f"; container {status.name} exited with code {terminated.exit_code}"
                            f" ({terminated.reason})" + (f": {tail}" if tail else ""))
        return ""


@dataclass
class JobView:
    """What the executor keeps of one Job of its deployment (not the whole object: there may be tens of
    thousands)."""

    name: str
    service: str
    invocation_id: str
    event_id: str
    event_time: str | None
    creation_time: str | None
    running: bool
    references: set[str]
    ended: job_status.Finished | None
    started: datetime | None
    completed: datetime | None
    published: bool

    @classmethod
    def of(cls, job: dict[str, Any], known: JobView | None) -> JobView:
        metadata = job["metadata"]
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        status = job.get("status") or {}
        ended = job_status.finished(job)
        return cls(
            name=metadata["name"],
            service=labels.get(job_spec.LABEL_SERVICE, "unknown"),
            invocation_id=labels.get(job_spec.LABEL_INVOCATION, ""),
            event_id=labels.get(job_spec.LABEL_EVENT, ""),
            event_time=annotations.get(job_spec.ANNOTATION_EVENT_TIME),
            creation_time=job_status.time_text(job_status.parse_time(metadata.get("creationTimestamp"))),
            running=ended is None and bool(status.get("active") or status.get("ready")),
            # a Job's pod template never changes
            references=known.references if known else job_status.referenced_objects(job),
            ended=ended,
            started=job_status.parse_time(status.get("startTime")),
            completed=job_status.parse_time(status.get("completionTime")) or (ended.at if ended else None),
            published=(known is not None and known.published)
            or annotations.get(job_spec.ANNOTATION_PUBLISHED) == "true",
        )


async def answer_body(response: Any) -> bytes:
    """The body of an answer asked for with ``_preload_content=False`` (the client's model classes are not
    built: they cost more CPU than the call), raising ApiException as the client does for the others."""
    try:
        body: bytes = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        err = ApiException(status=response.status, reason=response.reason)
        err.body, err.headers = body, response.headers
        raise err
    return body


def transient(err: BaseException) -> bool:
    if isinstance(err, ApiException):
        return err.status in RETRIABLE_HTTP
    return isinstance(err, TimeoutError | OSError)  # aiohttp's client errors are OSErrors


def _retry_after(err: BaseException) -> float | None:
    if isinstance(err, ApiException) and err.headers:
        value = err.headers.get("Retry-After")
        if value and value.isdigit():
            return float(value)
    return None


def _api_reason(err: ApiException) -> str:
    try:
        body = orjson.loads(err.body or b"")
        return f"{err.status} {body.get('reason', '')}: {body.get('message', '')}".strip()
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return f"{err.status} {err.reason}"
