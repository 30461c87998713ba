"""Vehicles a webhook named that match nothing any fleet knows: kept for
support until they match.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from connections.models import UnmatchedVehicle, WebhookEvent
from connections.vehicles.apply import Applied

logger = logging.getLogger(__name__)


def remember_unmatched(event: WebhookEvent, applied: Applied, api_answer: dict) -> None:
    if applied.stale:
        # Nothing was learnt: whatever the fresher read decided stands.
        return
    if not applied.unmatched:
        forget_unmatched([applied.vehicle_id])
        return
    now = timezone.now()
    row, _ = UnmatchedVehicle.objects.get_or_create(
        volteras_id=applied.vehicle_id,
        defaults={"first_seen_at": now},
    )
    row.vin = applied.vin
    row.api_status = applied.api_status
    row.api_answer = api_answer
    row.not_found = applied.api_status.startswith("NOT FOUND")
    row.events += 1
    row.last_event = event
    row.last_seen_at = now
    row.save()


def forget_unmatched(vehicle_ids: list[str]) -> int:
    """These vehicles now match something a fleet knows: off the unmatched
    list, and their events lose the "unmatched" marker. Returns how many rows
    went."""
    removed, _ = UnmatchedVehicle.objects.filter(volteras_id__in=vehicle_ids).delete()
    WebhookEvent.objects.filter(vehicle_id__in=vehicle_ids, unmatched=True).update(unmatched=False)
    return removed


def forget_matched_unmatched() -> int:
    """Clear the unmatched rows that have come to match since (a VIN uploaded
    later, a vehicle id learnt through polling, a consent account added)."""
    known = list(UnmatchedVehicle.objects.now_known().values_list("volteras_id", flat=True))
    return forget_unmatched(known) if known else 0
