"""How long a VIN may stay in progress before it counts as stuck: the same
threshold for every make, or per make (settings `SUPPORT_STUCK_HOURS` and
`SUPPORT_STUCK_HOURS_BY_MAKE`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from connections.makes import make_label, normalise_make


@dataclass(frozen=True)
class StuckThresholds:
    default: timedelta
    by_make: dict[str, timedelta]

    def for_make(self, make: str) -> timedelta:
        return self.by_make.get(make, self.default)

    def describe(self) -> str:
        """ "48 h for any make, BMW 72 h" (how the page states them)."""
        parts = [f"{_hours(self.default)} h for any make"]
        parts += [f"{make_label(m)} {_hours(limit)} h" for m, limit in sorted(self.by_make.items())]
        return ", ".join(parts)


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def stuck_thresholds() -> StuckThresholds:
    """SUPPORT_STUCK_HOURS, overridden per make by SUPPORT_STUCK_HOURS_BY_MAKE
    (its keys read as people spell makes: "Mercedes-Benz" means MERCEDES BENZ)."""
    by_make = {
        normalise_make(name) or name: timedelta(hours=hours)
        for name, hours in settings.SUPPORT_STUCK_HOURS_BY_MAKE.items()
    }
    return StuckThresholds(timedelta(hours=settings.SUPPORT_STUCK_HOURS), by_make)
