"""The S3 request signer against botocore's own (the reference every S3 store accepts): same path encoding,
same headers, same signature, for arbitrary keys, bodies, regions and times."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.storage.sigv4 import EMPTY_SHA256, S3Signer, object_path, plain_path

keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60).filter(plain_path)
times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda t: t.replace(tzinfo=UTC, microsecond=0))


def _botocore_authorization(method: str, url: str, body: bytes, region: str, when: datetime,
                            monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: when.replace(tzinfo=None))
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "s3", region).add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@settings(max_examples=200, deadline=None)
@given(key=keys, body=st.binary(max_size=64), method=st.sampled_from(["GET", "PUT"]),
       region=st.sampled_from(["us-east-1", "eu-west-3", "local"]), when=times,
       host=st.sampled_from(["127.0.0.1:17070", "s3.example.org", "[::1]:9000"]))
def test_the_signature_is_botocores_for_any_key_body_and_time(
        key: str, body: bytes, method: str, region: str, when: datetime, host: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        path = object_path("", "my-bucket", key)
        payload = hashlib.sha256(body).hexdigest() if method == "PUT" else EMPTY_SHA256
        ours = S3Signer("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region).headers(
            method, host, path, payload, when)
        theirs = _botocore_authorization(method, f"http://{host}{path}", body if method == "PUT" else b"", region,
                                         when, monkeypatch)
    assert ours["Authorization"] == theirs["authorization"]
    assert ours["x-amz-date"] == theirs["x-amz-date"]
    assert ours["x-amz-content-sha256"] == theirs["x-amz-content-sha256"]


@given(key=keys)
def test_object_paths_are_encoded_as_botocore_sends_them(key: str) -> None:
    assert object_path("", "b", key) == "/b/" + percent_encode(key, safe="/~")
    assert object_path("/s3/", "b", key) == "/s3/b/" + percent_encode(key, safe="/~")


@pytest.mark.parametrize(("key", "plain"), [
    ("a/b.csv", True), ("dir/.hidden", True), ("..x/y..", True), ("a//b", False), ("/a", False), ("a/", False),
    ("a/./b", False), ("a/../b", False), (".", False)])
def test_keys_a_url_would_rewrite_are_not_plain(key: str, plain: bool) -> None:
    assert plain_path(key) is plain


def test_the_days_signing_key_follows_the_date() -> None:
    signer = S3Signer("AK", "SK", "us-east-1")
    one = signer.headers("GET", "h", "/b/k", EMPTY_SHA256, datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    two = signer.headers("GET", "h", "/b/k", EMPTY_SHA256, datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC))
    assert "20261130/us-east-1/s3/aws4_request" in one["Authorization"]
    assert "20261201/us-east-1/s3/aws4_request" in two["Authorization"]
