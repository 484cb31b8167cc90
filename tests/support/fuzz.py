"""Malformed and mutated store notifications, generated from a seed (the same seed gives the same payloads)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from tests.support.paths import EVENTS

SAMPLES = [EVENTS / name for name in ("minio-put.json", "minio-put-encoded-key.json", "minio-delete.json",
                                     "minio-multipart.json", "aws-s3-put.json", "versitygw-put.json")]
_ODD_VALUES: list[Any] = [None, "", 0, -1, 2**63 - 1, 1.5, True, [], {}, "x" * 5000, "\x00", "../..", "ñ" * 700,
                          "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "not a time", "%FF", "a/./b"]


def _mutate_json(doc: Any, rng: random.Random) -> Any:
    """Replace one value somewhere in ``doc`` with an odd one (or drop a key)."""
    if isinstance(doc, dict) and doc:
        key = rng.choice(list(doc))
        if rng.random() < 0.2:
            return {k: v for k, v in doc.items() if k != key}
        return {**doc, key: _mutate_json(doc[key], rng) if rng.random() < 0.7 else rng.choice(_ODD_VALUES)}
    if isinstance(doc, list) and doc:
        index = rng.randrange(len(doc))
        return [*doc[:index], _mutate_json(doc[index], rng), *doc[index + 1:]]
    return rng.choice(_ODD_VALUES)


def _flip_bytes(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _strategies(rng: random.Random) -> list[Callable[[bytes, Any], bytes]]:
    return [
        lambda body, doc: orjson.dumps(_mutate_json(doc, rng)),
        lambda body, doc: orjson.dumps(_mutate_json(_mutate_json(doc, rng), rng)),
        lambda body, doc: _flip_bytes(body, rng),
        lambda body, doc: body[: rng.randrange(1, len(body))],
        lambda body, doc: rng.randbytes(rng.randint(1, 400)),
        lambda body, doc: orjson.dumps({"Records": [doc["Records"][0]] * rng.randint(2, 40)}),
        lambda body, doc: orjson.dumps({**doc, "Key": "k" * rng.choice((10, 3000, 600_000))}),
        lambda body, doc: b"[" * rng.randint(1, 2000) + b"]" * rng.randint(0, 2000),
        lambda body, doc: b" " * 1_000_001 + body,  # over the gateway's limit
        lambda body, doc: body,  # a valid one now and then
    ]


def payloads(count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    bodies = [path.read_bytes() for path in SAMPLES]
    docs = [orjson.loads(body) for body in bodies]
    strategies = _strategies(rng)
    for _ in range(count):
        index = rng.randrange(len(bodies))
        yield rng.choice(strategies)(bodies[index], docs[index])


def headers(rng: random.Random) -> list[tuple[str, bytes]]:
    """Raw-record headers as a careless producer might write them."""
    choices: list[list[tuple[str, bytes]]] = [
        [], [("oscar-received-at", b"2026-11-30T10:00:00.000Z")], [("oscar-received-at", b"yesterday")],
        [("oscar-received-at", b"0001-01-01T00:00:00+05:00")], [("oscar-received-at", b"\xff\xfe")],
        [("content-type", b"application/json"), ("oscar-transport", rng.randbytes(8))],
    ]
    return rng.choice(choices)
