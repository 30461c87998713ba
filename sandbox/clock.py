"""The sandbox clock: a background thread for what happens unprompted.

Everything a read can work out from timestamps is derived lazily; the clock
only delivers webhooks whose time has come (a pending vehicle connecting, a
disconnection being processed) and retries failed deliveries.
"""

import logging
import threading

import httpx
from django.db import close_old_connections, connections

from sandbox import webhooks

log = logging.getLogger("sandbox.clock")

TICK_SECONDS = 0.1


class Clock(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="sandbox-clock", daemon=True)
        self._stop_event = threading.Event()

    def run(self) -> None:
        # No keep-alive: a receiver (pytest's live server, a portal being
        # restarted) must not be left holding an idle connection open.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=webhooks.TIMEOUT, limits=limits) as client:
            while not self._stop_event.wait(TICK_SECONDS):
                self.tick(client)
        connections.close_all()

    def tick(self, client: httpx.Client) -> None:
        close_old_connections()
        try:
            webhooks.deliver_due(client)
        except Exception:
            # One bad tick (a locked database, say) must not stop the clock.
            log.exception("sandbox clock tick failed")

    def stop(self) -> None:
        self._stop_event.set()
