"""Deployment manifests: every kustomize overlay renders with the real kubectl, and the real API server of the
local stack accepts every rendered object in a server-side dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oscar_stream.stack.stack import Stack
from tests.support.kube import kubectl
from tests.support.paths import REPO

pytestmark = pytest.mark.kubernetes
OVERLAYS = REPO / "deploy" / "kustomize" / "overlays"
CRDS = Path(__file__).parents[1] / "data" / "crds"


@pytest.fixture(scope="module")
def cluster_ready(kube_stack: Stack) -> Stack:
    """CRD stand-ins for the two operators our overlays target, and the Kafka namespace of the topics."""
    for crd in sorted(CRDS.glob("*.yaml")):
        done = kubectl(kube_stack, "apply", "-f", str(crd))
        assert done.returncode == 0, done.stderr
    for name in [p.stem for p in CRDS.glob("*.yaml")]:
        plural = {"podmonitor": "podmonitors.monitoring.coreos.com", "kafkatopic": "kafkatopics.kafka.strimzi.io"}
        kubectl(kube_stack, "wait", "--for=condition=Established", f"crd/{plural[name]}", "--timeout=30s")
    namespace = kubectl(kube_stack, "create", "namespace", "kafka")
    assert namespace.returncode == 0 or "AlreadyExists" in namespace.stderr
    return kube_stack


@pytest.mark.parametrize("overlay", sorted(p.name for p in OVERLAYS.iterdir()))
def test_overlay_renders_and_the_api_server_accepts_it(cluster_ready: Stack, overlay: str) -> None:
    rendered = kubectl(cluster_ready, "kustomize", str(OVERLAYS / overlay))
    assert rendered.returncode == 0, rendered.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Role", "RoleBinding", "ServiceAccount", "ConfigMap", "Secret",
            "NetworkPolicy", "Namespace"} <= kinds
    dry_run = kubectl(cluster_ready, "apply", "--dry-run=server", "-f", "-", stdin=rendered.stdout)
    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout.count("(server dry run)") == len(objects)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["resources"]["requests"]
    if overlay in ("production", "strimzi"):
        assert deployments["oscar-stream-worker"]["spec"]["replicas"] == 3
        assert {"PodDisruptionBudget", "HorizontalPodAutoscaler", "PodMonitor"} <= kinds
    if overlay == "strimzi":
        topics = {o["spec"]["topicName"] for o in objects if o["kind"] == "KafkaTopic"}
        assert topics == {"oscar.deadletter", "oscar.events", "oscar.invocations", "oscar.raw.minio.default",
                          "oscar.results", "oscar.services", "oscar.jobs", "oscar.warm"}


def test_role_is_least_privilege(kube_stack: Stack) -> None:
    rendered = kubectl(kube_stack, "kustomize", str(OVERLAYS / "dev"))
    [role] = [o for o in yaml.safe_load_all(rendered.stdout) if o and o["kind"] == "Role"]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules[(("",), ("configmaps", "secrets"))] == {"create", "get", "list", "delete"}
    assert rules[(("",), ("pods/log",))] == {"get"}
    assert all("*" not in verbs for verbs in rules.values())
    assert not any(o["kind"] == "ClusterRole" for o in yaml.safe_load_all(rendered.stdout) if o)


def test_strimzi_topics_are_what_the_command_generates(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("kafka: {topic_prefix: oscar, replication_factor: 3}\nsources: [{id: minio.default}]\n")
    generated = subprocess.run([sys.executable, "-m", "oscar_stream", "--config", str(settings), "topics", "strimzi"],
                               capture_output=True, text=True, check=True).stdout
    committed = (OVERLAYS / "strimzi" / "kafka-topics.yaml").read_text()
    body = "".join(line + "\n" for line in committed.splitlines() if not line.startswith("#"))
    assert body == generated, "regenerate deploy/kustomize/overlays/strimzi/kafka-topics.yaml (see its header)"
