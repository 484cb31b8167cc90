"""The batch/v1 Job for one invocation (pure: dictionaries in, dictionaries out).

Pod layout — the user's image needs only ``/bin/sh``:

* init container ``fetch`` (oscar-stream image): downloads the input into the shared ``/oscar/input``;
* init container ``script`` (the service image): runs the service script with the OSCAR contract environment;
  a non-zero exit fails the pod, so nothing is uploaded;
* container ``upload`` (oscar-stream image): uploads what the script wrote to ``/oscar/output`` and reports
  the uploaded objects in its termination message.

The pod (and so the Job) succeeds only if the script succeeded and its outputs were uploaded.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from oscar_stream.core import jobs
from oscar_stream.core.ids import identity_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.launch.contract import contract_variables, input_file_name
from oscar_stream.route.model import ServiceSpec

MANAGED_BY = "oscar-stream"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_SERVICE = "oscar-stream.io/service"
LABEL_INVOCATION = "oscar-stream.io/invocation"
LABEL_EVENT = "oscar-stream.io/event"
LABEL_DEPLOYMENT = "oscar-stream.io/deployment"
ANNOTATION_VERSION = "oscar-stream.io/service-version"
ANNOTATION_EVENT_TIME = "oscar-stream.io/event-time"
ANNOTATION_RECEIVED_AT = "oscar-stream.io/received-at"
ANNOTATION_OBJECT = "oscar-stream.io/object"
ANNOTATION_PUBLISHED = "oscar-stream.io/result-published"  # how versions before the label marked it
LABEL_REPORTED = "oscar-stream.io/reported"  # the Job's result is on the results topic
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def deployment_label(app_id: str) -> str:
    """The label value naming one oscar-stream deployment (its ``app_id``): several may share a namespace, and
    each watches, adopts and cleans up only its own objects."""
    return _LABEL_VALUE.sub("-", app_id)[:63].strip("-._") or "oscar-stream"


def selector(deployment: str) -> str:
    return f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_DEPLOYMENT}={deployment}"


def unreported_selector(deployment: str) -> str:
    """The deployment's Jobs whose result is not published yet: what the executors watch."""
    return f"{selector(deployment)},!{LABEL_REPORTED}"


def owned_labels(deployment: str, service: str | None = None) -> dict[str, str]:
    labels = {LABEL_MANAGED: MANAGED_BY, LABEL_DEPLOYMENT: deployment}
    if service is not None:
        labels[LABEL_SERVICE] = service
    return labels

WORK = "/oscar"
INPUT_DIR = f"{WORK}/input"
OUTPUT_DIR = f"{WORK}/output"
SCRIPT_PATH = f"{WORK}/script/script.sh"
HELPER_CONFIG = "/etc/oscar-stream/storage.yaml"


def job_name(invocation: Invocation) -> str:
    """The Job's name (see core/jobs.py): a redelivered invocation gets the same name, so a second create is 409."""
    return jobs.job_name(invocation.service, invocation.id)


def _version_suffix(service: ServiceSpec, deployment: str) -> str:
    # Per deployment too: each deployment deletes its own objects, so two must never share one.
    return identity_id(deployment, service.version)[:10]


def script_configmap_name(service: ServiceSpec, deployment: str) -> str:
    return f"oscar-script-{service.name}-{_version_suffix(service, deployment)}"


def secrets_name(service: ServiceSpec, deployment: str) -> str:
    return f"oscar-secrets-{service.name}-{_version_suffix(service, deployment)}"


def current_objects(service: ServiceSpec, deployment: str) -> set[str]:
    """The ConfigMap and Secret names a Job of this version of ``service`` uses."""
    return {script_configmap_name(service, deployment),
            *([secrets_name(service, deployment)] if service.secrets else [])}


def script_configmap(service: ServiceSpec, namespace: str, deployment: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": script_configmap_name(service, deployment), "namespace": namespace,
                     "labels": owned_labels(deployment, service.name),
                     "annotations": {ANNOTATION_VERSION: service.version}},
        "data": {"script.sh": service.script},
    }


def secrets_object(service: ServiceSpec, namespace: str, deployment: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secrets_name(service, deployment), "namespace": namespace,
                     "labels": owned_labels(deployment, service.name)},
        "stringData": dict(service.secrets),
    }


def container_resources(service: ServiceSpec) -> dict[str, Any]:
    amounts: dict[str, str] = {"cpu": service.cpu, "memory": service.memory}
    if service.ephemeral_storage:
        amounts["ephemeral-storage"] = service.ephemeral_storage
    limits: dict[str, str] = dict(amounts)
    if service.gpus:
        limits["nvidia.com/gpu"] = str(service.gpus)
    return {"requests": amounts, "limits": limits}


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


HELPER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
_HELPER_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def job_metadata(invocation: Invocation, service: ServiceSpec, deployment: str) -> tuple[dict[str, str],
                                                                                          dict[str, str]]:
    """The labels (for selection: deployment, service, invocation, event) and annotations (for people and for
    the executor: version, times, object) shared by the Job and its pods."""
    event = invocation.event
    labels = {**service.labels, **owned_labels(deployment, service.name), LABEL_INVOCATION: invocation.id,
              LABEL_EVENT: event.id}
    annotations = {
        **service.annotations,
        ANNOTATION_VERSION: service.version,
        ANNOTATION_EVENT_TIME: event.time,
        ANNOTATION_RECEIVED_AT: event.received_at or event.time,
        ANNOTATION_OBJECT: f"{event.storage}/{event.path}",
    }
    return labels, annotations


def script_container(invocation: Invocation, service: ServiceSpec, deployment: str) -> dict[str, Any]:
    """The user's image running the service script with the OSCAR contract (it needs only /bin/sh)."""
    env = dict(service.variables)
    if service.log_level:
        env.setdefault("LOG_LEVEL", service.log_level)
    env.update(contract_variables(invocation.event, f"{INPUT_DIR}/{input_file_name(invocation.event)}", INPUT_DIR,
                                  OUTPUT_DIR))
    container: dict[str, Any] = {
        "name": "script",
        "image": service.image,
        "command": ["/bin/sh", SCRIPT_PATH],
        "terminationMessagePolicy": "FallbackToLogsOnError",  # a failed script's log tail names the failure
        "workingDir": WORK,
        "env": _env(env),
        "resources": container_resources(service),
        "volumeMounts": [{"name": "work", "mountPath": WORK},
                         {"name": "script", "mountPath": f"{WORK}/script", "readOnly": True}],
    }
    if service.secrets:
        container["envFrom"] = [{"secretRef": {"name": secrets_name(service, deployment)}}]
    return container


def helper_container(name: str, invocation: Invocation, service: ServiceSpec, helper_image: str) -> dict[str, Any]:
    """oscar-stream's own image running ``oscar-stream job <name>`` (fetch the input, upload the outputs)."""
    env = {
        "OSCAR_STREAM_CONFIG": HELPER_CONFIG,
        "OSCAR_STREAM_INVOCATION": invocation.to_json().decode(),
        "OSCAR_STREAM_OUTPUTS": orjson.dumps([asdict(o) for o in service.outputs]).decode(),
    }
    return {
        "name": name, "image": helper_image, "args": ["job", name], "env": _env(env),
        "volumeMounts": [{"name": "work", "mountPath": WORK},
                         {"name": "storage", "mountPath": "/etc/oscar-stream", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": HELPER_SECURITY, "resources": _HELPER_RESOURCES,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def pod_volumes(service: ServiceSpec, storage_secret: str, deployment: str) -> list[dict[str, Any]]:
    return [
        {"name": "work", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "script", "configMap": {"name": script_configmap_name(service, deployment), "defaultMode": 0o555}},
        {"name": "storage", "secret": {"secretName": storage_secret}},
    ]


@dataclass(frozen=True)
class Placement:
    """Where job pods may run, as the deployment configures it (not the service)."""

    host_network: bool = False
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()

    def apply(self, pod_spec: dict[str, Any]) -> None:
        if self.host_network:
            pod_spec["hostNetwork"] = True
            pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        if self.node_selector:
            pod_spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            pod_spec["tolerations"] = [dict(t) for t in self.tolerations]


def build_job(
    invocation: Invocation,
    service: ServiceSpec,
    namespace: str,
    helper_image: str,
    storage_secret: str,
    deployment: str,
    placement: Placement = Placement(),
) -> dict[str, Any]:
    labels, annotations = job_metadata(invocation, service, deployment)
    upload = helper_container("upload", invocation, service, helper_image)  # it reports the uploaded objects
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "initContainers": [helper_container("fetch", invocation, service, helper_image),
                           script_container(invocation, service, deployment)],
        "containers": [upload],
        "volumes": pod_volumes(service, storage_secret, deployment),
    }
    placement.apply(pod_spec)
    if service.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in service.image_pull_secrets]
    spec: dict[str, Any] = {
        "backoffLimit": service.retries,
        "ttlSecondsAfterFinished": service.ttl_s,
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
    }
    if service.timeout_s:
        spec["activeDeadlineSeconds"] = service.timeout_s
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(invocation), "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": spec,
    }
