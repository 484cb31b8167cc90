"""The S3 request path's decisions without a server: which failures are tried again, and which proxy the
environment gives a store."""

from __future__ import annotations

import aiohttp
import pytest
import yarl

from oscar_stream.storage.s3_objects import S3Refused, proxy_for, worth_retrying


@pytest.mark.parametrize(("failure", "again"), [
    (S3Refused(503, "ServiceUnavailable", "busy"), True),
    (S3Refused(500, "InternalError", ""), True),
    (S3Refused(429, "TooManyRequests", ""), True),
    (S3Refused(400, "RequestTimeout", "idle socket"), True),
    (S3Refused(503, "SlowDown", "reduce your rate"), True),
    (S3Refused(404, "NoSuchKey", "The specified key does not exist."), False),
    (S3Refused(403, "SignatureDoesNotMatch", ""), False),
    (S3Refused(404, "NoSuchBucket", ""), False),
    (aiohttp.ServerDisconnectedError(), True),
    (aiohttp.ClientConnectorError(None, OSError(111, "refused")), True),  # type: ignore[arg-type]
    (TimeoutError(), True),
    (ValueError("a bug"), False),
])
def test_only_transient_failures_are_tried_again(failure: BaseException, again: bool) -> None:
    assert worth_retrying(failure) is again


def test_a_refusal_says_what_the_store_said() -> None:
    assert str(S3Refused(404, "NoSuchKey", "The specified key does not exist.")) == (
        "NoSuchKey (404): The specified key does not exist.")
    assert str(S3Refused(502, "Bad Gateway", "")) == "Bad Gateway (502)"


def test_the_proxy_comes_from_the_environment_unless_the_store_is_excluded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for(yarl.URL("https://s3.example.org")) is None
    monkeypatch.setenv("https_proxy", "http://proxy.example.org:3128")
    assert proxy_for(yarl.URL("https://s3.example.org")) == "http://proxy.example.org:3128"
    assert proxy_for(yarl.URL("http://s3.example.org")) is None  # a proxy for https only
    monkeypatch.setenv("no_proxy", "example.org")
    assert proxy_for(yarl.URL("https://s3.example.org")) is None
