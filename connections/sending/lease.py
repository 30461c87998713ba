"""Keeping a batch's lease while its holder waits on Volteras."""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection

from connections.models import ConnectBatch
from connections.models.sending import LEASE

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a batch's lease every quarter lease while its holder waits on
    Volteras, from a thread of its own (with its own database connection).

    It stops when the block ends, or when the lease turns out to be someone
    else's (then the holder's release fails and `_accepted_elsewhere` keeps
    its group). A worker that dies stops renewing, so its lease still runs out.
    """

    def __init__(self, batch_id: int, owner: str) -> None:
        self.batch_id = batch_id
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-batch-{batch_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(LEASE.total_seconds() / 4):
                try:
                    kept = ConnectBatch(pk=self.batch_id).renew_lease(self.owner)
                except DatabaseError:
                    # The next beat tries again; a quarter lease leaves three.
                    logger.warning("batch %s: lease renewal failed", self.batch_id, exc_info=True)
                    continue
                if not kept:
                    return
        finally:
            connection.close()
