"""The Job spec builder (pure): names, labels, resources, the pod layout and the OSCAR contract."""

from __future__ import annotations

import re

import orjson

from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.launch.job_spec import Placement, build_job, job_name, script_configmap, secrets_object
from oscar_stream.route.model import InputSpec, OutputSpec, ServiceSpec

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _invocation(name: str = "detect", **extra: object) -> tuple[Invocation, ServiceSpec]:
    service = ServiceSpec(name=name, image="ghcr.io/x/y:1", script="#!/bin/sh\necho hi\n", cpu="1.5",
                          memory="2Gi", inputs=(InputSpec("minio.default", "survey/raw"),),
                          outputs=(OutputSpec("minio.default", "survey/out", suffixes=(".png",)),), **extra)  # type: ignore[arg-type]
    event = StorageEvent("a" * 32, CREATED, "2026-01-01T00:00:00.000Z", "minio.default", "s3", "survey",
                         "raw/m 31.fits", "s3:ObjectCreated:Put", size=3, etag="e",
                         received_at="2026-01-01T00:00:01.000Z")
    return Invocation.of(service.name, service.version, event), service


def test_job_name_is_dns_1123_short_and_deterministic() -> None:
    invocation, _ = _invocation("a" * 39)
    name = job_name(invocation)
    assert len(name) <= 63 and DNS_1123.match(name)
    assert name == job_name(Invocation.from_json(invocation.to_json()))


def test_pod_layout_resources_and_contract() -> None:
    invocation, service = _invocation(gpus=2, retries=3, timeout_s=120, ttl_s=60, variables={"A": "1"},
                                      secrets={"S": "hidden"}, image_pull_secrets=("regcred",),
                                      ephemeral_storage="1Gi")
    job = build_job(invocation, service, "ns", "helper:1", "storage-secret", "oscar-stream")
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (3, 120, 60)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    fetch, script = pod["initContainers"]
    [upload] = pod["containers"]
    assert (fetch["image"], fetch["args"], upload["args"]) == ("helper:1", ["job", "fetch"], ["job", "upload"])
    assert fetch["securityContext"]["runAsNonRoot"] and fetch["securityContext"]["readOnlyRootFilesystem"]
    assert script["image"] == "ghcr.io/x/y:1" and script["command"] == ["/bin/sh", "/oscar/script/script.sh"]
    assert script["resources"]["requests"] == {"cpu": "1.5", "memory": "2Gi", "ephemeral-storage": "1Gi"}
    assert script["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e["value"] for e in script["env"]}
    assert env["INPUT_FILE_PATH"] == "/oscar/input/m 31.fits" and env["STORAGE_OBJECT_KEY"] == "raw/m 31.fits"
    assert env["A"] == "1" and "S" not in env
    secret = secrets_object(service, "ns", "oscar-stream")["metadata"]["name"]
    assert script["envFrom"] == [{"secretRef": {"name": secret}}]
    helper_env = {e["name"]: e["value"] for e in upload["env"]}
    assert orjson.loads(helper_env["OSCAR_STREAM_OUTPUTS"])[0]["suffixes"] == [".png"]
    assert Invocation.from_json(helper_env["OSCAR_STREAM_INVOCATION"].encode()) == invocation
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert "hidden" not in orjson.dumps(job).decode()
    labels = job["metadata"]["labels"]
    assert labels["oscar-stream.io/invocation"] == invocation.id and labels["oscar-stream.io/service"] == "detect"
    assert job["metadata"]["annotations"]["oscar-stream.io/object"] == "minio.default/survey/raw/m 31.fits"


def test_no_gpu_no_secret_no_deadline() -> None:
    invocation, service = _invocation()
    job = build_job(invocation, service, "ns", "helper:1", "storage-secret", "oscar-stream")
    script = job["spec"]["template"]["spec"]["initContainers"][1]
    assert "nvidia.com/gpu" not in script["resources"]["limits"] and "envFrom" not in script
    assert "activeDeadlineSeconds" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert not {"hostNetwork", "nodeSelector", "tolerations"} & set(pod)  # the deployment's choice, off by default


def test_the_deployments_placement_reaches_the_pod() -> None:
    invocation, service = _invocation()
    toleration = {"key": "oscar-stream.io/real-node", "operator": "Exists", "effect": "NoSchedule"}
    placement = Placement(host_network=True, node_selector={"oscar-stream.io/node": "real"},
                          tolerations=(toleration,))
    pod = build_job(invocation, service, "ns", "helper:1", "s", "d", placement)["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"oscar-stream.io/node": "real"} and pod["tolerations"] == [toleration]


def test_script_configmap_is_per_service_version() -> None:
    _, service = _invocation()
    _, changed = _invocation(variables={"A": "2"})
    assert script_configmap(service, "ns", "oscar-stream")["data"]["script.sh"] == service.script
    assert (script_configmap(service, "ns", "oscar-stream")["metadata"]["name"]
            != script_configmap(changed, "ns", "oscar-stream")["metadata"]["name"])
