"""oscar-stream's native partitioner must put every key where aiokafka's (and the Java client's) puts it."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from oscar_stream.kafka.partitioner import KafkaDefaultPartitioner, partition_for


@given(st.binary(max_size=300), st.integers(1, 500))
def test_same_partition_as_aiokafka_for_any_key(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert KafkaDefaultPartitioner()(key, every, every) == DefaultPartitioner()(key, every, every)


@pytest.mark.parametrize(("key", "java_murmur2"), [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_known_values_of_the_java_client(key: bytes, java_murmur2: int) -> None:
    # Utils.murmur2 values from Kafka's own tests; the producer uses toPositive(murmur2(key)) % partitions.
    assert partition_for(key, 1 << 31) == java_murmur2 & 0x7FFFFFFF


def test_records_without_key_go_to_an_available_partition() -> None:
    chosen = {KafkaDefaultPartitioner()(None, [0, 1, 2, 3], [2]) for _ in range(20)}
    assert chosen == {2}
