"""Whether this gateway can serve now: what ``GET /readyz`` answers.

A load balancer sends traffic to a gateway that is ``ready`` and stops
before it goes: ``starting`` until every lifecycle has started (the fleet
connecting, discovery running), ``draining`` from the moment shutdown
begins. ``/healthz`` is the other question, whether it is working at all.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


class Readiness:
    def __init__(self) -> None:
        self.phase = Phase.STARTING

    def started(self) -> None:
        if self.phase is Phase.STARTING:
            self.phase = Phase.READY

    def draining(self) -> None:
        self.phase = Phase.DRAINING

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY
