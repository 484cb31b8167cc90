"""Service tokens (``Authorization: Bearer`` for ``/job`` and ``/run``): 64 hex digits, as OSCAR's.

A token is derived, never stored: HMAC-SHA256 of the service's key and a random nonce kept in the service's
record, with the deployment's ``api.token_secret``. So every gateway replica computes the same token without
sharing any state, it survives restarts (the nonce is on the compacted services topic, the secret in the
configuration), it stays the same when the service is updated (the nonce is kept), a service deleted and created
again gets a new one (a new nonce), and the services topic holds nothing that would let its readers call a
service (the secret is not there)."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


def service_token(secret: SecretStr, service_key: str, nonce: str) -> str:
    message = f"{service_key}\x1f{nonce}".encode()
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def same_token(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())
