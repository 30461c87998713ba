"""The one backoff formula: each attempt waits twice as long as the one before,
up to a cap, with some jitter so that many waiting rows do not all come due at
the same instant."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import InterfaceError, OperationalError


def exponential(attempt: int, first: float, cap: float) -> float:
    """Seconds before try `attempt + 1`: `first`, then doubling, at most `cap`."""
    return min(cap, first * 2 ** max(0, attempt - 1))


def jittered(attempt: int, first: float, cap: float, spread: float = 0.2) -> timedelta:
    """`exponential`, give or take `spread` (20 %)."""
    return timedelta(
        seconds=exponential(attempt, first, cap) * random.uniform(1 - spread, 1 + spread)
    )


# What a retry can cure: the database went away, refused a connection, or kept
# a lock past its busy timeout (SQLite's "database is locked").
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


class Backoff:
    """The waits of a loop that must outlive its dependencies: `first` after
    the first failure, doubling up to `cap`, back to `first` once a round
    succeeds."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next try."""
        self.failures += 1
        return exponential(self.failures, self.first, self.cap)

    def succeeded(self) -> None:
        self.failures = 0
