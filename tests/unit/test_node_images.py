"""The pieces the real node's images are made from: the Dockerfile's final-stage configuration, the OCI archive
containerd imports, and the Debian archive read from apt's sources."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from oscar_stream.stack.dockerfile import final_stage_config
from oscar_stream.stack.node_images import debian_mirror
from oscar_stream.stack.oci_image import DEFAULT_PATH, ImageConfig, layer_from_folder, write_oci_archive
from oscar_stream.stack.process import StackError

REPO = Path(__file__).resolve().parents[2]


def test_the_repositorys_dockerfile_gives_the_image_its_command_user_and_environment() -> None:
    config = final_stage_config((REPO / "Dockerfile").read_text())
    assert config.entrypoint == ["oscar-stream"] and config.cmd == ["--help"]
    assert config.user == "10001:10001" and config.workdir == "/var/lib/oscar-stream"
    env = dict(item.split("=", 1) for item in config.env)
    assert env["PATH"] == f"/opt/venv/bin:{DEFAULT_PATH}"
    assert env["OSCAR_STREAM_TOPICS_DIR"] == "/opt/oscar-stream/topics" and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_only_the_final_stage_counts_and_continuations_are_joined() -> None:
    text = ("FROM a AS build\nENV BUILD_ONLY=1\nUSER 5\nCMD [\"x\"]\n\n# comment\nFROM b\n"
            "ENV A=1 \\\n    B=\"two words\"\nENTRYPOINT [\"/bin/run\", \"--flag\"]\n")
    config = final_stage_config(text)
    assert config.env == [f"PATH={DEFAULT_PATH}", "A=1", "B=two words"]
    assert config.entrypoint == ["/bin/run", "--flag"] and config.cmd == [] and config.user == ""


def test_a_shell_form_command_is_refused_with_the_instruction() -> None:
    with pytest.raises(StackError, match="CMD must be in exec form"):
        final_stage_config("FROM b\nCMD oscar-stream --help\n")


def test_an_oci_archive_names_the_image_and_its_layers_match_their_digests(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "alias").symlink_to("tool")
    layer = layer_from_folder(root)
    digest = write_oci_archive("localhost/x/y:local", [layer], ImageConfig(cmd=["/bin/tool"]), tmp_path / "i.tar")
    with tarfile.open(tmp_path / "i.tar") as archive:
        def blob(d: str) -> bytes:
            member = archive.extractfile(f"blobs/sha256/{d.split(':')[1]}")
            assert member is not None
            return member.read()

        index_file = archive.extractfile("index.json")
        assert index_file is not None
        [entry] = json.load(index_file)["manifests"]
        assert entry["digest"] == digest
        assert entry["annotations"]["io.containerd.image.name"] == "localhost/x/y:local"
        manifest = json.loads(blob(digest))
        config = json.loads(blob(manifest["config"]["digest"]))
        [layer_ref] = manifest["layers"]
        stored = blob(layer_ref["digest"])
        assert hashlib.sha256(stored).hexdigest() == layer_ref["digest"].split(":")[1]
        assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
        assert config["config"]["Cmd"] == ["/bin/tool"]
    with tarfile.open(fileobj=io.BytesIO(stored)) as content:
        assert content.getnames() == ["bin", "bin/alias", "bin/tool"]
        assert content.getmember("bin/alias").issym() and content.getmember("bin/tool").mode & 0o111


def test_the_debian_archive_is_read_from_apts_sources_never_the_security_one(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: x-security\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian\nSuites: x\n")
    assert debian_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://archive.example/debian x main\n")
    assert debian_mirror([tmp_path / "missing", one_line]) == "http://archive.example/debian"
    with pytest.raises(StackError, match="no Debian archive"):
        debian_mirror([tmp_path / "missing"])
