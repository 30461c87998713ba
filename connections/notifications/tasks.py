"""The notifications' sweeper: every worker runs it, at most once a minute
each; the outbox's unique keys make two workers finding one event send it once."""

from __future__ import annotations

import time

from connections.notifications import events

EVERY_SECONDS = 60
_last_run = {"at": 0.0}

FINDERS = [
    events.settled_uploads,
    events.completed_links,
    events.daily_digest,
    events.stuck_vins,
    events.opened_incidents,
]


def notify_when_due() -> int:
    now = time.monotonic()
    if now - _last_run["at"] < EVERY_SECONDS:
        return 0
    _last_run["at"] = now
    return sum(finder() for finder in FINDERS)
