"""Which ConfigMaps and Secrets may be deleted: the references a pod spec holds, and the grace period."""

from __future__ import annotations

from kubernetes_asyncio import client

from oscar_stream.launch.cleanup import UnneededTracker, referenced_objects


def test_references_of_a_pod_spec_volumes_and_env_from() -> None:
    spec = client.V1PodSpec(
        volumes=[client.V1Volume(name="a", config_map=client.V1ConfigMapVolumeSource(name="script-v1")),
                 client.V1Volume(name="b", secret=client.V1SecretVolumeSource(secret_name="storage-1")),
                 client.V1Volume(name="c", empty_dir=client.V1EmptyDirVolumeSource())],
        init_containers=[client.V1Container(name="s", env_from=[
            client.V1EnvFromSource(secret_ref=client.V1SecretEnvSource(name="secrets-v1"))])],
        containers=[client.V1Container(name="u", env_from=[
            client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(name="extra"))])],
    )
    assert referenced_objects(spec) == {"script-v1", "storage-1", "secrets-v1", "extra"}
    assert referenced_objects(client.V1PodSpec(containers=[client.V1Container(name="x")])) == set()


def test_an_object_goes_only_after_staying_unneeded_for_the_grace_period() -> None:
    tracker = UnneededTracker(grace_s=60)
    present = [("ConfigMap", "old"), ("ConfigMap", "new"), ("Secret", "old")]
    assert tracker.due(present, {"new"}, now=0) == []
    assert tracker.due(present, {"new"}, now=59) == []
    # Needed again in between: the clock starts over.
    assert tracker.due(present, {"new", "old"}, now=60) == []
    assert tracker.due(present, {"new"}, now=100) == []
    assert tracker.due(present, {"new"}, now=160) == [("ConfigMap", "old"), ("Secret", "old")]


def test_objects_that_disappeared_are_forgotten() -> None:
    tracker = UnneededTracker(grace_s=10)
    assert tracker.due([("ConfigMap", "x")], set(), now=0) == []
    assert tracker.due([], set(), now=5) == []
    assert tracker.due([("ConfigMap", "x")], set(), now=12) == []  # seen again: a new object, a new clock
    assert tracker.due([("ConfigMap", "x")], set(), now=22) == [("ConfigMap", "x")]
    assert UnneededTracker(grace_s=0).due([("Secret", "y")], set(), now=0) == [("Secret", "y")]
