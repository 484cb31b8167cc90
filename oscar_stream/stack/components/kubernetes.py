"""A real Kubernetes control plane without containers: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (all built from Go modules) and kwok simulating one node and its pods."""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from oscar_stream.stack.artifacts import cached_dir, require_tool, run_logged
from oscar_stream.stack.components.base import Component, Health, StackContext
from oscar_stream.stack.process import ProcessRecord, StackError, port_open, spawn, terminate, wait_until

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
NODE_NAME = "kwok-node-0"
_K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_STAGES = resources.files("oscar_stream.stack") / "assets" / "kubernetes" / "kwok-stages.yaml"


def _staging_replaces(kubernetes_gomod: str, staging_version: str) -> list[str]:
    """kubernetes' go.mod points every k8s.io staging module at a local folder; point them at real versions."""
    out = []
    for line in kubernetes_gomod.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
            out.append(f"\t{parts[0]} => {parts[0]} {staging_version}")
    return out


def kubernetes_ldflags() -> str:
    """What Kubernetes' own build stamps into its binaries (``--version``, the version a node reports)."""
    minor = KUBERNETES_VERSION.split(".")[1]
    return " ".join([
        "-s -w",
        f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
        "-X k8s.io/component-base/version.gitMajor=1",
        f"-X k8s.io/component-base/version.gitMinor={minor}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
        f"-X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
    ])


def go() -> str:
    return require_tool("go", "Install the Go toolchain (1.26 or newer).")


def wrapper_build(
    ctx: StackContext, tmp: Path, requires: str, packages: dict[str, str], ldflags: str, what: str
) -> None:
    """Build ``packages`` (output name -> import path) from a throw-away module that requires ``requires``.

    ``go install`` cannot build these modules directly because their go.mod files carry replace directives.
    """
    src = tmp / "src"
    src.mkdir()
    (src / "go.mod").write_text(f"module oscarstream.local/build\n\ngo 1.26.0\n\nrequire {requires}\n")
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages.values())
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    module, version = requires.split(" ")
    if module == "k8s.io/kubernetes":
        ctx.progress.say("kubernetes", f"downloading {module}@{version}")
        info = subprocess.run(
            [go(), "mod", "download", "-json", f"{module}@{version}"], cwd=src, capture_output=True, text=True
        )
        if info.returncode != 0:
            raise StackError(f"kubernetes: go mod download {module}@{version} failed:\n{info.stdout}{info.stderr}")
        replaces = _staging_replaces(Path(json.loads(info.stdout)["GoMod"]).read_text(), "v0." + version[3:])
        with (src / "go.mod").open("a") as gomod:
            gomod.write("\nreplace (\n" + "\n".join(replaces) + "\n)\n")
    log = ctx.log("kubernetes", "kubernetes-install")
    run_logged([go(), "mod", "tidy"], log, ctx.progress, "kubernetes", f"resolving modules for {what}", cwd=src)
    (tmp / "bin").mkdir()
    for name, pkg in packages.items():
        run_logged(
            [go(), "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(tmp / "bin" / name), pkg],
            log, ctx.progress, "kubernetes", f"compiling {name} (a cold build takes minutes on 2 cores)", cwd=src,
        )
    shutil.rmtree(src)


class KubernetesControlPlane(Component):
    name = "kubernetes"

    def version(self) -> str:
        return f"Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}, kwok {KWOK_VERSION}"

    def bin(self, ctx: StackContext, command: str) -> Path:
        if command in _K8S_COMMANDS:
            return ctx.cache_dir / f"kubernetes-{KUBERNETES_VERSION}" / "bin" / command
        if command == "etcd":
            return ctx.cache_dir / f"etcd-{ETCD_VERSION}" / "bin" / "etcd"
        return ctx.cache_dir / f"kwok-{KWOK_VERSION}" / "bin" / "kwok"

    def install(self, ctx: StackContext) -> None:
        cached_dir(
            ctx.cache_dir, f"etcd-{ETCD_VERSION}",
            lambda tmp: wrapper_build(
                ctx, tmp, f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}",
                {"etcd": "go.etcd.io/etcd/server/v3"}, "-s -w", f"etcd {ETCD_VERSION}",
            ),
            ctx.progress, self.name,
        )
        cached_dir(
            ctx.cache_dir, f"kwok-{KWOK_VERSION}",
            lambda tmp: run_logged(
                [go(), "install", "-trimpath", "-ldflags=-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
                ctx.log(self.name, "kubernetes-install"), ctx.progress, self.name,
                f"building kwok {KWOK_VERSION}", env={"GOBIN": str(tmp / "bin")},
            ),
            ctx.progress, self.name,
        )
        cached_dir(
            ctx.cache_dir, f"kubernetes-{KUBERNETES_VERSION}",
            lambda tmp: wrapper_build(
                ctx, tmp, f"k8s.io/kubernetes {KUBERNETES_VERSION}",
                {c: f"k8s.io/kubernetes/cmd/{c}" for c in _K8S_COMMANDS}, kubernetes_ldflags(),
                f"Kubernetes {KUBERNETES_VERSION}",
            ),
            ctx.progress, self.name,
        )

    # --- credentials -------------------------------------------------------------------------------------

    def _pki(self, ctx: StackContext) -> Path:
        pki = ctx.workdir(self.name) / "pki"
        if (pki / "done").exists():
            return pki
        pki.mkdir(parents=True, exist_ok=True)
        openssl = require_tool("openssl", "Install Debian's package 'openssl'.")

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=pki)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout", "ca.key",
            "-out", "ca.crt", "-subj", "/CN=oscar-stream-local-ca")
        (pki / "san.ext").write_text(
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
        )
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
            "-subj", "/CN=kube-apiserver")
        run("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "3650", "-out", "apiserver.crt", "-extfile", "san.ext")
        run("genrsa", "-out", "sa.key", "2048")
        run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        token = secrets.token_hex(24)
        (pki / "tokens.csv").write_text(f'{token},oscar-admin,oscar-admin-uid,"system:masters"\n')
        for secret in ("ca.key", "apiserver.key", "sa.key", "tokens.csv"):
            (pki / secret).chmod(0o600)
        (pki / "done").write_text("")
        return pki

    def _kubelet_client(self, pki: Path) -> None:
        """The apiserver's client certificate for kubelets (pod logs, exec): a real node accepts only it."""
        if (pki / "kubelet-client.crt").exists():
            return
        openssl = require_tool("openssl", "Install Debian's package 'openssl'.")
        for args in (("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kubelet-client.key", "-out",
                      "kubelet-client.csr", "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client"),
                     ("x509", "-req", "-in", "kubelet-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "3650", "-out", "kubelet-client.crt")):
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=pki)
        (pki / "kubelet-client.key").chmod(0o600)

    def _token(self, ctx: StackContext) -> str:
        return (ctx.workdir(self.name) / "pki" / "tokens.csv").read_text().split(",", 1)[0]

    def kubeconfig_path(self, ctx: StackContext) -> Path:
        return ctx.workdir(self.name) / "kubeconfig"

    def _write_kubeconfig(self, ctx: StackContext, pki: Path) -> Path:
        server = f"https://127.0.0.1:{ctx.settings.apiserver_port}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "oscar-local", "cluster": {"server": server,
                                                             "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": "oscar-admin", "user": {"token": self._token(ctx)}}],
            "contexts": [{"name": "oscar-local", "context": {"cluster": "oscar-local", "user": "oscar-admin",
                                                             "namespace": "oscar-stream"}}],
            "current-context": "oscar-local",
        }
        path = self.kubeconfig_path(ctx)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    # --- processes ---------------------------------------------------------------------------------------

    def start(self, ctx: StackContext) -> list[ProcessRecord]:
        s = ctx.settings
        work = ctx.workdir(self.name)
        pki = self._pki(ctx)
        self._kubelet_client(pki)
        kubeconfig = self._write_kubeconfig(ctx, pki)
        records: list[ProcessRecord] = []
        try:
            etcd_url = f"http://127.0.0.1:{s.etcd_port}"
            peer_url = f"http://127.0.0.1:{s.etcd_peer_port}"
            with ctx.progress.step(self.name, f"starting etcd {ETCD_VERSION} on {etcd_url}"):
                etcd = spawn("etcd", [
                    str(self.bin(ctx, "etcd")), "--name=oscar-local", f"--data-dir={work / 'etcd'}",
                    f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=oscar-local={peer_url}", "--unsafe-no-fsync",
                    "--quota-backend-bytes=2147483648", "--log-level=warn",
                ], ctx.log(self.name, "etcd"))
                records.append(etcd)
                wait_until(etcd, lambda: port_open("127.0.0.1", s.etcd_port), 60, "etcd client port")
            with ctx.progress.step(self.name, f"starting kube-apiserver on 127.0.0.1:{s.apiserver_port}"):
                apiserver = spawn("kube-apiserver", [
                    str(self.bin(ctx, "kube-apiserver")),
                    f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                    f"--secure-port={s.apiserver_port}", f"--cert-dir={work / 'apiserver-certs'}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
                    f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                    f"--kubelet-client-key={pki / 'kubelet-client.key'}",
                    "--kubelet-preferred-address-types=InternalIP",  # never a name to look up in DNS
                    "--authorization-mode=Node,RBAC", "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
                    "--enable-priority-and-fairness=false", "--profiling=false", "--v=1",
                ], ctx.log(self.name, "kube-apiserver"))
                records.append(apiserver)
                wait_until(apiserver, lambda: self.get(ctx, "/readyz") is not None, 180, "/readyz")
            with ctx.progress.step(self.name, "starting kube-controller-manager and kube-scheduler"):
                records.append(spawn("kube-controller-manager", [
                    str(self.bin(ctx, "kube-controller-manager")), f"--kubeconfig={kubeconfig}",
                    "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
                    f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=true", "--controllers=*,-nodeipam,-cloud-node-lifecycle",
                    "--concurrent-job-syncs=10", "--concurrent-gc-syncs=20", "--kube-api-qps=200",
                    "--kube-api-burst=400", "--v=1",
                ], ctx.log(self.name, "kube-controller-manager")))
                records.append(spawn("kube-scheduler", [
                    str(self.bin(ctx, "kube-scheduler")), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                    "--bind-address=127.0.0.1", "--secure-port=0", "--kube-api-qps=200", "--kube-api-burst=400",
                    "--v=1",
                ], ctx.log(self.name, "kube-scheduler")))
            stages = work / "kwok-stages.yaml"
            stages.write_text(_STAGES.read_text())
            with ctx.progress.step(self.name, f"starting kwok and creating node {NODE_NAME}"):
                records.append(spawn("kwok", [
                    str(self.bin(ctx, "kwok")), f"--kubeconfig={kubeconfig}", f"--config={stages}",
                    "--manage-nodes-with-label-selector=type=kwok", "--cidr=10.244.0.0/16",
                    "--node-lease-duration-seconds=40",
                ], ctx.log(self.name, "kwok")))
                self._bootstrap(ctx, kubeconfig)
        except Exception:
            for record in reversed(records):
                terminate(record)
            raise
        return records

    def _bootstrap(self, ctx: StackContext, kubeconfig: Path) -> None:
        """One fake node (managed by kwok) and the namespace; wait until the node is Ready."""
        kubectl = str(self.bin(ctx, "kubectl"))
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"type": "kwok", "kubernetes.io/hostname": NODE_NAME,
                                                       "kubernetes.io/os": "linux"},
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
        }
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oscar-stream"}}
        for manifest in (node, namespace):
            done = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "apply", "-f", "-"],
                                  input=json.dumps(manifest), capture_output=True, text=True)
            if done.returncode != 0:
                raise StackError(f"kubernetes: creating {manifest['kind']} failed: {done.stderr.strip()}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._node_ready(ctx):
                return
            time.sleep(0.5)
        raise StackError(f"kubernetes: node {NODE_NAME} did not become Ready in 60s; see "
                         f"{ctx.log(self.name, 'kwok')}")

    def get(self, ctx: StackContext, path: str) -> Any | None:
        pki = ctx.workdir(self.name) / "pki"
        if not (pki / "ca.crt").exists():
            return None
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{ctx.settings.apiserver_port}{path}",
            headers={"Authorization": f"Bearer {self._token(ctx)}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                body = response.read()
        except (urllib.error.URLError, OSError):
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body.decode()

    def _node_ready(self, ctx: StackContext) -> bool:
        node = self.get(ctx, f"/api/v1/nodes/{NODE_NAME}")
        if not isinstance(node, dict):
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def health(self, ctx: StackContext) -> Health:
        version = self.get(ctx, "/version")
        if not isinstance(version, dict):
            return Health(False, f"kube-apiserver not answering on 127.0.0.1:{ctx.settings.apiserver_port}")
        ready = self._node_ready(ctx)
        return Health(
            ready,
            f"kube-apiserver {version.get('gitVersion')} on https://127.0.0.1:{ctx.settings.apiserver_port}; "
            f"node {NODE_NAME} {'Ready' if ready else 'NOT Ready'}; kubeconfig {self.kubeconfig_path(ctx)}",
            {"kubeconfig": str(self.kubeconfig_path(ctx))},
        )
