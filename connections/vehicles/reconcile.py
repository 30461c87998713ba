"""Reconciliation: the safety net under polling and webhooks.

Every `RECONCILE_INTERVAL_SECONDS` one worker compares the portal with
Volteras and applies what it finds, marked "found by reconciliation":

1. `GET /v1/vehicles` (every page): the connected vehicles. A VIN entry still
   waiting (processing, pending, consent required) whose vehicle is listed
   connected becomes CONNECTED.
2. Vehicles the portal believes connected that are not listed (those of
   CONNECTED entries, and those shared through a consent account, which may
   have no VIN entry): each is read with `GET /v1/vehicles/{id}`, which heals
   a missed `device.disconnected`.
3. Entries still PROCESSING or PENDING after that: their group's results are
   read again (one read per group).

Steps 2 and 3 read at most `RECONCILE_MAX_VEHICLE_READS` vehicles and
`RECONCILE_MAX_GROUP_READS` groups a run. Each run resumes after the last
vehicle id and batch id the previous run read (kept on its row) and wraps
around, so with N rows to read every one is reached within ceil(N / cap)
runs, however many there are. A missed webhook is therefore healed within
one interval (a few more at great scale) plus the run's duration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from connections import volteras
from connections.models import (
    ConnectBatch,
    ConnectedAccount,
    ReconciliationRun,
    Source,
    Upload,
    Vehicle,
    VinEntry,
    VinStatus,
    WebhookEvent,
)
from connections.sending.results import apply_result
from connections.vehicles.apply import apply_vehicle, status_from_api
from connections.vehicles.unmatched import forget_matched_unmatched

logger = logging.getLogger(__name__)

PAGE_SIZE = 100

WAITING = (VinStatus.PROCESSING, VinStatus.PENDING, VinStatus.CONNECTION_REQUIRED)
# A run looks again this often (seconds) whether delivered webhook events are
# still waiting, for at most half an interval after it was created.
WEBHOOK_RECHECK = 2.0
WAITING_FOR_WEBHOOKS = "waiting for webhook events"


@dataclass
class Report:
    vehicles_listed: int = 0
    vehicles_read: int = 0
    groups_read: int = 0
    changes: int = 0
    errors: list[str] = field(default_factory=list)
    # Where the next run resumes: the last vehicle id and batch id read.
    vehicle_cursor: str = ""
    group_cursor: int = 0


def last_cursors() -> tuple[str, int]:
    """Where the previous finished run stopped (the start when none has)."""
    run = (
        ReconciliationRun.objects.filter(state=ReconciliationRun.State.DONE)
        .order_by("-finished_at", "-pk")
        .only("vehicle_cursor", "group_cursor")
        .first()
    )
    return (run.vehicle_cursor, run.group_cursor) if run else ("", 0)


def reconcile(
    client: volteras.VolterasClient | None = None,
    *,
    vehicle_cursor: str = "",
    group_cursor: int = 0,
) -> Report:
    """One pass, resuming steps 2 and 3 after the given cursors; raises
    `VolterasError` only if the vehicle list cannot be read."""
    client = client or volteras.get_client()
    report = Report(vehicle_cursor=vehicle_cursor, group_cursor=group_cursor)
    # A webhook applied while the list is read is fresher than the list:
    # everything taken from the list counts as read when listing started.
    started = timezone.now()
    listed = {vehicle.id: vehicle for vehicle in client.list_vehicles(page_size=PAGE_SIZE)}
    report.vehicles_listed = len(listed)
    _store_listed(listed, started)
    report.changes += _connect_listed(listed, started)
    report.changes += _check_connected_unlisted(client, listed, report)
    report.changes += _reread_groups(client, report)
    # Polling, uploads and this run may have matched vehicles support was
    # shown as unmatched.
    forget_matched_unmatched()
    return report


def _store_listed(listed: dict[str, volteras.Vehicle], started: datetime) -> None:
    """Refresh the vehicle records in bulk (no per-vehicle queries), except
    those read again since the list was started."""
    ids = list(listed)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        existing = {v.volteras_id: v for v in Vehicle.objects.filter(volteras_id__in=chunk)}
        new, changed = [], []
        for vehicle_id in chunk:
            api = listed[vehicle_id]
            record = existing.get(vehicle_id) or Vehicle(volteras_id=vehicle_id)
            if record.pk and record.last_seen_at > started:
                continue
            record.vin = api.vin.upper()
            record.make = api.make
            record.connection_status = api.connection_status or ""
            record.connection_error_code = api.connection_error_code or ""
            record.account_id = api.account_id or ""
            record.disconnected = (api.connection_status or "").upper() == "DISCONNECTED"
            record.raw = api.raw
            record.last_seen_at = started
            (changed if record.pk else new).append(record)
        Vehicle.objects.bulk_create(new, ignore_conflicts=True)
        Vehicle.objects.bulk_update(
            changed,
            [
                "vin",
                "make",
                "connection_status",
                "connection_error_code",
                "account_id",
                "disconnected",
                "raw",
                "last_seen_at",
            ],
        )


def _connect_listed(listed: dict[str, volteras.Vehicle], started: datetime) -> int:
    """Entries still waiting whose vehicle the list shows connected."""
    connected_by_vin: dict[str, volteras.Vehicle] = {}
    for vehicle in listed.values():
        if status_from_api(vehicle) == VinStatus.CONNECTED and vehicle.vin:
            connected_by_vin[vehicle.vin.upper()] = vehicle
    to_apply: dict[str, volteras.Vehicle] = {}
    candidates = VinEntry.objects.filter(
        superseded=False, status__in=(*WAITING, VinStatus.DISCONNECTED)
    ).values_list("vehicle_id", "vin", "status")
    for vehicle_id, vin, status in candidates.iterator(chunk_size=5000):
        api = listed.get(vehicle_id) if vehicle_id else connected_by_vin.get(vin)
        if api is None or status_from_api(api) != VinStatus.CONNECTED:
            continue
        if status == VinStatus.DISCONNECTED and vehicle_id != api.id:
            continue
        to_apply[api.id] = api
    changes = 0
    for vehicle_id, api in to_apply.items():
        # Applied like a webhook's read: locked, and skipped if a fresher read
        # of this vehicle was applied since the list was started.
        applied = apply_vehicle(
            vehicle_id,
            Source.RECONCILIATION,
            known=api,
            read_at=started,
            reason="Found by reconciliation",
        )
        changes += applied.changed
    return changes


def _believed_connected(after: str = "", upto: str | None = None):
    """Vehicle ids the portal believes connected, in id order, in (after, upto]:
    those of CONNECTED entries, and those shared through a consent account
    last seen CONNECTED (they may have no VIN entry at all)."""
    entries = VinEntry.objects.filter(superseded=False, status=VinStatus.CONNECTED).exclude(
        vehicle_id=""
    )
    shared = Vehicle.objects.filter(
        connection_status="CONNECTED",
        account_id__in=ConnectedAccount.objects.exclude(volteras_id="").values("volteras_id"),
    )
    entries = entries.filter(vehicle_id__gt=after)
    shared = shared.filter(volteras_id__gt=after)
    if upto is not None:
        entries = entries.filter(vehicle_id__lte=upto)
        shared = shared.filter(volteras_id__lte=upto)
    # UNION (not ALL) also removes a vehicle that is in both.
    return (
        entries.order_by()
        .values_list("vehicle_id", flat=True)
        .union(shared.order_by().values_list("volteras_id", flat=True))
        .order_by("vehicle_id")
    )


def _check_connected_unlisted(
    client: volteras.VolterasClient, listed: dict[str, volteras.Vehicle], report: Report
) -> int:
    cap = settings.RECONCILE_MAX_VEHICLE_READS
    cursor = report.vehicle_cursor

    def round_robin():
        # From after the last run's cursor to the end, then from the start up
        # to the cursor: each vehicle at most once a run.
        yield from _believed_connected(after=cursor).iterator()
        if cursor:
            yield from _believed_connected(upto=cursor).iterator()

    changes = 0
    for vehicle_id in round_robin():
        if vehicle_id in listed:
            continue
        if report.vehicles_read >= cap:
            break
        report.vehicles_read += 1
        report.vehicle_cursor = vehicle_id
        try:
            applied = apply_vehicle(
                vehicle_id,
                Source.RECONCILIATION,
                client=client,
                reason="Found by reconciliation",
            )
        except volteras.VolterasError as exc:
            report.errors.append(f"vehicle {vehicle_id}: {exc}")
            continue
        changes += applied.changed
    return changes


def _reread_groups(client: volteras.VolterasClient, report: Report) -> int:
    waiting = (
        VinEntry.objects.filter(
            superseded=False,
            status__in=(VinStatus.PROCESSING, VinStatus.PENDING),
            batch__state=ConnectBatch.State.DONE,
        )
        .exclude(batch__group_id="")
        .values_list("batch_id", flat=True)
        .distinct()
        .order_by("batch_id")
    )
    cap = settings.RECONCILE_MAX_GROUP_READS
    cursor = report.group_cursor
    # After the last run's cursor to the end, then wrapping round to it.
    batch_ids = list(waiting.filter(batch_id__gt=cursor)[:cap])
    if len(batch_ids) < cap and cursor:
        batch_ids += list(waiting.filter(batch_id__lte=cursor)[: cap - len(batch_ids)])
    changes = 0
    for batch_id in batch_ids:
        report.group_cursor = batch_id
        batch = ConnectBatch.objects.get(pk=batch_id)
        # A VIN whose state changed after this read (a webhook meanwhile) keeps it.
        read_at = timezone.now()
        try:
            results = client.connect_results(batch.group_id)
        except volteras.VolterasError as exc:
            report.errors.append(f"group {batch.group_id}: {exc}")
            continue
        report.groups_read += 1
        entries = {
            entry.vin: entry
            for entry in batch.entries.filter(
                superseded=False, status__in=(VinStatus.PROCESSING, VinStatus.PENDING)
            ).select_related("upload", "batch")
        }
        moved = 0
        with transaction.atomic():
            for result in results:
                entry = entries.get((result.vin or "").upper())
                if entry is not None:
                    moved += apply_result(entry, result, Source.RECONCILIATION, observed_at=read_at)
            if moved:
                Upload(pk=batch.upload_id).bump()
        changes += moved
    return changes


def start_run(now=None) -> ReconciliationRun | None:
    """The run of the current interval, if nobody has started it yet."""
    now = now or timezone.now()
    slot = int(now.timestamp()) // settings.RECONCILE_INTERVAL_SECONDS
    try:
        with transaction.atomic():
            return ReconciliationRun.objects.create(slot=slot, created_at=now)
    except IntegrityError:
        return None


def waits_for_webhooks(run_id: int) -> bool:
    """Whether a queued run should let delivered webhook events go first.

    The safety net follows the fast path: events stored and waiting would
    race the run, and what they announce would be marked "found by
    reconciliation", the sign of a missed webhook, and read twice. A backlog
    delays a run by half an interval at most, so healing stays bounded.
    """
    run = ReconciliationRun.objects.filter(pk=run_id, state=ReconciliationRun.State.QUEUED).first()
    if run is None:
        return False
    limit = run.created_at + timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS / 2)
    return timezone.now() < limit and WebhookEvent.objects.due().exists()


def execute_run(run_id: int, *, client: volteras.VolterasClient | None = None) -> str:
    """Run a queued run; "waiting for webhook events" means: run it again in
    `WEBHOOK_RECHECK` seconds."""
    if waits_for_webhooks(run_id):
        return WAITING_FOR_WEBHOOKS
    claimed = ReconciliationRun.objects.filter(
        pk=run_id, state=ReconciliationRun.State.QUEUED
    ).update(state=ReconciliationRun.State.RUNNING, started_at=timezone.now())
    if not claimed:
        return "not queued"
    vehicle_cursor, group_cursor = last_cursors()
    try:
        report = reconcile(client, vehicle_cursor=vehicle_cursor, group_cursor=group_cursor)
    except volteras.VolterasError as exc:
        logger.warning("reconciliation %s failed: %s", run_id, exc)
        ReconciliationRun.objects.filter(pk=run_id).update(
            state=ReconciliationRun.State.FAILED, finished_at=timezone.now(), error=str(exc)
        )
        return "failed"
    ReconciliationRun.objects.filter(pk=run_id).update(
        state=ReconciliationRun.State.DONE,
        finished_at=timezone.now(),
        vehicles_listed=report.vehicles_listed,
        vehicles_read=report.vehicles_read,
        groups_read=report.groups_read,
        changes=report.changes,
        error="\n".join(report.errors)[:5000],
        vehicle_cursor=report.vehicle_cursor,
        group_cursor=report.group_cursor,
    )
    if report.changes:
        logger.info("reconciliation %s healed %s entries", run_id, report.changes)
    return "done"
