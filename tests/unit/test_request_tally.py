"""The gateway's request tally exports what prometheus_client's own Counter and Histogram would for the same
requests, so the dashboard's queries read it unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from oscar_stream.request_tally import RequestTally

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 1, 5)
requests = st.lists(st.tuples(st.sampled_from(["minio.default", "unknown"]), st.sampled_from([200, 401, 503]),
                              st.one_of(st.sampled_from(BUCKETS), st.floats(0, 10, allow_nan=False))), max_size=60)


def _samples(registry: CollectorRegistry) -> set[str]:
    """The exposition's sample lines, without the ``_created`` ones only prometheus_client's own types have."""
    return {line for line in generate_latest(registry).decode().splitlines()
            if line and not line.startswith("#") and "_created" not in line}


@settings(max_examples=200, deadline=None)
@given(requests)
def test_the_tally_exports_what_a_counter_and_a_histogram_would(seen: list[tuple[str, int, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tally = RequestTally("t_requests", "requests", "t_request_seconds", "latency", BUCKETS, ours)
    counter = Counter("t_requests", "requests", ["source", "code"], registry=theirs)
    histogram = Histogram("t_request_seconds", "latency", ["source"], buckets=BUCKETS, registry=theirs)
    for source, status, seconds in seen:
        tally.record(source, status, seconds)
        counter.labels(source, str(status)).inc()
        histogram.labels(source).observe(seconds)
    assert _samples(ours) == _samples(theirs)


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    registry = CollectorRegistry()
    tally = RequestTally("t_requests", "requests", "t_request_seconds", "latency", BUCKETS, registry)
    tally.record("s", 200, 0.01)
    assert registry.get_sample_value("t_request_seconds_bucket", {"source": "s", "le": "0.005"}) == 0
    assert registry.get_sample_value("t_request_seconds_bucket", {"source": "s", "le": "0.01"}) == 1
    assert registry.get_sample_value("t_requests_total", {"source": "s", "code": "200"}) == 1


def test_buckets_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        RequestTally("t_requests", "requests", "t_request_seconds", "latency", (1, 0.5), CollectorRegistry())
