"""Whether the server's writes reach the store: one log line when it goes away and one when it is
back (not one per failed flush), and the `sipsync_store_up` gauge."""

from __future__ import annotations

import logging

from ..metrics import ServerMetrics

log = logging.getLogger("sipsync.store")


class StoreHealth:
    def __init__(self, metrics: ServerMetrics, where: str) -> None:
        self.metrics = metrics
        self.where = where

    @property
    def up(self) -> bool:
        return self.metrics.store_up

    def failed(self, exc: Exception, unwritten: int) -> None:
        if self.up:
            log.error("store %s unavailable (%s): answering from memory, keeping %d change(s) "
                      "to write when it is back", self.where, exc, unwritten)
            self.metrics.store_up = False

    def written(self, count: int) -> None:
        if not self.up:
            log.warning("store %s is back: wrote the %d change(s) kept meanwhile",
                        self.where, count)
            self.metrics.store_up = True
