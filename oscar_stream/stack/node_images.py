"""The real node's images, built on this machine (no registry is reachable) and cached keyed on what they are
made of: the pause image (Kubernetes' own pause.c, compiled static), a shell image (Debian's busybox-static: only
``/bin/sh`` and the usual applets, as a user's image may be) and oscar-stream's own image.

oscar-stream's image follows the repository's Dockerfile without a container engine: its base is a Debian
root file system made by debootstrap (the Dockerfile's ``BASE`` build argument, here the machine's own Debian
release), the Python packages are installed into ``/opt/venv`` inside it (chroot) from wheels the host prepared,
and the image configuration (ENV, USER, WORKDIR, ENTRYPOINT, CMD) is read from the Dockerfile's final stage.
Dependencies and project code are two layers, so a code change rebuilds only the small top one."""

from __future__ import annotations

import compileall
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from oscar_stream.stack.artifacts import cached_dir, require_tool, run_logged
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.dockerfile import final_stage_config
from oscar_stream.stack.oci_image import ImageConfig, layer_from_folder, write_oci_archive
from oscar_stream.stack.process import StackError

PAUSE_IMAGE = "localhost/oscar-stream/pause:local"
SHELL_IMAGE = "localhost/oscar-stream/busybox:local"
HELPER_IMAGE = "localhost/oscar-stream/oscar-stream:local"
COMPONENT = "kubernetes-node"
_VENV_SITE = "opt/venv/lib/python{version}/site-packages"
_BASE_INCLUDES = "python3,python3-venv,ca-certificates,passwd"


@dataclass(frozen=True)
class NodeImage:
    name: str
    archive: Path

    @property
    def digest(self) -> str:
        """The manifest's digest, as containerd lists the image once imported."""
        return (self.archive.parent / "digest").read_text()


def _write_image(name: str, layers: list[bytes], config: ImageConfig, into: Path) -> None:
    (into / "digest").write_text(write_oci_archive(name, layers, config, into / "image.tar"))


def _log(ctx: StackContext) -> Path:
    return ctx.log(COMPONENT, "kubernetes-node-install")


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


def repository() -> Path:
    """The clone this package runs from: the images are built from its Dockerfile, topics and code."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "Dockerfile").is_file() or not (root / "constraints.txt").is_file():
        raise StackError("the real node's images are built from a clone of the oscar-stream repository "
                         f"(Dockerfile and constraints.txt beside {root / 'oscar_stream'}); run from a clone")
    return root


def pause_image(ctx: StackContext, pause_source: Path) -> NodeImage:
    source = pause_source.read_bytes()

    def build(tmp: Path) -> None:
        root = tmp / "root"
        root.mkdir()
        gcc = require_tool("gcc", "Install Debian's packages 'gcc' and 'libc6-dev'.")
        run_logged([gcc, "-Os", "-static", "-o", str(root / "pause"), str(pause_source)], _log(ctx), ctx.progress,
                   COMPONENT, "compiling the pause program (static)")
        _write_image(PAUSE_IMAGE, [layer_from_folder(root)], ImageConfig(entrypoint=["/pause"]), tmp)

    return NodeImage(PAUSE_IMAGE, cached_dir(ctx.cache_dir, f"image-pause-{_digest(source)}", build, ctx.progress,
                                             COMPONENT) / "image.tar")


def shell_image(ctx: StackContext) -> NodeImage:
    """Debian's busybox-static: the smallest image a user's script may need (``/bin/sh`` and applets)."""

    def build(tmp: Path) -> None:
        apt = require_tool("apt-get", "The shell image is made from Debian's busybox-static package.")
        run_logged([apt, "download", "busybox-static"], _log(ctx), ctx.progress, COMPONENT,
                   "downloading Debian's busybox-static", cwd=tmp)
        [package] = tmp.glob("busybox-static_*.deb")
        unpacked, root = tmp / "unpacked", tmp / "root"
        subprocess.run(["dpkg-deb", "-x", str(package), str(unpacked)], check=True)
        (root / "bin").mkdir(parents=True)
        for folder in ("tmp", "etc", "root"):
            (root / folder).mkdir()
        (root / "tmp").chmod(0o1777)
        shutil.copy2(unpacked / "bin" / "busybox", root / "bin" / "busybox")
        applets = subprocess.run([str(root / "bin" / "busybox"), "--list"], check=True, capture_output=True,
                                 text=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        _write_image(SHELL_IMAGE, [layer_from_folder(root)], ImageConfig(cmd=["/bin/sh"]), tmp)
        shutil.rmtree(unpacked)
        package.unlink()

    return NodeImage(SHELL_IMAGE, cached_dir(ctx.cache_dir, "image-busybox-static", build, ctx.progress,
                                             COMPONENT) / "image.tar")


def _debian_release() -> str:
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    if fields.get("ID", "").strip('"') != "debian" or not codename:
        raise StackError("the real node's oscar-stream image is made with debootstrap from the machine's Debian "
                         "release; this machine is not Debian")
    return codename


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian archive this machine's apt uses (so the build reaches exactly what apt reaches)."""
    paths = sources if sources is not None else [Path("/etc/apt/sources.list"),
                                                 *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if path.suffix == ".sources" and words[:1] == ["URIs:"] and len(words) > 1:
                if not words[1].rstrip("/").endswith("-security"):
                    return words[1]
            elif words[:1] == ["deb"]:
                uri = next((w for w in words[1:] if not w.startswith("[")), "")
                if uri and not uri.rstrip("/").endswith("-security"):
                    return uri
    raise StackError("no Debian archive found in /etc/apt/sources.list(.d); configure apt, then run again")


def _python_version(root: Path) -> str:
    done = subprocess.run(["chroot", str(root), "python3", "-c",
                           "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _dependency_wheels(ctx: StackContext, repo: Path, into: Path) -> None:
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    run_logged([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
                "-c", str(repo / "constraints.txt"), "-d", str(into), *dependencies], _log(ctx), ctx.progress,
               COMPONENT, "fetching the wheels of oscar-stream's dependencies for its image")


def _install_project(repo: Path, site: Path, venv_bin: Path) -> None:
    """What installing oscar-stream's (pure Python) wheel does: the package with its data, its metadata and
    its command."""
    package = site / "oscar_stream"
    shutil.copytree(repo / "oscar_stream", package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    version = re.search(r'__version__ = "([^"]+)"', (repo / "oscar_stream" / "__init__.py").read_text())
    if version is None:
        raise StackError("oscar_stream/__init__.py has no __version__")
    info = site / f"oscar_stream-{version[1]}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version[1]}\n")
    (info / "top_level.txt").write_text("oscar_stream\n")
    scripts = project.get("scripts", {})
    (info / "entry_points.txt").write_text("[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in
                                                                             scripts.items()))
    (info / "INSTALLER").write_text("oscar-stream stack\n")
    venv_bin.mkdir(parents=True)
    for command, target in scripts.items():
        module, function = target.split(":")
        script = venv_bin / command
        script.write_text(f"#!/opt/venv/bin/python3\nimport sys\nfrom {module} import {function}\n"
                          f"sys.exit({function}())\n")
        script.chmod(0o755)


def _helper_base(ctx: StackContext, repo: Path) -> Path:
    """Debian + Python + oscar-stream's dependencies in ``/opt/venv`` + the Dockerfile's user, as one layer."""
    inputs = [(repo / name).read_bytes() for name in ("Dockerfile", "constraints.txt", "pyproject.toml")]
    release = _debian_release()

    def build(tmp: Path) -> None:
        debootstrap = require_tool("debootstrap", "Install Debian's package 'debootstrap'.")
        root = tmp / "root"
        run_logged([debootstrap, "--variant=minbase", f"--include={_BASE_INCLUDES}", release, str(root),
                    debian_mirror()], _log(ctx), ctx.progress, COMPONENT,
                   f"making a Debian {release} root file system for oscar-stream's image (debootstrap)")
        version = _python_version(root)
        host = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if version != host:
            raise StackError(f"Debian {release} has Python {version} but wheels are prepared with Python {host}; "
                             "run oscar-stream with the Python of the machine's Debian release")
        wheels = root / "tmp" / "wheels"
        _dependency_wheels(ctx, repo, wheels)
        chroot = ["chroot", str(root)]
        run_logged([*chroot, "python3", "-m", "venv", "/opt/venv"], _log(ctx), ctx.progress, COMPONENT,
                   "creating /opt/venv in the image")
        run_logged([*chroot, "sh", "-c", "/opt/venv/bin/pip install -q --no-index --disable-pip-version-check "
                    "/tmp/wheels/*.whl"], _log(ctx), ctx.progress, COMPONENT,
                   "installing oscar-stream's dependencies in the image")
        run_logged([*chroot, "sh", "-c", "groupadd --gid 10001 oscar && useradd --uid 10001 --gid oscar "
                    "--no-create-home --shell /usr/sbin/nologin oscar"], _log(ctx), ctx.progress, COMPONENT,
                   "adding the image's user")
        shutil.rmtree(wheels)
        for folder in ("dev", "proc", "sys", "var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
            for entry in (root / folder).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        (tmp / "python-version").write_text(version)
        (tmp / "layer.tar").write_bytes(layer_from_folder(root))
        shutil.rmtree(root)

    return cached_dir(ctx.cache_dir, f"image-oscar-stream-base-{release}-{_digest(*inputs)}", build, ctx.progress,
                      COMPONENT)


def _source_digest(repo: Path) -> str:
    files = sorted([*(repo / "oscar_stream").rglob("*.py"), *(repo / "oscar_stream").rglob("*.yaml"),
                    *(repo / "oscar_stream").rglob("*.json"), *(repo / "topics").rglob("*.yaml"),
                    repo / "Dockerfile", repo / "pyproject.toml", repo / "constraints.txt"])
    return _digest(*(str(f.relative_to(repo)).encode() + b"\0" + f.read_bytes() for f in files))


def helper_image(ctx: StackContext) -> NodeImage:
    repo = repository()
    base = _helper_base(ctx, repo)
    config = final_stage_config((repo / "Dockerfile").read_text())

    def build(tmp: Path) -> None:
        top = tmp / "top"
        venv = top / "opt" / "venv"
        _install_project(repo, top / _VENV_SITE.format(version=(base / "python-version").read_text()),
                         venv / "bin")
        shutil.copytree(repo / "topics", top / "opt" / "oscar-stream" / "topics")
        if config.workdir:
            (top / config.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        compileall.compile_dir(str(top), quiet=1)  # the image's root file system is read-only at run time
        _write_image(HELPER_IMAGE, [(base / "layer.tar").read_bytes(), layer_from_folder(top)], config, tmp)
        shutil.rmtree(top)

    prefix = f"image-oscar-stream-{base.name.rsplit('-', 1)[1]}-"
    built = cached_dir(ctx.cache_dir, prefix + _source_digest(repo), build, ctx.progress, COMPONENT)
    for older in ctx.cache_dir.glob(prefix + "*"):  # each is as large as the base: keep only the current one
        if older != built and older.is_dir():
            shutil.rmtree(older, ignore_errors=True)
    return NodeImage(HELPER_IMAGE, built / "image.tar")
