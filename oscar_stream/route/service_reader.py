"""One service definition -> :class:`ServiceSpec`. The grammar is OSCAR's FDL service, plus oscar-stream's extras
(concurrency, retries, backoff, timeout, TTL, globs and event kinds on inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oscar_stream.core.events import CREATED, OTHER, REMOVED, EventType
from oscar_stream.route.model import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    ExposeSpec,
    InputSpec,
    OutputSpec,
    ServiceSpec,
    WarmSpec,
    split_path,
)
from oscar_stream.route.reader import SERVICE_NAME, Reader
from oscar_stream.route.yaml_source import YamlPath

STORAGE_TYPES = ("minio", "s3", "webdav", "onedata", "rucio")
EVENT_KINDS: dict[str, EventType] = {"created": CREATED, "removed": REMOVED, "other": OTHER}

_SERVICE_FIELDS = {
    "name", "image", "script", "script_inline", "cpu", "memory", "enable_gpu", "gpus", "ephemeral_storage_request",
    "image_pull_secrets", "environment", "input", "output", "log_level", "labels", "annotations",
    # oscar-stream extras
    "concurrency", "retries", "backoff_seconds", "timeout_seconds", "ttl_seconds", "warm", "expose",
}
_FDL_SERVICE_FIELDS = {"synchronous"}  # OSCAR's own way to ask for warm replicas
_WARM_FIELDS = {"min_replicas", "max_replicas", "concurrency", "idle_seconds", "queue", "take_events"}
_SYNCHRONOUS_FIELDS = {"min_scale", "max_scale"}
_EXPOSE_FIELDS = {"min_scale", "max_scale", "api_port", "cpu_threshold", "rewrite_target", "default_command",
                  "set_auth", "nodePort"}
_FDL_ONLY_FIELDS = {"storage_providers"}  # providers declared inside one service (OSCAR merges them)

# OSCAR fields oscar-stream accepts but does not implement, and what a job does differently because of that.
_NOT_IMPLEMENTED = {
    "mount": "the job runs without the storage path mounted into its container (oscar-stream mounts no storage: "
             "that needs a privileged FUSE sidecar); the script must read and write through its input and outputs",
    "volume": "the job runs without the managed persistent volume (not implemented); nothing survives between jobs",
    "interlink_node_name": "the job runs on this cluster, not on the interLink node",
    "kserve": "no KServe inference service is created; the service runs as jobs only",
    "isolation_level": "no per-user bucket isolation yet: every user of the deployment can use the service's buckets",
    "allowed_users": "no per-user access control yet: every user of the deployment can use the service",
    "visibility": "no per-user access control yet: every user of the deployment can use the service",
    "vo": "no per-VO access control yet: every user of the deployment can use the service",
    "replicas": "jobs are not delegated to replica clusters when this one is busy: they wait for a slot here",
    "federation": "jobs are not delegated to the federation's members: they wait for a slot here",
    "delegation": "jobs are not delegated to other clusters: they wait for a slot here",
    "rescheduler_threshold": "queued jobs are never rescheduled to another cluster",
    "total_cpu": "no limit on the CPU of all of the service's jobs together (use 'concurrency' to bound them)",
    "total_memory": "no limit on the memory of all of the service's jobs together (use 'concurrency' to bound them)",
    "enable_sgx": "jobs get no SGX device",
}
# OSCAR fields that change nothing for oscar-stream (its helper needs no Alpine build of OSCAR's supervisor,
# tokens and owners are OSCAR's bookkeeping).
_IGNORED = {"alpine", "image_prefetch", "token", "owner", "cluster_id", "bucket_list", "clusters", "namespace"}
OSCAR_UNUSED_SERVICE_FIELDS = set(_NOT_IMPLEMENTED) | _IGNORED | {"file_stage_in"}
_INPUT_FIELDS = {"storage_provider", "path", "prefix", "suffix", "glob", "events"}
_OUTPUT_FIELDS = {"storage_provider", "path", "prefix", "suffix"}


def storage_id(value: str) -> str:
    """``minio`` means ``minio.default``: the cluster's own storage of that type."""
    return value if "." in value else f"{value}.default"


class ServiceReader:
    def __init__(self, reader: Reader, declared_storages: set[str], cluster_ids: set[str], fdl: bool = False,
                 scripts_inline: bool = False) -> None:
        self.r = reader
        self.declared_storages = declared_storages
        self.cluster_ids = cluster_ids
        self.fdl = fdl  # an OSCAR FDL file: unknown keys are notes, not problems (OSCAR ignores them)
        self.scripts_inline = scripts_inline  # OSCAR's API: 'script' is the script, not the name of a file
        self._service_scope: set[str] = set()  # providers declared inside the service being read

    def read(self, raw: Any, path: YamlPath, cluster: str | None) -> ServiceSpec | None:
        r = self.r
        body = r.mapping(raw, path, required=True)
        if body is None:
            return None
        known = _SERVICE_FIELDS | _FDL_ONLY_FIELDS | _FDL_SERVICE_FIELDS if self.fdl else _SERVICE_FIELDS
        unused = r.check_keys(body, path, known, OSCAR_UNUSED_SERVICE_FIELDS, lenient=self.fdl)
        self._report_unused(body, path, unused)
        self._service_scope = self._service_storages(body.get("storage_providers"), (*path, "storage_providers"))
        name = r.string(body.get("name"), (*path, "name"), required=True, hint="a DNS label of 1-39 characters")
        if name is not None and (len(name) > 39 or not SERVICE_NAME.match(name)):
            r.problem((*path, "name"), f"{name!r} is not a valid service name",
                      "use 1-39 lowercase letters, digits and '-', starting and ending with a letter or digit")
            name = None
        image = r.string(body.get("image"), (*path, "image"), required=True, hint="the container image to run")
        script = self._script(body, path)
        env = r.mapping(body.get("environment"), (*path, "environment")) or {}
        r.check_keys(env, (*path, "environment"), {"variables", "Variables", "secrets"}, lenient=self.fdl)
        variables = r.string_map(env.get("variables", env.get("Variables")), (*path, "environment", "variables"))
        secrets = r.string_map(env.get("secrets"), (*path, "environment", "secrets"), secret=True)
        gpus = r.integer(body.get("gpus"), (*path, "gpus"), 0)
        if r.boolean(body.get("enable_gpu"), (*path, "enable_gpu"), False) and gpus == 0:
            gpus = 1
        inputs = tuple(
            spec for index, item in enumerate(r.sequence(body.get("input"), (*path, "input")))
            if (spec := self._input(item, (*path, "input", index))) is not None
        )
        outputs = tuple(
            out for index, item in enumerate(r.sequence(body.get("output"), (*path, "output")))
            if (out := self._output(item, (*path, "output", index))) is not None
        )
        ephemeral = body.get("ephemeral_storage_request")
        spec_fields: dict[str, Any] = {
            "cpu": r.quantity(body.get("cpu"), (*path, "cpu"), DEFAULT_CPU, "CPU"),
            "memory": r.quantity(body.get("memory"), (*path, "memory"), DEFAULT_MEMORY, "memory"),
            "ephemeral_storage": (
                r.quantity(ephemeral, (*path, "ephemeral_storage_request"), "1Gi", "storage")
                if ephemeral is not None else None
            ),
            "image_pull_secrets": r.strings(body.get("image_pull_secrets"), (*path, "image_pull_secrets")),
            "concurrency": r.integer(body.get("concurrency"), (*path, "concurrency"), 10, minimum=1),
            "retries": r.integer(body.get("retries"), (*path, "retries"), 0),
            "backoff_s": r.number(body.get("backoff_seconds"), (*path, "backoff_seconds"), 10.0),
            "timeout_s": (r.integer(body.get("timeout_seconds"), (*path, "timeout_seconds"), 0, minimum=1)
                          if body.get("timeout_seconds") is not None else None),
            "ttl_s": r.integer(body.get("ttl_seconds"), (*path, "ttl_seconds"), 3600),
            "log_level": r.string(body.get("log_level"), (*path, "log_level")),
            "labels": r.string_map(body.get("labels"), (*path, "labels")),
            "annotations": r.string_map(body.get("annotations"), (*path, "annotations")),
            "warm": self._warm(body, path),
            "expose": self._expose(body, path),
        }
        if name is None or image is None or script is None:
            return None
        echoed = _FDL_SERVICE_FIELDS | {"expose"}  # OSCAR's own fields, given back as written by OSCAR's API
        extras = {key: value for key, value in body.items()
                  if key not in known - echoed and key != "storage_providers"}
        return ServiceSpec(
            name=name, image=image, script=script, cluster=cluster, gpus=gpus, variables=variables,
            secrets=secrets, inputs=inputs, outputs=outputs, not_used=unused, oscar_fields=extras, **spec_fields,
        )

    def _report_unused(self, body: dict[str, Any], path: YamlPath, unused: tuple[str, ...]) -> None:
        for key in unused:
            value = body[key]
            if key == "file_stage_in":
                if value is True:
                    self.r.warn((*path, key), "the input is downloaded anyway: oscar-stream always stages it in "
                                "('file_stage_in: true' asks OSCAR not to)")
                continue
            if key in _IGNORED or value in (None, False, "", [], {}):
                self.r.note((*path, key), f"'{key}' is accepted but changes nothing in oscar-stream")
                continue
            self.r.warn((*path, key), f"'{key}' is accepted but not implemented: {_NOT_IMPLEMENTED[key]}")

    def _warm(self, body: dict[str, Any], path: YamlPath) -> WarmSpec | None:
        """oscar-stream's ``warm`` block; else, in an FDL file, OSCAR's ``synchronous`` (Knative's scale bounds):
        replicas for ``POST /run`` while events still run one job each, as on OSCAR."""
        r = self.r
        if body.get("warm") is not None:
            where = (*path, "warm")
            raw = r.mapping(body["warm"], where) or {}
            r.check_keys(raw, where, _WARM_FIELDS)
            defaults = WarmSpec()
            low = r.integer(raw.get("min_replicas"), (*where, "min_replicas"), defaults.min_replicas)
            high = r.integer(raw.get("max_replicas"), (*where, "max_replicas"), max(low, defaults.max_replicas),
                             minimum=1)
            if high < low:
                r.problem((*where, "max_replicas"), f"must be at least min_replicas ({low}), got {high}")
            return WarmSpec(
                min_replicas=low, max_replicas=max(low, high),
                concurrency=r.integer(raw.get("concurrency"), (*where, "concurrency"), 1, minimum=1),
                idle_s=r.number(raw.get("idle_seconds"), (*where, "idle_seconds"), defaults.idle_s),
                queue=r.integer(raw.get("queue"), (*where, "queue"), defaults.queue),
                take_events=r.boolean(raw.get("take_events"), (*where, "take_events"), True),
            )
        if not self.fdl or body.get("synchronous") is None:
            return None
        where = (*path, "synchronous")
        raw = r.mapping(body["synchronous"], where) or {}
        r.check_keys(raw, where, _SYNCHRONOUS_FIELDS, lenient=True)
        low = r.integer(raw.get("min_scale"), (*where, "min_scale"), 0)
        high = r.integer(raw.get("max_scale"), (*where, "max_scale"), 0)
        if high == 0 and low == 0:
            # oscar-cli sends zeros for every service: only bounds mean "serve POST /run"
            r.note(where, "'synchronous' without bounds is taken as not given: give max_scale (or 'warm:') to "
                   "serve POST /run/<service> from warm replicas")
            return None
        return WarmSpec(min_replicas=low, max_replicas=max(low, high or WarmSpec().max_replicas), take_events=False)

    def _expose(self, body: dict[str, Any], path: YamlPath) -> ExposeSpec | None:
        """OSCAR's ``expose`` block (the same in both formats); without an api_port it is taken as not given
        (oscar-cli sends zeros for every service)."""
        r = self.r
        if body.get("expose") is None:
            return None
        where = (*path, "expose")
        raw = r.mapping(body["expose"], where) or {}
        r.check_keys(raw, where, _EXPOSE_FIELDS, lenient=self.fdl)
        port = r.integer(raw.get("api_port"), (*where, "api_port"), 0)
        if port == 0:
            r.note(where, "'expose' without api_port is taken as not given")
            return None
        if port > 65535:
            r.problem((*where, "api_port"), f"must be a TCP port (1-65535), got {port}")
            return None
        if raw.get("nodePort"):
            r.note((*where, "nodePort"), "no NodePort is opened: the server is reached through the gateway at "
                   "/system/services/<name>/exposed/")
        low = max(1, r.integer(raw.get("min_scale"), (*where, "min_scale"), 1))
        high = max(low, r.integer(raw.get("max_scale"), (*where, "max_scale"), low))
        return ExposeSpec(
            api_port=port, min_replicas=low, max_replicas=high,
            cpu_threshold=r.integer(raw.get("cpu_threshold"), (*where, "cpu_threshold"), 80, minimum=1),
            rewrite_target=r.boolean(raw.get("rewrite_target"), (*where, "rewrite_target"), False),
            default_command=r.boolean(raw.get("default_command"), (*where, "default_command"), False),
            set_auth=r.boolean(raw.get("set_auth"), (*where, "set_auth"), False),
        )

    def _service_storages(self, raw: Any, path: YamlPath) -> set[str]:
        """Storage providers declared inside the service body: usable by this service's inputs and outputs."""
        found: set[str] = set()
        for kind, entries in (self.r.mapping(raw, path) or {}).items():
            for ident in self.r.mapping(entries, (*path, kind)) or {}:
                found.add(f"{kind}.{ident}")
        return found

    def _script(self, body: dict[str, Any], path: YamlPath) -> str | None:
        r = self.r
        inline = r.string(body.get("script_inline"), (*path, "script_inline"))
        reference = r.string(body.get("script"), (*path, "script"))
        if inline is not None and reference is not None:
            r.problem((*path, "script"), "give either 'script' (a file) or 'script_inline', not both")
            return None
        if inline is not None:
            return inline
        if self.scripts_inline and reference is not None:
            return reference
        if reference is None:
            r.problem((*path, "script"), "is required", "the path of a shell script, relative to this file")
            return None
        file = (r.file.parent / reference) if not Path(reference).is_absolute() else Path(reference)
        try:
            return file.read_text()
        except OSError:
            r.problem((*path, "script"), f"script file {file} cannot be read",
                      "put the script next to this file or fix the path")
            return None

    def _storage(self, value: Any, path: YamlPath) -> str | None:
        text = self.r.string(value, path, required=True, hint="e.g. minio, minio.default, s3.<id>, webdav.<id>")
        if text is None:
            return None
        kind, _, ident = storage_id(text).partition(".")
        if kind not in STORAGE_TYPES:
            self.r.problem(path, f"unknown storage provider type {kind!r}",
                           f"use one of {', '.join(STORAGE_TYPES)}")
            return None
        full = f"{kind}.{ident}"
        if ident != "default" and full not in self.declared_storages | self._service_scope and not (
            kind == "minio" and ident in self.cluster_ids
        ):
            self.r.problem(path, f"unknown storage provider {full!r}",
                           f"declare it under storage_providers.{kind}.{ident}, or use {kind}.default")
            return None
        return full

    def _filters(self, body: dict[str, Any], path: YamlPath, key: str) -> tuple[str, ...]:
        values = self.r.strings(body.get(key), (*path, key))
        for index, value in enumerate(values):
            if key == "prefix" and value.startswith("/"):
                self.r.problem((*path, key, index), f"prefix {value!r} starts with '/' and can never match",
                               "prefixes are relative to the folder in 'path'")
            if key == "suffix" and "/" in value:
                self.r.problem((*path, key, index), f"suffix {value!r} contains '/' and can never match a file")
        return values

    def _location(self, raw: Any, path: YamlPath, fields: set[str], role: str
                  ) -> tuple[dict[str, Any], str | None, str | None, tuple[str, ...], tuple[str, ...]] | None:
        """The part inputs and outputs share: storage provider, folder, prefix and suffix filters (storage and
        folder are None when they are wrong; the problem is recorded)."""
        r = self.r
        body = r.mapping(raw, path, required=True)
        if body is None:
            return None
        r.check_keys(body, path, fields, lenient=self.fdl)
        storage = self._storage(body.get("storage_provider"), (*path, "storage_provider"))
        folder = r.string(body.get("path"), (*path, "path"), required=True, hint=f"bucket/folder {role}")
        prefixes = self._filters(body, path, "prefix")
        suffixes = self._filters(body, path, "suffix")
        if folder is not None and storage is not None and not split_path(folder) and not storage.startswith("webdav."):
            r.problem((*path, "path"), f"an S3 {role} needs at least a bucket", "write bucket/folder")
            folder = None
        return body, storage, "/".join(split_path(folder)) if folder is not None else None, prefixes, suffixes

    def _input(self, raw: Any, path: YamlPath) -> InputSpec | None:
        r = self.r
        location = self._location(raw, path, _INPUT_FIELDS, "input")
        if location is None:
            return None
        body, storage, folder, prefixes, suffixes = location
        globs = r.strings(body.get("glob"), (*path, "glob"))
        kinds = r.strings(body.get("events"), (*path, "events")) or ("created",)
        events = set()
        for index, kind in enumerate(kinds):
            if kind not in EVENT_KINDS:
                r.problem((*path, "events", index), f"unknown event kind {kind!r}", f"use {', '.join(EVENT_KINDS)}")
            else:
                events.add(EVENT_KINDS[kind])
        if storage is not None and storage.startswith(("onedata.", "rucio.")):
            if self.fdl:
                r.warn((*path, "storage_provider"), "this input never triggers the service: oscar-stream receives "
                       "events from S3/MinIO stores and dCache only")
            else:
                r.problem((*path, "storage_provider"), "an input on OneData or Rucio can never match",
                          "oscar-stream receives events from S3/MinIO stores and dCache only")
            return None
        if self.fdl and (prefixes or suffixes):
            r.note(path, "OSCAR ignores prefix/suffix on inputs (its store notifications filter on the folder "
                   "only); oscar-stream applies them: only objects that match trigger the service")
        if storage is None or folder is None:
            return None
        return InputSpec(storage=storage, path=folder, prefixes=prefixes, suffixes=suffixes, globs=globs,
                         events=frozenset(events))

    def _output(self, raw: Any, path: YamlPath) -> OutputSpec | None:
        location = self._location(raw, path, _OUTPUT_FIELDS, "output")
        if location is None:
            return None
        _, storage, folder, prefixes, suffixes = location
        if storage is None or folder is None:
            return None
        if storage.startswith(("onedata.", "rucio.")):
            if self.fdl:
                self.r.warn((*path, "storage_provider"), "oscar-stream uploads no outputs to OneData or Rucio: "
                            "this output is skipped")
            else:
                self.r.problem((*path, "storage_provider"), "oscar-stream cannot upload outputs to OneData or Rucio",
                               "write the outputs to an S3/MinIO store or a WebDAV door")
            return None
        return OutputSpec(storage=storage, path=folder, prefixes=prefixes, suffixes=suffixes)
