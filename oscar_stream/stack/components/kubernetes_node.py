"""A real node for the local control plane: a kubelet (the control plane's release) running pods with
containerd 2 and runc, all built from Go modules, with the images it needs built here (see node_images.py).

The node is tainted, so only pods that tolerate it run there (kwok's fake node keeps the scale tests); its pods
use the host network (the stack's servers listen on loopback), so no pod network is set up. The kubelet serves
on 127.0.0.1 and accepts only the apiserver's client certificate."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from oscar_stream.stack import node_images
from oscar_stream.stack.artifacts import cached_dir, run_logged
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.components.kubernetes import (
    KUBERNETES_VERSION,
    KubernetesControlPlane,
    go,
    kubernetes_ldflags,
    wrapper_build,
)
from oscar_stream.stack.process import ProcessRecord, StackError, spawn, terminate, wait_until

CONTAINERD_VERSION = "v2.2.9"
RUNC_VERSION = "v1.3.4"
CNI_PLUGINS_VERSION = "v1.9.1"
NODE_NAME = "real-node-0"
NODE_LABEL = ("oscar-stream.io/node", "real")
NODE_TAINT = "oscar-stream.io/real-node"
KUBELET_HEALTHZ_PORT = 10248
_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
_CNI_CONFIG = {"cniVersion": "1.0.0", "name": "oscar-local-loopback", "plugins": [{"type": "loopback"}]}


class KubernetesNode(Component):
    name = "kubernetes-node"
    needs = ("kubernetes",)

    def __init__(self, control_plane: KubernetesControlPlane) -> None:
        self.control_plane = control_plane

    def version(self) -> str:
        return (f"kubelet {KUBERNETES_VERSION}, containerd {CONTAINERD_VERSION}, runc {RUNC_VERSION}, "
                f"CNI plugins {CNI_PLUGINS_VERSION}")

    def _bin(self, ctx: StackContext, artifact: str, command: str) -> Path:
        return ctx.cache_dir / artifact / "bin" / command

    def _go_install(self, ctx: StackContext, key: str, packages: list[str], what: str, cgo: bool = False,
                    tags: str = "") -> None:
        def build(tmp: Path) -> None:
            for package in packages:
                run_logged([go(), "install", "-trimpath", "-ldflags=-s -w", f"-tags={tags}", package],
                           ctx.log(self.name, "kubernetes-node-install"), ctx.progress, self.name,
                           f"building {what}: {package.split('@')[0].rsplit('/', 1)[-1]}",
                           env={"GOBIN": str(tmp / "bin"), "CGO_ENABLED": "1" if cgo else "0"})

        cached_dir(ctx.cache_dir, key, build, ctx.progress, self.name)

    def install(self, ctx: StackContext) -> None:
        cached_dir(ctx.cache_dir, f"kubelet-{KUBERNETES_VERSION}", lambda tmp: wrapper_build(
            ctx, tmp, f"k8s.io/kubernetes {KUBERNETES_VERSION}", {"kubelet": "k8s.io/kubernetes/cmd/kubelet"},
            kubernetes_ldflags(), f"kubelet {KUBERNETES_VERSION}"), ctx.progress, self.name)
        containerd = "github.com/containerd/containerd/v2/cmd"
        self._go_install(ctx, f"containerd-{CONTAINERD_VERSION}",
                         [f"{containerd}/{c}@{CONTAINERD_VERSION}" for c in
                          ("containerd", "containerd-shim-runc-v2", "ctr")], f"containerd {CONTAINERD_VERSION}")
        # runc needs cgo (libcontainer's nsenter) and libseccomp: containerd gives pods a seccomp profile
        self._go_install(ctx, f"runc-{RUNC_VERSION}-seccomp", [f"github.com/opencontainers/runc@{RUNC_VERSION}"],
                         f"runc {RUNC_VERSION}", cgo=True, tags="seccomp")
        self._go_install(ctx, f"cni-plugins-{CNI_PLUGINS_VERSION}",
                         [f"github.com/containernetworking/plugins/plugins/main/loopback@{CNI_PLUGINS_VERSION}"],
                         f"CNI plugins {CNI_PLUGINS_VERSION}")
        self.images(ctx)

    def images(self, ctx: StackContext) -> list[node_images.NodeImage]:
        return [node_images.pause_image(ctx, _kubernetes_source(ctx) / "build" / "pause" / "linux" / "pause.c"),
                node_images.shell_image(ctx), node_images.helper_image(ctx)]

    # --- processes ---------------------------------------------------------------------------------------

    def _socket(self, ctx: StackContext) -> Path:
        return ctx.workdir(self.name) / "containerd.sock"

    def _containerd_config(self, ctx: StackContext) -> Path:
        work = ctx.workdir(self.name)
        cni = work / "cni"
        cni.mkdir(exist_ok=True)
        (cni / "10-loopback.conflist").write_text(json.dumps(_CNI_CONFIG))
        runc = self._bin(ctx, f"runc-{RUNC_VERSION}-seccomp", "runc")
        config = work / "containerd.toml"
        config.write_text("\n".join([
            "version = 3",
            f'root = "{work / "containerd-root"}"',
            f'state = "{work / "containerd-state"}"',
            "[grpc]",
            f'  address = "{self._socket(ctx)}"',
            "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
            f'  sandbox = "{node_images.PAUSE_IMAGE}"',
            "[plugins.'io.containerd.cri.v1.runtime']",
            # Lowering a process's OOM score needs CAP_SYS_RESOURCE, which root inside a sandboxed machine may
            # lack; pods then keep at least the kubelet's score instead of failing to start.
            "  restrict_oom_score_adj = true",
            "[plugins.'io.containerd.cri.v1.runtime'.cni]",
            f'  bin_dirs = ["{self._bin(ctx, f"cni-plugins-{CNI_PLUGINS_VERSION}", "loopback").parent}"]',
            f'  conf_dir = "{cni}"',
            "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
            f'  BinaryName = "{runc}"',
            "",
        ]))
        return config

    def _kubelet_config(self, ctx: StackContext) -> Path:
        pki = ctx.workdir("kubernetes") / "pki"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": KUBELET_HEALTHZ_PORT,
            "failCgroupV1": False,  # this machine has cgroup v1 (with a unified hierarchy beside it)
            "failSwapOn": False, "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "containerRuntimeEndpoint": f"unix://{self._socket(ctx)}",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(pki / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},  # only the apiserver holds a certificate of this CA
            "registerWithTaints": [{"key": NODE_TAINT, "value": "true", "effect": "NoSchedule"}],
            # a development machine's disk is often fuller than the defaults allow; never evict the tests' pods
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "resolvConf": "", "localStorageCapacityIsolation": False,
            "maxPods": 50,
        }
        path = ctx.workdir(self.name) / "kubelet.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        _stop_leftover_containers(self._socket(ctx))
        records: list[ProcessRecord] = []
        try:
            with ctx.progress.step(self.name, f"starting containerd {CONTAINERD_VERSION} (runc {RUNC_VERSION})"):
                socket = self._socket(ctx)
                socket.unlink(missing_ok=True)
                binary = self._bin(ctx, f"containerd-{CONTAINERD_VERSION}", "containerd")
                containerd = spawn("containerd", [str(binary), f"--config={self._containerd_config(ctx)}",
                                                  "--log-level=warn"], ctx.log(self.name, "containerd"),
                                   env={"PATH": f"{binary.parent}:{os.environ.get('PATH', '')}"})  # its shim
                records.append(containerd)
                wait_until(containerd, socket.exists, 60, "containerd socket")
            self.refresh(ctx)
            with ctx.progress.step(self.name, f"starting kubelet {KUBERNETES_VERSION} as node {NODE_NAME}"):
                records.append(spawn("kubelet", [
                    str(self._bin(ctx, f"kubelet-{KUBERNETES_VERSION}", "kubelet")),
                    f"--config={self._kubelet_config(ctx)}",
                    f"--kubeconfig={self.control_plane.kubeconfig_path(ctx)}",
                    f"--root-dir={ctx.workdir(self.name) / 'kubelet'}",
                    # The kubelet refuses a loopback node IP; as an "external cloud provider" it leaves the
                    # node's addresses to us, and the apiserver reaches it (pod logs) on 127.0.0.1.
                    f"--hostname-override={NODE_NAME}", "--cloud-provider=external",
                    f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}", "--v=1",
                ], ctx.log(self.name, "kubelet")))
                started = time.time()
                self._wait(ctx, records, lambda: self._registered_since(ctx, started), "register")
                self._initialize(ctx)
                self._wait(ctx, records, lambda: self._node_ready(ctx), "become Ready")
        except Exception:
            for record in reversed(records):
                terminate(record)
            _stop_leftover_containers(self._socket(ctx))
            raise
        return records

    def _wait(self, ctx: StackContext, records: list[ProcessRecord], done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not done():
            if time.monotonic() > deadline or not all(r.alive() for r in records):
                raise StackError(f"{self.name}: node {NODE_NAME} did not {what}; see "
                                 f"{ctx.log(self.name, 'kubelet')} and {ctx.log(self.name, 'containerd')}")
            time.sleep(0.5)

    def _registered_since(self, ctx: StackContext, started: float) -> bool:
        """The kubelet started at ``started`` has reported (a node left by an earlier run does not count)."""
        node = self.control_plane.get(ctx, f"/api/v1/nodes/{NODE_NAME}")
        if not isinstance(node, dict) or not _kubelet_healthy():
            return False
        beats = [c.get("lastHeartbeatTime", "") for c in node.get("status", {}).get("conditions", [])]
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        return any(beat >= since for beat in beats)

    def _initialize(self, ctx: StackContext) -> None:
        """What a cloud controller would do: the node's address, and the end of its 'uninitialized' taint."""
        kubectl = [str(self.control_plane.bin(ctx, "kubectl")),
                   f"--kubeconfig={self.control_plane.kubeconfig_path(ctx)}"]
        # no Hostname address: the apiserver would look the node's name up in DNS, off this machine
        addresses = {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}
        for args in (["patch", "node", NODE_NAME, "--subresource=status", "--type=merge",
                      f"--patch={json.dumps(addresses)}"],
                     ["taint", "node", NODE_NAME, f"{_UNINITIALIZED}-"]):
            done = subprocess.run([*kubectl, *args], capture_output=True, text=True)
            if done.returncode != 0 and "not found" not in done.stderr:
                raise StackError(f"{self.name}: kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")

    def stopped(self, ctx: StackContext) -> None:
        _stop_leftover_containers(self._socket(ctx))

    def refresh(self, ctx: StackContext) -> None:
        """Import the images containerd does not have as built now (after a code change: oscar-stream's own
        image's project layer; the tag then names the new image)."""
        present = self._ctr(ctx, "images", "list")
        for image in self.images(ctx):
            if f" {image.digest} " in present:
                continue
            with ctx.progress.step(self.name, f"importing {image.name}"):
                self._ctr(ctx, "images", "import", str(image.archive))

    def _ctr(self, ctx: StackContext, *args: str) -> str:
        ctr = self._bin(ctx, f"containerd-{CONTAINERD_VERSION}", "ctr")
        done = subprocess.run([str(ctr), f"--address={self._socket(ctx)}", "--namespace=k8s.io", *args],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"{self.name}: ctr {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _node_ready(self, ctx: StackContext) -> bool:
        node = self.control_plane.get(ctx, f"/api/v1/nodes/{NODE_NAME}")
        if not _kubelet_healthy():
            return False
        if not isinstance(node, dict):
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def health(self, ctx: StackContext) -> Health:
        ready = self._node_ready(ctx)
        return Health(ready, f"node {NODE_NAME} {'Ready' if ready else 'NOT Ready'} (kubelet {KUBERNETES_VERSION}, "
                             f"containerd {CONTAINERD_VERSION}); containerd socket {self._socket(ctx)}",
                      {"containerd": str(self._socket(ctx))})


def _kubelet_healthy() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _kubernetes_source(ctx: StackContext) -> Path:
    done = subprocess.run([go(), "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
                          capture_output=True, text=True, cwd=ctx.cache_dir)
    if done.returncode != 0:
        raise StackError(f"kubernetes-node: go mod download k8s.io/kubernetes@{KUBERNETES_VERSION} failed:\n"
                         f"{done.stdout}{done.stderr}")
    return Path(json.loads(done.stdout)["Dir"])


def _stop_leftover_containers(socket: Path) -> None:
    """containerd's shims (and the containers under them) outlive containerd by design; the stack's do not."""
    marker = str(socket).encode()
    parents: dict[int, int] = {}
    shims: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if b"containerd-shim" in cmdline and marker in cmdline:
            shims.append(int(proc.name))
    doomed = set(shims)
    while True:
        more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        if not more:
            break
        doomed |= more
    for pid in doomed:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def real_node_kubernetes_config(kubeconfig: Path) -> dict[str, object]:
    """The ``kubernetes`` configuration section that runs jobs on this node (with the images built for it)."""
    return {
        "kubeconfig": str(kubeconfig),
        "helper_image": node_images.HELPER_IMAGE,
        "host_network": True,
        "node_selector": {NODE_LABEL[0]: NODE_LABEL[1]},
        "tolerations": [{"key": NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "warm_url": "http://127.0.0.1:{port}",
    }
