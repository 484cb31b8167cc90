"""The Kubernetes objects of a warm service (pure: dictionaries in, dictionaries out).

A Deployment ``oscar-warm-<service>`` whose pods hold two containers sharing ``/oscar/warm``:

* ``runner`` — the service's own image running the warm runner (launch/warm_runner.py): it needs only
  ``/bin/sh``, and runs the script once per request with the job contract;
* ``dispatcher`` — oscar-stream's image (``oscar-stream warm-replica``): takes requests over HTTP, stages input
  and outputs through the shared folder, hands each request to the runner.

A ClusterIP Service of the same name reaches the dispatchers. ``spec.replicas`` is the workers' to set (scaled
from the work); everything else changes with the service's version.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from oscar_stream.launch.job_spec import (
    ANNOTATION_VERSION,
    HELPER_CONFIG,
    HELPER_SECURITY,
    SCRIPT_PATH,
    WORK,
    Placement,
    container_resources,
    owned_labels,
    script_configmap_name,
    secrets_name,
)
from oscar_stream.launch.warm_runner import RUNNER_SCRIPT
from oscar_stream.route.model import ServiceSpec

WARM_DIR = f"{WORK}/warm"
LABEL_WARM = "oscar-stream.io/warm"
PORT = 8080
HOST_PORTS = (20000, 30000)  # with the host's network, each service takes a port of its own in this range
TOKEN_KEY = "token"
_HELPER_RESOURCES = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}


def warm_name(service: str) -> str:
    return f"oscar-warm-{service}"


def token_secret_name(deployment: str) -> str:
    return f"oscar-warm-token-{deployment}"[:63].rstrip("-.")


def dispatcher_port(service: str, host_network: bool) -> int:
    """8080 in the pod's own network; with the node's network, a port derived from the name (pods of different
    services on one node must not collide; the scheduler keeps two replicas of one service apart)."""
    if not host_network:
        return PORT
    low, high = HOST_PORTS
    return low + zlib.crc32(service.encode()) % (high - low)


def selector_labels(service: ServiceSpec, deployment: str) -> dict[str, str]:
    return {**owned_labels(deployment, service.name), LABEL_WARM: "true"}


def dispatcher_settings(service: ServiceSpec, port: int, host_network: bool) -> dict[str, Any]:
    """What the dispatcher needs (OSCAR_STREAM_WARM_SERVICE): the service without its secrets, and where to
    listen — the pod's own address, or the node's loopback when the pod shares the node's network."""
    record = service.to_record()
    record["secrets"] = {}
    return {"service": record, "host": "127.0.0.1" if host_network else "0.0.0.0", "port": port}


def warm_deployment(service: ServiceSpec, namespace: str, deployment: str, helper_image: str, storage_secret: str,
                    replicas: int, placement: Placement) -> dict[str, Any]:
    assert service.warm is not None
    port = dispatcher_port(service.name, placement.host_network)
    labels = {**service.labels, **selector_labels(service, deployment)}
    annotations = {**service.annotations, ANNOTATION_VERSION: service.version}
    runner_env = dict(service.variables)
    if service.log_level:
        runner_env.setdefault("LOG_LEVEL", service.log_level)
    runner_env["HOME"] = f"{WARM_DIR}/home"
    runner: dict[str, Any] = {
        "name": "runner", "image": service.image,
        "command": ["/bin/sh", "-c", RUNNER_SCRIPT, SCRIPT_PATH, WARM_DIR],
        "env": [{"name": k, "value": v} for k, v in runner_env.items()],
        "resources": container_resources(service),
        "volumeMounts": [{"name": "warm", "mountPath": WARM_DIR},
                         {"name": "script", "mountPath": f"{WORK}/script", "readOnly": True}],
    }
    if service.secrets:
        runner["envFrom"] = [{"secretRef": {"name": secrets_name(service, deployment)}}]
    dispatcher = {
        "name": "dispatcher", "image": helper_image, "args": ["warm-replica"],
        "env": [{"name": "OSCAR_STREAM_CONFIG", "value": HELPER_CONFIG},
                {"name": "OSCAR_STREAM_WARM_SERVICE",
                 "value": orjson.dumps(dispatcher_settings(service, port, placement.host_network)).decode()},
                {"name": "OSCAR_STREAM_WARM_TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": token_secret_name(deployment), "key": TOKEN_KEY}}}],
        "ports": [{"name": "dispatch", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 1, "failureThreshold": 1},
        "volumeMounts": [{"name": "warm", "mountPath": WARM_DIR},
                         {"name": "storage", "mountPath": "/etc/oscar-stream", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": HELPER_SECURITY, "resources": _HELPER_RESOURCES,
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [runner, dispatcher],
        "volumes": [
            {"name": "warm", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "script", "configMap": {"name": script_configmap_name(service, deployment),
                                             "defaultMode": 0o555}},
            {"name": "storage", "secret": {"secretName": storage_secret}},
        ],
    }
    placement.apply(pod_spec)
    if service.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in service.image_pull_secrets]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": warm_name(service.name), "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(service, deployment)},
            # a new version replaces replicas one by one, never below what serves now
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def warm_service_object(service: ServiceSpec, namespace: str, deployment: str, host_network: bool) -> dict[str, Any]:
    port = dispatcher_port(service.name, host_network)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": warm_name(service.name), "namespace": namespace,
                     "labels": selector_labels(service, deployment),
                     "annotations": {ANNOTATION_VERSION: service.version}},
        "spec": {"type": "ClusterIP", "selector": selector_labels(service, deployment),
                 "ports": [{"name": "dispatch", "port": port, "targetPort": port, "protocol": "TCP"}]},
    }


def token_secret(namespace: str, deployment: str, token: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": token_secret_name(deployment), "namespace": namespace,
                         "labels": owned_labels(deployment)},
            "stringData": {TOKEN_KEY: token}}


# --- exposed services ------------------------------------------------------------------------------------------

def exposed_name(service: str) -> str:
    return f"oscar-exposed-{service}"


def exposed_labels(service: ServiceSpec, deployment: str) -> dict[str, str]:
    return {**owned_labels(deployment, service.name), LABEL_EXPOSED: "true"}


LABEL_EXPOSED = "oscar-stream.io/exposed"


def exposed_deployment(service: ServiceSpec, namespace: str, deployment: str,
                       placement: Placement) -> dict[str, Any]:
    """The service's own server: its script (or, with ``default_command``, the image's command) listening on
    ``api_port`` (also given as $PORT)."""
    expose = service.expose
    assert expose is not None
    labels = {**service.labels, **exposed_labels(service, deployment)}
    annotations = {**service.annotations, ANNOTATION_VERSION: service.version}
    env = {**service.variables, "PORT": str(expose.api_port)}
    server: dict[str, Any] = {
        "name": "server", "image": service.image,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "api", "containerPort": expose.api_port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": expose.api_port}, "periodSeconds": 2},
        "resources": container_resources(service),
    }
    volumes: list[dict[str, Any]] = []
    if not expose.default_command:
        server["command"] = ["/bin/sh", SCRIPT_PATH]
        server["volumeMounts"] = [{"name": "script", "mountPath": f"{WORK}/script", "readOnly": True}]
        volumes.append({"name": "script", "configMap": {"name": script_configmap_name(service, deployment),
                                                        "defaultMode": 0o555}})
    if service.secrets:
        server["envFrom"] = [{"secretRef": {"name": secrets_name(service, deployment)}}]
    pod_spec: dict[str, Any] = {"automountServiceAccountToken": False, "enableServiceLinks": False,
                                "containers": [server], "volumes": volumes}
    placement.apply(pod_spec)
    if service.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in service.image_pull_secrets]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": exposed_name(service.name), "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": {
            "replicas": expose.min_replicas,
            "selector": {"matchLabels": exposed_labels(service, deployment)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def exposed_service_object(service: ServiceSpec, namespace: str, deployment: str) -> dict[str, Any]:
    assert service.expose is not None
    port = service.expose.api_port
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": exposed_name(service.name), "namespace": namespace,
                     "labels": exposed_labels(service, deployment),
                     "annotations": {ANNOTATION_VERSION: service.version}},
        "spec": {"type": "ClusterIP", "selector": exposed_labels(service, deployment),
                 "ports": [{"name": "api", "port": port, "targetPort": port, "protocol": "TCP"}]},
    }


def exposed_autoscaler(service: ServiceSpec, namespace: str, deployment: str) -> dict[str, Any]:
    """Replicas between the service's bounds, from CPU use against ``cpu_threshold`` percent of the request."""
    expose = service.expose
    assert expose is not None
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": exposed_name(service.name), "namespace": namespace,
                     "labels": exposed_labels(service, deployment),
                     "annotations": {ANNOTATION_VERSION: service.version}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": exposed_name(service.name)},
            "minReplicas": expose.min_replicas, "maxReplicas": expose.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": expose.cpu_threshold}}}],
        },
    }
