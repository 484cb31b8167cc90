"""Which of a deployment's ConfigMaps and Secrets can be deleted.

Every version of a service gets its own script ConfigMap (and Secret, if it has secrets), and the storage
configuration Secret is named by its content; a Job keeps using the objects it was created with until it ends.
So an object may go once no current service version, no storage configuration in use and no Job whose result
is still to be reported (one that may still run) needs it — and only
after it has stayed unneeded for a grace period, so a worker whose routing table is a few seconds behind does
not launch a Job whose ConfigMap was just deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Object = tuple[str, str]  # kind, name


@dataclass
class UnneededTracker:
    grace_s: float
    _unneeded_since: dict[Object, float] = field(default_factory=dict)

    def due(self, present: Iterable[Object], needed: set[str], now: float) -> list[Object]:
        """Of the ``present`` objects, those whose name was not ``needed`` in any call of the last ``grace_s``
        seconds (an object needed again, or gone, starts over)."""
        due: list[Object] = []
        unneeded: dict[Object, float] = {}
        for obj in present:
            if obj[1] in needed:
                continue
            since = unneeded[obj] = self._unneeded_since.get(obj, now)
            if now - since >= self.grace_s:
                due.append(obj)
        self._unneeded_since = unneeded
        return due
