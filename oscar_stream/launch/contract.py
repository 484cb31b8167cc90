"""The script's environment, the same under the local executor and in a pod (OSCAR supervisor compatible)."""

from __future__ import annotations

from urllib.parse import quote_plus

import orjson

from oscar_stream.core.events import StorageEvent
from oscar_stream.route.model import ServiceSpec


def input_file_name(event: StorageEvent) -> str:
    """The input's file name in the job's input folder: the last segment of its key (never '.' or '..': the
    event's key was checked)."""
    name = event.key.rsplit("/", 1)[-1]
    return name or "input"


def oscar_event_json(event: StorageEvent) -> str:
    """The ``EVENT`` variable: the event in the store's own format, as OSCAR scripts expect to parse it."""
    if event.kind == "dcache":
        name = event.key.rsplit("/", 1)[-1]
        return orjson.dumps({"event": {"name": name, "mask": [event.action]}, "path": event.key}).decode()
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3" if event.storage.startswith("minio.") else "aws:s3",
        "eventTime": event.time,
        "eventName": event.action,
        "userIdentity": {"principalId": event.principal or ""},
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": event.bucket, "arn": f"arn:aws:s3:::{event.bucket}"},
            "object": {
                "key": quote_plus(event.key, safe=""),
                "size": event.size,
                "eTag": event.etag,
                "versionId": event.version_id,
                "sequencer": event.sequencer,
                "contentType": event.content_type,
            },
        },
    }
    return orjson.dumps({"EventName": event.action, "Key": event.path, "Records": [record]}).decode()


def script_environment(
    service: ServiceSpec, event: StorageEvent, input_file: str, input_dir: str, output_dir: str
) -> dict[str, str]:
    """Service variables first, then the contract (which wins), then secrets are added by the caller."""
    env: dict[str, str] = dict(service.variables)
    if service.log_level:
        env.setdefault("LOG_LEVEL", service.log_level)
    env.update(contract_variables(event, input_file, input_dir, output_dir))
    return env


def contract_variables(event: StorageEvent, input_file: str, input_dir: str, output_dir: str) -> dict[str, str]:
    return {
        "INPUT_FILE_PATH": input_file,
        "TMP_INPUT_DIR": input_dir,
        "TMP_OUTPUT_DIR": output_dir,
        "STORAGE_OBJECT_KEY": event.key,
        "EVENT_TIME": event.time,
        "EVENT": oscar_event_json(event),
        "OSCAR_STREAM_EVENT": event.to_json().decode(),
    }

