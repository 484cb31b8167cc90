"""Which path an exposed service's server sees for ``/system/services/<name>/exposed/<rest>`` (OSCAR's ingress:
with ``rewrite_target`` the part after ``exposed``, else the whole path)."""

from __future__ import annotations


def exposed_prefix(service: str) -> str:
    return f"/system/services/{service}/exposed"


def server_path(service: str, rest: str, rewrite_target: bool, query: str = "") -> str:
    path = f"/{rest}" if rewrite_target else f"{exposed_prefix(service)}/{rest}"
    return f"{path}?{query}" if query else path
