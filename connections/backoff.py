"""The one backoff formula: each attempt waits twice as long as the one before,
up to a cap, with some jitter so that many waiting rows do not all come due at
the same instant."""

from __future__ import annotations

import random
from datetime import timedelta


def exponential(attempt: int, first: float, cap: float) -> float:
    """Seconds before try `attempt + 1`: `first`, then doubling, at most `cap`."""
    return min(cap, first * 2 ** max(0, attempt - 1))


def jittered(attempt: int, first: float, cap: float, spread: float = 0.2) -> timedelta:
    """`exponential`, give or take `spread` (20 %)."""
    return timedelta(
        seconds=exponential(attempt, first, cap) * random.uniform(1 - spread, 1 + spread)
    )
