"""The pure pieces of OSCAR's API: services from and to OSCAR's JSON (through the FDL validation), tokens, and
job records as OSCAR's JobInfo."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from oscar_stream.api.service_json import InvalidService, describe_notes, service_from_json, service_to_json
from oscar_stream.api.tokens import same_token, service_token
from oscar_stream.config import StorageSettings
from oscar_stream.core.ids import random_nonce
from oscar_stream.core.jobs import JobRecord, job_name

BODY = {"name": "grayify", "image": "ghcr.io/grycap/imagemagick", "script": "#!/bin/sh\nconvert ...\n",
        "cpu": "1.0", "memory": "1Gi", "vo": "lab.example.org",
        "environment": {"variables": {"LEVEL": "2"}, "secrets": {"KEY": "s3cret"}},
        "input": [{"storage_provider": "minio", "path": "/grayify/in/"}],
        "output": [{"storage_provider": "minio", "path": "grayify/out", "suffix": [".png"]}]}


def test_a_service_from_oscars_json_is_checked_like_an_fdl_entry() -> None:
    spec, notes = service_from_json(BODY, "lab")
    assert (spec.name, spec.cluster, spec.cpu, spec.memory) == ("grayify", "lab", "1.0", "1Gi")
    assert spec.script.startswith("#!/bin/sh") and spec.inputs[0].path == "grayify/in"
    assert spec.oscar_fields == {"vo": "lab.example.org"}
    assert any("'vo' is accepted but not implemented" in w for w in describe_notes(notes)["warning"])
    assert service_from_json(BODY, None)[0].cluster is None


def test_oscar_cli_zero_values_mean_not_given() -> None:
    body = {**BODY, "cpu": "", "memory": "", "log_level": "", "input": None, "vo": "", "alpine": False,
            "expose": {"min_scale": 0, "api_port": 0}, "mount": {"storage_provider": "", "path": ""},
            "environment": {"variables": None, "secrets": None}}
    spec, notes = service_from_json(body, "lab")
    assert (spec.cpu, spec.memory, spec.inputs, dict(spec.variables)) == ("0.2", "256Mi", (), {})
    assert describe_notes(notes)["warning"] == []


@pytest.mark.parametrize(("body", "expected"), [
    ([1, 2], "the service specification must be a JSON object"),
    ({**BODY, "memory": "lots"}, "memory: 'lots' is not a Kubernetes quantity"),
    ({**BODY, "name": "Bad_Name"}, "name: 'Bad_Name' is not a valid service name"),
    ({k: v for k, v in BODY.items() if k != "image"}, "image: is required"),
    ({**BODY, "input": [{"storage_provider": "minio.nowhere", "path": "x/in"}]},
     "input[0].storage_provider: unknown storage provider 'minio.nowhere'"),
])
def test_invalid_services_say_where_and_what(body: object, expected: str) -> None:
    with pytest.raises(InvalidService) as caught:
        service_from_json(body, "lab")
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_the_answer_has_what_oscar_adds_and_hides_secrets() -> None:
    spec, _ = service_from_json(BODY, "lab")
    store = StorageSettings(id="minio.default", endpoint="http://s3:9000", access_key="ak", secret_key=SecretStr("sk"))
    answer = service_to_json(spec, "t" * 64, store)
    assert answer["token"] == "t" * 64 and answer["labels"]["oscar_service"] == "grayify"
    assert answer["environment"]["secrets"] == {"KEY": "hidden"} and "s3cret" not in str(answer)
    assert answer["storage_providers"]["minio"]["default"]["endpoint"] == "http://s3:9000"
    assert "sk" not in str(answer["storage_providers"])
    assert answer["input"] == [{"storage_provider": "minio.default", "path": "grayify/in"}]
    assert answer["output"] == [{"storage_provider": "minio.default", "path": "grayify/out", "suffix": [".png"]}]
    assert answer["vo"] == "lab.example.org" and answer["cpu"] == "1.0"


def test_tokens_are_derived_and_stable() -> None:
    secret, nonce = SecretStr("deployment-secret"), random_nonce()
    token = service_token(secret, "grayify", nonce)
    assert len(token) == 64 and int(token, 16) >= 0
    assert token == service_token(secret, "grayify", nonce)  # any replica, after any restart
    assert token != service_token(secret, "grayify", random_nonce())  # deleted and created again
    assert token != service_token(SecretStr("other"), "grayify", nonce)  # the secret changed
    assert same_token(token, token) and not same_token(token, "0" * 64)


def test_job_records_as_oscars_job_info() -> None:
    record = JobRecord(job_name("grayify", "a" * 32), "grayify", "a" * 32, "Running", "local",
                       "2026-11-30T10:00:00.250Z", start_time="2026-11-30T10:00:01.999Z")
    assert record.job == "grayify-" + "a" * 23 and not record.finished
    assert record.oscar_info() == {"status": "Running", "creation_time": "2026-11-30T10:00:00Z",
                                   "start_time": "2026-11-30T10:00:01Z"}
    assert JobRecord.from_json(record.to_json()) == record
