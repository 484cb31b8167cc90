"""Deterministic ids: the same facts always give the same id, so redelivered copies can be recognised."""

from __future__ import annotations

import hashlib
import secrets


def identity_id(*parts: str | None) -> str:
    """A 32-hex-digit id derived from ``parts``."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(b"\x1f" + (part or "").encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def created_object_id(
    storage: str, bucket: str | None, key: str, version_id: str | None, etag: str | None, fallback: str | None
) -> str:
    """The id of "this version of this object was created". A job computes it for the objects it uploads and
    the store's own notification of the same upload yields it again, so both lead to one invocation downstream.
    The sequencer is left out: an uploader cannot know it, and some stores restart it."""
    return identity_id("created", storage, bucket, key, version_id or etag or fallback)


def normalize_etag(etag: str | None) -> str | None:
    """Stores differ in quoting the ETag (``"abc"`` vs ``abc``); compare it without the quotes."""
    if etag is None:
        return None
    stripped = etag.strip().strip('"')
    return stripped or None


def random_nonce() -> str:
    """32 random hex digits: what makes a service's token differ from that of a service of the same name deleted
    before (see api/tokens.py)."""
    return secrets.token_hex(16)
