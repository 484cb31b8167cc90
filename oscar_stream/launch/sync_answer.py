"""The answer to a synchronous invocation, as OSCAR's supervisor gives it: the only output file, several output
files as one zip, or the script's log when it wrote none — base64-encoded unless the client asked for raw bytes."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Sequence

RAW_TYPE = "application/octet-stream"


def sync_answer(outputs: Sequence[tuple[str, bytes]], log: bytes, raw: bool) -> tuple[bytes, str]:
    """(body, content type) for the output files (relative name, content) and the script's log."""
    if not outputs:
        return log, "text/plain; charset=utf-8"
    if len(outputs) == 1:
        body = outputs[0][1]
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in outputs:
                archive.writestr(name, content)
        body = buffer.getvalue()
    return (body, RAW_TYPE) if raw else (base64.b64encode(body), "text/plain; charset=utf-8")


def decode_input(body: bytes) -> bytes:
    """OSCAR's clients send the input base64-encoded; anything that is not base64 is the input itself."""
    stripped = body.strip()
    if not stripped:
        return body
    try:
        return base64.b64decode(stripped, validate=True)
    except ValueError:
        return body


def log_tail(log: bytes, lines: int = 5) -> str:
    return " | ".join(log.decode(errors="replace").strip().splitlines()[-lines:]) or "no output"
