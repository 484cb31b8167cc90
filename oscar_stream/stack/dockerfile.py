"""The image configuration a Dockerfile's final stage declares (ENV, USER, WORKDIR, ENTRYPOINT, CMD): the local
stack builds oscar-stream's image without a container engine, and takes these from the Dockerfile so the two
cannot drift apart."""

from __future__ import annotations

import json
import shlex

from oscar_stream.stack.oci_image import DEFAULT_PATH, ImageConfig
from oscar_stream.stack.process import StackError


def _instructions(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(instruction: str, value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise StackError(f"Dockerfile: {instruction} must be in exec form (a JSON list of strings), not {value!r}")
    return parsed


def final_stage_config(text: str) -> ImageConfig:
    env = {"PATH": DEFAULT_PATH}
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = workdir = ""
    for keyword, value in _instructions(text):
        if keyword == "FROM":
            env, entrypoint, cmd, user, workdir = {"PATH": DEFAULT_PATH}, [], [], "", ""
        elif keyword == "ENV":
            for pair in shlex.split(value):
                name, sep, setting = pair.partition("=")
                if not sep:
                    raise StackError(f"Dockerfile: ENV needs NAME=value pairs, not {value!r}")
                env[name] = setting.replace("$PATH", env.get("PATH", "")).replace("${PATH}", env.get("PATH", ""))
        elif keyword == "USER":
            user = value
        elif keyword == "WORKDIR":
            workdir = value
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(keyword, value), []
        elif keyword == "CMD":
            cmd = _exec_form(keyword, value)
    return ImageConfig(entrypoint=entrypoint, cmd=cmd, env=[f"{k}={v}" for k, v in env.items()], user=user,
                       workdir=workdir)
