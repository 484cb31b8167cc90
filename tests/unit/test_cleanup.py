"""Which ConfigMaps and Secrets may be deleted: only after staying unneeded for the grace period."""

from __future__ import annotations

from oscar_stream.launch.cleanup import UnneededTracker


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
