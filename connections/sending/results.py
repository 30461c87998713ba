"""Applying a connect group's per-VIN results to the portal's entries."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from connections.explanations import VEHICLE_IN_ANOTHER_FLEET, explain
from connections.models import ConnectBatch, VinEntry, VinStatus
from connections.models.holders import fleet_holding_vehicle

logger = logging.getLogger(__name__)


RECHECK_FIRST = timedelta(minutes=5)

ALREADY_ADDED = {
    "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION": VinStatus.CONNECTED,
    "VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED": VinStatus.CONNECTION_REQUIRED,
    "VEHICLE_ALREADY_ADDED_INCOMPATIBLE": VinStatus.INCOMPATIBLE,
    "VEHICLE_ALREADY_ADDED_PENDING_CONNECTION": VinStatus.PENDING,
}


def apply_results(
    batch: ConnectBatch,
    results: Iterable,
    source: str,
    *,
    group_finished: bool,
    observed_at: datetime | None = None,
    request_id: str = "",
) -> int:
    """Apply a group's per-VIN results to its entries; return how many moved.

    `observed_at` is when the results were read: a VIN whose state changed
    after that (a webhook meanwhile) keeps its newer state. Each move records
    the request id of the answer it came in (`request_id`: the group's)."""
    by_vin = {
        e.vin: e
        for e in batch.entries.exclude(status__in=[VinStatus.SKIPPED, VinStatus.INVALID])
        .select_related("upload")
        .order_by("pk")
    }
    seen: set[str] = set()
    moved = 0
    now = timezone.now()
    with transaction.atomic():
        for result in results:
            entry = by_vin.get((result.vin or "").upper())
            if entry is None:
                continue
            seen.add(entry.vin)
            moved += apply_result(entry, result, source, observed_at=observed_at)
        if group_finished:
            for vin, entry in by_vin.items():
                if vin not in seen and entry.status in VinStatus.in_progress():
                    moved += entry.observe(
                        VinStatus.ERROR,
                        source,
                        message="Volteras finished the group without a result for this VIN. "
                        "Retry it.",
                        can_retry=True,
                        request_id=request_id,
                        bump=False,
                        observed_at=observed_at,
                    )
            waiting = [
                e.pk
                for e in by_vin.values()
                if e.status in {VinStatus.PROCESSING, VinStatus.PENDING}
            ]
            VinEntry.objects.filter(pk__in=waiting).schedule_recheck(now + RECHECK_FIRST)
        if moved:
            batch.upload.bump()
    return moved


def apply_result(
    entry: VinEntry, result, source: str, *, observed_at: datetime | None = None
) -> bool:
    codes = [error.code for error in result.errors if error.code]
    status = VinStatus.from_api(str(result.status))
    message = result.message or next((e.message for e in result.errors if e.message), "")
    detail = ""
    already = [code for code in codes if code in ALREADY_ADDED]
    if already:
        # A re-sent VIN (after an ambiguous POST, or uploaded again): Volteras
        # tells us its true state, which is not a failure of this attempt.
        status = ALREADY_ADDED[already[0]]
        detail = f"Volteras already had this VIN ({already[0]}): now {status.label.lower()}"
        codes = [code for code in codes if code not in ALREADY_ADDED]
        message = ""
    if already or result.was_already_connected:
        holder = fleet_holding_vehicle(entry.fleet_id, vin=entry.vin, vehicle_id=result.vehicle_id)
        if holder is not None:
            return refuse_held_elsewhere(entry, holder, source, already, observed_at)
    action = next((str(e.action_category) for e in result.errors if e.action_category), "")
    known = (entry.vehicle_input_id, entry.was_already_connected)
    entry.vehicle_input_id = result.vehicle_input_id or entry.vehicle_input_id
    entry.was_already_connected = bool(result.was_already_connected) or bool(already)
    moved = entry.observe(
        status,
        source,
        error_codes=codes,
        message=message,
        action_category=action,
        can_retry=result.can_retry,
        vehicle_id=result.vehicle_id or "",
        request_id=getattr(result, "request_id", ""),
        detail=detail,
        data={"group_id": entry.batch.group_id} if entry.batch_id else None,
        bump=False,
        observed_at=observed_at,
    )
    if (entry.vehicle_input_id, entry.was_already_connected) != known:
        VinEntry.objects.filter(pk=entry.pk).update(
            vehicle_input_id=entry.vehicle_input_id,
            was_already_connected=entry.was_already_connected,
        )
    return moved


def refuse_held_elsewhere(
    entry: VinEntry, holder, source: str, codes: list[str], observed_at: datetime | None
) -> bool:
    """Volteras answers for the whole organisation: a VIN another fleet holds
    comes back "already added" with that fleet's vehicle. It is refused here,
    with no vehicle id, so nothing of that vehicle reaches this fleet's pages;
    the holder is named in the event's data, which only support sees."""
    logger.warning(
        "entry %s of fleet %s: VIN %s is held by fleet %s; refused",
        entry.pk,
        entry.fleet_id,
        entry.vin,
        holder.slug,
    )
    said = f" ({codes[0]})" if codes else ""
    return entry.observe(
        VinStatus.ERROR,
        source,
        error_codes=[VEHICLE_IN_ANOTHER_FLEET],
        message=explain(VEHICLE_IN_ANOTHER_FLEET).explanation,
        can_retry=False,
        detail=f"Volteras already had this VIN{said}: it is connected to another fleet of "
        "your organisation, so it was not added to this one. Ask support.",
        data={"held_by_fleet": holder.slug, "held_by_fleet_name": holder.name},
        bump=False,
        observed_at=observed_at,
    )
