"""AWS Signature Version 4 for path-style S3 object requests: the headers that sign one GET or PUT.

botocore spends ~2.7 ms of CPU on a small PUT and GET (its request pipeline: validation, endpoint rules, hooks,
user agent, checksums, parsing); a request signed here and sent with aiohttp costs ~0.5 ms (measured on the
local stack). Only the signing is needed for an object's bytes, so the executors' hot path signs its own."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def object_path(base_path: str, bucket: str, key: str) -> str:
    """The request's path, encoded as S3 canonicalizes it (every byte but ``A-Za-z0-9-._~`` and ``/``)."""
    return quote(f"{base_path.rstrip('/')}/{bucket}/{key}", safe="/~")


def plain_path(key: str) -> bool:
    """Whether a key goes through a URL unchanged by normalization (no empty, ``.`` or ``..`` segment)."""
    return all(part not in ("", ".", "..") for part in key.split("/"))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class S3Signer:
    """Signs requests with one set of credentials; the day's signing key is derived once per day."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.region = region
        self._day = ""
        self._day_key = b""

    def _key(self, day: str) -> bytes:
        if day != self._day:
            key = _hmac(f"AWS4{self._secret}".encode(), day)
            for part in (self.region, "s3", "aws4_request"):
                key = _hmac(key, part)
            self._day, self._day_key = day, key
        return self._day_key

    def headers(self, method: str, host: str, path: str, payload_sha256: str,
                now: datetime | None = None) -> dict[str, str]:
        """The headers to send with a request without query string: ``Host`` and the signed ones.
        ``path`` is already encoded (:func:`object_path`)."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": stamp}
        names = ";".join(signed)  # already in sorted order
        canonical = "\n".join((method, path, "", *(f"{k}:{v}" for k, v in signed.items()), "", names,
                               payload_sha256))
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(stamp[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
        return {**signed, "Authorization": f"{ALGORITHM} Credential={self.access_key}/{scope}, "
                                           f"SignedHeaders={names}, Signature={signature}"}
