"""Kubernetes resource quantities ("500m", "2", "256Mi", "1.5Gi"), validated before an API server sees them."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*|[eE][+-]?[0-9]+)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {suffix: Decimal(scale) for suffix, scale in (
    ("", "1"), ("n", "1e-9"), ("u", "1e-6"), ("m", "1e-3"), ("k", "1e3"), ("M", "1e6"), ("G", "1e9"), ("T", "1e12"),
    ("P", "1e15"), ("E", "1e18"))}


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Decimal:
    text = str(value).strip()
    found = _QUANTITY.match(text)
    if not found:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (examples: 500m, 2, 256Mi, 1.5Gi)")
    number, suffix = found.group("number"), found.group("suffix")
    try:
        amount = Decimal(number)
    except InvalidOperation as err:  # pragma: no cover - the regex admits only decimal numbers
        raise QuantityError(f"{text!r} has no valid number") from err
    if suffix in _BINARY:
        return amount * _BINARY[suffix]
    if suffix in _DECIMAL:
        return amount * _DECIMAL[suffix]
    if suffix[:1] in ("e", "E"):
        return amount * Decimal(10) ** int(suffix[1:])
    raise QuantityError(f"{text!r} has an unknown unit {suffix!r} (use m, k, M, G, Ki, Mi, Gi, ...)")


def canonical_quantity(value: str | int | float) -> str:
    """The quantity as a string the API server accepts (numbers from YAML become strings)."""
    text = str(value).strip()
    parse_quantity(text)
    return text
