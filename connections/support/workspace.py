"""The support workspace's knowledge: which VINs need a look across every
fleet, which are stuck, which failures look like a manufacturer-side incident,
and the actions support takes on them (each recorded in the VIN's timeline
with who and when, each refused with the reason where it makes no sense).

Everything that lists VINs stays a queryset (filtered, counted and grouped in
SQL), so the pages stay fast on hundreds of thousands of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from connections.explanations import (
    CONTRACT_CATEGORIES,
    EXPLANATIONS,
    PORTAL_EXPLANATIONS,
    STATUS_EXPLANATIONS,
    Explanation,
    WhoActs,
    explain,
)
from connections.makes import make_label
from connections.models import VinEntry, VinStatus
from connections.models.entries import STUCK_STATUSES
from connections.stuck import StuckThresholds, stuck_thresholds

# Every state in which a VIN is not (or no longer) connected. Rows that were
# never meant to be sent (drafts, skipped duplicates) are not support's business.
WORKSPACE_STATUSES: tuple[str, ...] = (
    VinStatus.ERROR,
    VinStatus.CONNECTION_REQUIRED,
    VinStatus.INCOMPATIBLE,
    VinStatus.DISCONNECTED,
    VinStatus.SUBMITTING,
    VinStatus.PROCESSING,
    VinStatus.PENDING,
    VinStatus.INVALID,
)


def workspace_entries() -> QuerySet[VinEntry]:
    """Every current (not superseded) VIN of every fleet that is not connected."""
    return VinEntry.objects.filter(status__in=WORKSPACE_STATUSES, superseded=False)


def who_must_act_q(category: str) -> Q:
    """VINs whose next step is for `category` to take: `VinEntry.who_acts_category`
    as one SQL condition (Volteras' own `actionCategory` when it gave one, else
    our explanation of the VIN's error code or of its state)."""
    q = Q(action_category=category)
    ours = ~Q(action_category__in=list(CONTRACT_CATEGORIES))
    if category == WhoActs.CUSTOMER_ACTION:
        q |= ours & Q(status=VinStatus.INVALID)
    ours &= ~Q(status=VinStatus.INVALID)
    known = {**EXPLANATIONS, **PORTAL_EXPLANATIONS}
    codes = [code for code, x in known.items() if x.who_acts == category]
    statuses = [status for status, x in STATUS_EXPLANATIONS.items() if x.who_acts == category]
    q |= ours & Q(error_code__in=codes)
    q |= ours & Q(error_code="", status__in=statuses)
    if explain("").who_acts == category:
        # Codes we have not written up get the generic explanation.
        q |= ours & ~Q(error_code="") & ~Q(error_code__in=list(known))
    return q


# Since when a VIN has been on its way: its (last) submission, so moving from
# PROCESSING to PENDING does not restart the clock (rows sent before
# `submitted_at` existed fall back to their last status change).
IN_PROGRESS_SINCE = Coalesce("submitted_at", "status_changed_at")


def stuck_q(now: datetime | None = None, thresholds: StuckThresholds | None = None) -> Q:
    """In PROCESSING or PENDING for longer than its make's threshold, as one SQL condition."""
    now = now or timezone.now()
    thresholds = thresholds or stuck_thresholds()
    q = Q(LessThan(IN_PROGRESS_SINCE, now - thresholds.default))
    if thresholds.by_make:
        q &= ~Q(make__in=list(thresholds.by_make))
    for make, limit in thresholds.by_make.items():
        q |= Q(make=make) & Q(LessThan(IN_PROGRESS_SINCE, now - limit))
    return Q(status__in=STUCK_STATUSES) & q


def stuck_entries(entries: QuerySet[VinEntry] | None = None) -> QuerySet[VinEntry]:
    """Stuck VINs, the longest-waiting first."""
    entries = workspace_entries() if entries is None else entries
    return entries.filter(stuck_q()).order_by(IN_PROGRESS_SINCE.asc(), "pk")


@dataclass(frozen=True)
class Incident:
    """Many VINs of one make failing with one error code within the window:
    most likely the manufacturer's side, so retrying single VINs won't help."""

    make: str
    error_code: str
    vins: int
    fleets: int
    first_at: datetime
    last_at: datetime

    @property
    def make_label(self) -> str:
        return make_label(self.make) if self.make else "Unknown make"

    @property
    def explanation(self) -> Explanation:
        return explain(self.error_code)

    def describe(self) -> str:
        return (
            f"{self.error_code} on {self.vins} {self.make_label} VINs since "
            f"{self.first_at:%d %b %H:%M} UTC"
        )


def incident_window() -> timedelta:
    return timedelta(hours=settings.INCIDENT_WINDOW_HOURS)


def incidents(now: datetime | None = None) -> list[Incident]:
    """Probable manufacturer-side incidents: at least INCIDENT_MIN_VINS VINs of
    one make that moved to one error code within the last INCIDENT_WINDOW_HOURS.
    Dismissed VINs still count: dismissing a VIN does not fix the manufacturer."""
    now = now or timezone.now()
    rows = (
        workspace_entries()
        .filter(status_changed_at__gte=now - incident_window())
        .exclude(error_code="")
        .values("make", "error_code")
        .annotate(
            vins=Count("pk"),
            fleets=Count("fleet", distinct=True),
            first_at=Min("status_changed_at"),
            last_at=Max("status_changed_at"),
        )
        .filter(vins__gte=settings.INCIDENT_MIN_VINS)
        .order_by("-vins", "make", "error_code")
    )
    return [Incident(**row) for row in rows]


def counts_by(entries: QuerySet[VinEntry], field_name: str) -> list[tuple[str, int]]:
    """(value, count) for one column, the most frequent first, in one GROUP BY."""
    rows = entries.values_list(field_name).annotate(n=Count("pk")).order_by("-n", field_name)
    return [(value, n) for value, n in rows]
