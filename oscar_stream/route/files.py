"""Routing files -> :class:`RoutingTable`: OSCAR FDL files (read unchanged) and oscar-stream's own format.

oscar-stream's format::

    version: oscar-stream/v1
    cluster: lab            # optional: the cluster the services live on
    services:
      - name: detect        # same fields as an FDL service, plus concurrency, retries, backoff_seconds,
        ...                 # timeout_seconds, ttl_seconds, script_inline, and glob/events on inputs
    storage_providers: ...  # as in FDL
    clusters: ...           # as in FDL

Every problem of every file is collected and reported at once (:class:`RoutingFileError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oscar_stream.route.model import ClusterSpec, RoutingTable, ServiceSpec, StorageProviderSpec
from oscar_stream.route.pipeline import find_cycles
from oscar_stream.route.problems import Note, Problem, RoutingFileError
from oscar_stream.route.reader import Reader
from oscar_stream.route.service_reader import STORAGE_TYPES, ServiceReader
from oscar_stream.route.yaml_source import YamlDocument, YamlLoadError, YamlPath, load_yaml

OWN_FORMAT = "oscar-stream/v1"
_CLUSTER_FIELDS = {"endpoint", "auth_user", "auth_password", "ssl_verify"}


@dataclass(frozen=True)
class LoadedTable:
    table: RoutingTable
    notes: list[Note]
    origins: dict[str, tuple[Path, int | None]]  # qualified service name (name@cluster) -> where it was declared


def _storage_providers(r: Reader, raw: Any, path: YamlPath, fdl: bool) -> list[StorageProviderSpec]:
    providers: list[StorageProviderSpec] = []
    section = r.mapping(raw, path) or {}
    for kind, entries in section.items():
        if kind not in STORAGE_TYPES:
            if fdl:
                r.note((*path, kind), f"storage provider type {kind!r} is not known to oscar-stream; ignored")
            else:
                r.problem((*path, kind), f"unknown storage provider type {kind!r}", f"use {', '.join(STORAGE_TYPES)}")
            continue
        for ident, options in (r.mapping(entries, (*path, kind)) or {}).items():
            body = r.mapping(options, (*path, kind, ident), required=True)
            if body is not None:
                providers.append(StorageProviderSpec(id=f"{kind}.{ident}", options=body))
    return providers


def _clusters(r: Reader, raw: Any, path: YamlPath, fdl: bool) -> list[ClusterSpec]:
    clusters = []
    for ident, options in (r.mapping(raw, path) or {}).items():
        body = r.mapping(options, (*path, ident), required=True)
        if body is None:
            continue
        r.check_keys(body, (*path, ident), _CLUSTER_FIELDS, lenient=fdl)
        endpoint = r.string(body.get("endpoint"), (*path, ident, "endpoint"), required=not fdl)
        if endpoint is None:
            if not fdl:
                continue
            r.warn((*path, ident, "endpoint"), f"cluster {ident!r} has no endpoint yet: nothing can be forwarded to "
                   "it until it is filled in (give oscar-stream its gateway under 'clusters' in the configuration)")
        clusters.append(ClusterSpec(
            id=str(ident), endpoint=endpoint,
            auth_user=r.string(body.get("auth_user"), (*path, ident, "auth_user")),
            auth_password=r.string(body.get("auth_password"), (*path, ident, "auth_password")),
            ssl_verify=r.boolean(body.get("ssl_verify"), (*path, ident, "ssl_verify"), True),
        ))
    return clusters


Found = tuple[Reader, list[tuple[ServiceSpec, int | None]], list[StorageProviderSpec], list[ClusterSpec]]


def read_document(doc: YamlDocument, scripts_inline: bool = False) -> Found:
    """The services, storage providers and clusters of one routing document (a file, or a service sent to OSCAR's
    API: then ``script`` holds the script itself, not a file name)."""
    r = Reader(doc)
    top = r.mapping(doc.data, (), required=True)
    if top is None:
        return r, [], [], []
    own = top.get("version") == OWN_FORMAT
    fdl = not own and "functions" in top
    if own:
        r.check_keys(top, (), {"version", "cluster", "services", "storage_providers", "clusters"})
    elif fdl:
        r.check_keys(top, (), {"functions", "storage_providers", "clusters"}, lenient=True)
    else:
        r.problem((), "neither an OSCAR FDL file (no 'functions') nor an oscar-stream routing table",
                  f"start the file with 'functions:' (FDL) or 'version: {OWN_FORMAT}'")
    providers = _storage_providers(r, top.get("storage_providers"), ("storage_providers",), fdl)
    clusters = _clusters(r, top.get("clusters"), ("clusters",), fdl)
    services_reader = ServiceReader(r, {p.id for p in providers}, {c.id for c in clusters}, fdl, scripts_inline)
    services: list[tuple[ServiceSpec, int | None]] = []
    if own:
        cluster = r.string(top.get("cluster"), ("cluster",))
        for index, raw in enumerate(r.sequence(top.get("services"), ("services",))):
            spec = services_reader.read(raw, ("services", index), cluster)
            if spec is not None:
                services.append((spec, doc.line(("services", index))))
    elif fdl:
        functions = r.mapping(top.get("functions"), ("functions",), required=True) or {}
        if "aws" in functions:
            r.note(("functions", "aws"), "SCAR's functions (AWS Lambda) are not run by oscar-stream; ignored")
        r.check_keys(functions, ("functions",), {"oscar"}, accepted_unused={"aws"}, lenient=True)
        for index, entry in enumerate(r.sequence(functions.get("oscar"), ("functions", "oscar"))):
            path: YamlPath = ("functions", "oscar", index)
            body = r.mapping(entry, path, required=True)
            if body is None:
                continue
            if len(body) != 1:
                r.problem(path, "each entry must be one '<cluster-id>: {service}' mapping")
                continue
            cluster_id, raw = next(iter(body.items()))
            spec = services_reader.read(raw, (*path, str(cluster_id)), str(cluster_id))
            if spec is not None:
                services.append((spec, doc.line((*path, str(cluster_id)))))
    return r, services, providers, clusters


def load_routing_files(files: Iterable[Path]) -> LoadedTable:
    problems: list[Problem] = []
    notes: list[Note] = []
    services: list[ServiceSpec] = []
    origins: dict[str, tuple[Path, int | None]] = {}
    providers: dict[str, StorageProviderSpec] = {}
    clusters: dict[str, ClusterSpec] = {}
    for file in files:
        try:
            reader, found, file_providers, file_clusters = read_document(load_yaml(file))
        except YamlLoadError as err:
            problems.append(Problem(err.file, err.line, (), err.message))
            continue
        problems += reader.problems
        notes += reader.notes
        for spec, line in found:
            if spec.qualified in origins:  # the same name on two clusters is two services (OSCAR's replicas)
                first_file, first_line = origins[spec.qualified]
                where = f" on cluster {spec.cluster!r}" if spec.cluster else ""
                problems.append(Problem(file, line, (), f"duplicate service name {spec.name!r}{where}",
                                        f"already declared at {first_file}:{first_line}; rename one of them"))
                continue
            origins[spec.qualified] = (file, line)
            services.append(spec)
        providers.update({p.id: p for p in file_providers})
        clusters.update({c.id: c for c in file_clusters})
    for cycle in find_cycles(services, set(clusters)):
        file, line = origins[cycle[0]]
        problems.append(Problem(file, line, (), f"pipeline cycle: {' -> '.join(cycle)}",
                                "an output of the last service triggers the first again; change a path or filter"))
    if problems:
        raise RoutingFileError(problems)
    return LoadedTable(RoutingTable(tuple(services), tuple(providers.values()), tuple(clusters.values())),
                       notes, origins)
