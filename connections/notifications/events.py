"""What managers and support are told, found by looking at the rows (not by
hooks in the code that changes them): an upload that has settled, an owner who
completed a consent link, the daily digest, a stuck VIN, a probable incident.
Each finder returns how many notifications it queued; each event is sent to a
recipient once (`sending.notify`'s key), however often or wherever it runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from connections.models import (
    ConsentLink,
    LinkStatus,
    NotificationKind,
    Upload,
    VinEntry,
    VinStatus,
)
from connections.notifications import recipients
from connections.notifications.sending import absolute, notify
from connections.support.workspace import incidents, stuck_entries

# Events older than this are history, not news (a first deployment tells nobody about last year).
RECENT = timedelta(days=2)
STUCK_PER_RUN = 50


def settled_uploads(now: datetime | None = None) -> int:
    """Uploads sent recently whose every VIN has reached a final state."""
    now = now or timezone.now()
    unfinished = VinEntry.objects.filter(upload=OuterRef("pk")).exclude(
        status__in=VinStatus.final()
    )
    uploads = (
        Upload.objects.filter(state=Upload.State.SUBMITTED, submitted_at__gte=now - RECENT)
        .exclude(Exists(unfinished))
        .select_related("fleet")
    )
    queued = 0
    for upload in uploads:
        counts = dict(upload.entries.values_list("status").annotate(n=Count("pk")).order_by())
        needing = sum(counts.get(status, 0) for status in VinStatus.needs_action())
        context = {
            "upload": upload,
            "counts": sorted(counts.items()),
            "needing": needing,
            "url": absolute(upload.get_absolute_url()),
        }
        for user in recipients.managers(upload.fleet, NotificationKind.UPLOAD_SETTLED):
            queued += notify(user, NotificationKind.UPLOAD_SETTLED, f"upload{upload.pk}", context)[
                1
            ]
    return queued


def completed_links(now: datetime | None = None) -> int:
    now = now or timezone.now()
    links = ConsentLink.objects.filter(
        status=LinkStatus.COMPLETED, returned_at__gte=now - RECENT
    ).select_related("fleet", "account")
    queued = 0
    for link in links:
        context = {"link": link, "url": absolute(link.get_absolute_url())}
        for user in recipients.managers(link.fleet, NotificationKind.CONSENT_COMPLETED):
            queued += notify(user, NotificationKind.CONSENT_COMPLETED, f"link{link.pk}", context)[1]
    return queued


def daily_digest(now: datetime | None = None) -> int:
    """After `DIGEST_HOUR` (UTC), once a day: each subscriber's VINs that need them."""
    now = now or timezone.now()
    if now.hour < settings.DIGEST_HOUR:
        return 0
    queued = 0
    for user in recipients.fleet_members(NotificationKind.DIGEST):
        rows = []
        for fleet in recipients.managed_fleets(user):
            waiting = fleet.entries.filter(
                status__in=VinStatus.needs_action(), superseded=False, dismissed=False
            ).count()
            if waiting:
                rows.append((fleet, waiting, absolute(fleet.get_absolute_url())))
        if rows:
            context = {"rows": rows, "day": now.date()}
            queued += notify(user, NotificationKind.DIGEST, f"{now:%Y-%m-%d}", context)[1]
    return queued


def stuck_vins() -> int:
    staff = recipients.support_staff(NotificationKind.STUCK)
    if not staff:
        return 0
    queued = 0
    entries = stuck_entries().select_related("fleet")
    for entry in entries[:STUCK_PER_RUN]:
        event = f"entry{entry.pk}:{entry.status_changed_at:%Y%m%d%H%M%S}"
        context = {"entry": entry, "url": absolute(reverse("entry_detail", args=[entry.pk]))}
        for user in staff:
            queued += notify(user, NotificationKind.STUCK, event, context)[1]
    return queued


def opened_incidents(now: datetime | None = None) -> int:
    staff = recipients.support_staff(NotificationKind.INCIDENT)
    if not staff:
        return 0
    queued = 0
    for incident in incidents(now):
        event = f"{incident.make}:{incident.error_code}:{incident.first_at:%Y%m%d}"
        context = {"incident": incident, "url": absolute(reverse("support_home"))}
        for user in staff:
            queued += notify(user, NotificationKind.INCIDENT, event, context)[1]
    return queued
