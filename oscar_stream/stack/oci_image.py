"""OCI images assembled from folders, for the local stack's real node: no registry is reachable, so its images
(the pause image, a base image with ``/bin/sh``, oscar-stream's own) are written as OCI image-layout archives
and imported into containerd. Layer entries are sorted and keep their numeric owners and times (so the byte-code
Python compiled next to its sources stays valid)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MEDIA = "application/vnd.oci.image"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    user: str = ""
    workdir: str = ""


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def layer_from_folder(folder: Path) -> bytes:
    """An uncompressed tar of ``folder``'s content (paths relative to it), in a fixed order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uname = info.gname = ""  # numeric owners: the folder was made by root for the image
            if info.isfile():
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = _reset(tarfile.TarInfo(f"blobs/sha256/{digest[7:]}"))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return digest


def _file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _reset(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_oci_archive(name: str, layers: list[bytes], config: ImageConfig, out: Path) -> str:
    """An OCI image-layout tar of ``layers`` (uncompressed tars, bottom first) named ``name``; returns the
    manifest's digest. Layers stay uncompressed: the archive is imported on this machine, never sent."""
    image_config: dict[str, Any] = {
        "architecture": "amd64", "os": "linux",
        "config": {key: value for key, value in (("Entrypoint", config.entrypoint), ("Cmd", config.cmd),
                                                 ("Env", config.env), ("User", config.user),
                                                 ("WorkingDir", config.workdir)) if value},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]},
        "history": [{"created_by": "oscar-stream stack"} for _ in layers],
    }
    with tarfile.open(out, "w") as tar:
        config_bytes = json.dumps(image_config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2, "mediaType": f"{_MEDIA}.manifest.v1+json",
            "config": {"mediaType": f"{_MEDIA}.config.v1+json", "digest": _blob(tar, config_bytes),
                       "size": len(config_bytes)},
            "layers": [{"mediaType": f"{_MEDIA}.layer.v1.tar", "digest": _blob(tar, data), "size": len(data)}
                       for data in layers],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        digest = _blob(tar, manifest_bytes)
        index = {"schemaVersion": 2, "mediaType": f"{_MEDIA}.index.v1+json", "manifests": [{
            "mediaType": f"{_MEDIA}.manifest.v1+json", "digest": digest, "size": len(manifest_bytes),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}]}
        _file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _file(tar, "index.json", json.dumps(index, sort_keys=True).encode())
    return digest
