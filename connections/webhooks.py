"""Processing verified Volteras webhooks, and re-driving any left behind.

A webhook is a signal, never the truth: `device.connected` and
`device.disconnected` only say that something changed for a vehicle id. The
worker reads `GET /v1/vehicles/{id}` (which also gives the VIN the payload
lacks) and applies what the API says now. Duplicates and late or reordered
deliveries are therefore harmless: each one applies the current state again,
which `VinEntry.observe()` recognises as nothing new.

The receiver (`views/webhooks.py`) only verifies and stores one row; the rows
are what guarantee processing. Every worker watches them:
`redrive_webhook_events` runs every `WATCH_EVERY` seconds and enqueues
`process_due_webhook_events`, which drains every due row, whenever rows are
due and no drain is waiting: a new delivery, a retry come due, a worker that
died holding a lease. A burst thus costs a few drain tasks, not one per
delivery or per web process, and the receiver no database work beyond its
INSERT.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from . import volteras
from .models import ConnectedAccount, Source, Vehicle, VinEntry, VinStatus
from .models_webhooks import MAX_EVENT_ATTEMPTS, RefusedDelivery, UnmatchedVehicle, WebhookEvent
from .tasks import sweeper, watcher

logger = logging.getLogger(__name__)

CONNECTED = "device.connected"
DISCONNECTED = "device.disconnected"
ACTED_ON = frozenset({CONNECTED, DISCONNECTED})

# A drain task hands over to a new one after this long (seconds).
DRAIN_BUDGET = 30.0
DRAIN_CHUNK = 50
RETRY_FIRST = 5.0
RETRY_MAX = 600.0
# A `device.connected` may arrive before `GET /v1/vehicles/{id}` knows the
# vehicle (the API lags its own webhooks): a 404 then is read again this many
# times, NOT_FOUND_FIRST seconds apart and doubling, before it counts as
# "the API no longer knows it", i.e. disconnected.
NOT_FOUND_RETRIES = 4
NOT_FOUND_FIRST = 15.0

# Entries the API's word about a vehicle may move. Not SUBMITTING: the batch
# that is sending it owns that step. Not ERROR/INCOMPATIBLE/never-sent ones:
# they are another attempt's outcome, replaced by uploading the VIN again.
APPLIES_TO = (
    VinStatus.PROCESSING,
    VinStatus.PENDING,
    VinStatus.CONNECTION_REQUIRED,
    VinStatus.CONNECTED,
    VinStatus.DISCONNECTED,
)

# Volteras' `connectionStatus` -> the status a VIN entry takes. Statuses that
# mean "still on its way" (PENDING, PENDING_CONNECTION, PROCESSING) are left
# to polling: a webhook should not pull an entry backwards into progress.
API_STATUS = {
    "CONNECTED": VinStatus.CONNECTED,
    "DISCONNECTED": VinStatus.DISCONNECTED,
    "CONNECTION_REQUIRED": VinStatus.CONNECTION_REQUIRED,
    "INCOMPATIBLE": VinStatus.INCOMPATIBLE,
    "ERROR": VinStatus.ERROR,
}


def delivery_fields(payload: dict[str, Any]) -> tuple[str, str]:
    """(event type, vehicle id) of a verified body.

    The contract's body is `{"id": "<vehicle id>", "deviceType": "VEHICLE"}`,
    with no type (Svix keeps a message's event type to itself): the type is
    then "" and the vehicle's state, read from the API, tells what happened.
    An envelope `{"type": ..., "data": {"id": ..., ...}}` is accepted too.
    """
    event_type = payload.get("type") or payload.get("eventType") or ""
    data = payload.get("data")
    if not isinstance(data, dict):
        data = payload
    vehicle_id = data.get("id") or data.get("vehicleId") or ""
    if not isinstance(event_type, str):
        event_type = ""
    if not isinstance(vehicle_id, str):
        vehicle_id = str(vehicle_id) if isinstance(vehicle_id, int) else ""
    return event_type[:100], vehicle_id[:64]


def is_acted_on(event_type: str, vehicle_id: str) -> bool:
    """Connected/disconnected events are; so is an untyped body naming a
    vehicle, since either way the answer is to read the vehicle."""
    return bool(vehicle_id) and (event_type in ACTED_ON or not event_type)


@dataclass
class Applied:
    """What applying the API's view of one vehicle did."""

    vehicle_id: str
    vin: str = ""
    api_status: str = ""
    status: str | None = None
    matched: int = 0
    changed: int = 0
    stale: bool = False
    unmatched: bool = False

    def summary(self) -> str:
        if self.stale:
            return "A fresher read of this vehicle was already applied; nothing to do."
        said = self.api_status or "nothing"
        if self.unmatched:
            return f"Volteras says {said}; no VIN entry in any fleet matches this vehicle."
        if self.status is None:
            return f"Volteras says {said}; left to polling ({self.matched} entries match)."
        return (
            f"Volteras says {said}: {self.changed} of {self.matched} matching entries "
            f"changed to {VinStatus(self.status).label}."
        )


def status_from_api(vehicle: volteras.Vehicle | None) -> str | None:
    """The VIN status the API's answer means; None when it should not move entries."""
    if vehicle is None:
        # A vehicle the API no longer knows has been disconnected.
        return VinStatus.DISCONNECTED
    return API_STATUS.get((vehicle.connection_status or "").upper())


def apply_vehicle(
    vehicle_id: str,
    source: str,
    *,
    client: volteras.VolterasClient | None = None,
    known: volteras.Vehicle | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    read_at: datetime | None = None,
    not_found_is_final: bool | Callable[[], bool] = True,
) -> Applied:
    """Read the vehicle (unless `known` was just read, as from the vehicle
    list) and apply what the API says to the vehicle record and to every VIN
    entry of it in any fleet. Raises `VolterasError` when the API cannot be read,
    and `volteras.NotFound` on a 404 unless `not_found_is_final` (then a 404
    means disconnected).

    Two workers may process events for one vehicle at once; the vehicle row
    is locked while applying and a read older than the last applied one is
    dropped, so a slow worker never writes back an older state.
    """
    # When `known` came from a list, `read_at` is when that list was started.
    read_at = read_at or timezone.now()
    api = known
    if api is None:
        try:
            api = (client or volteras.get_client()).get_vehicle(vehicle_id)
        except volteras.NotFound:
            # Asked only on a 404 (deciding may take a query).
            final = not_found_is_final() if callable(not_found_is_final) else not_found_is_final
            if not final:
                raise
            api = None
    applied = Applied(vehicle_id=vehicle_id, vin=api.vin.upper() if api else "")
    applied.api_status = (api.connection_status or "UNKNOWN") if api else "NOT FOUND (404)"
    applied.status = status_from_api(api)

    with transaction.atomic():
        record = Vehicle.objects.select_for_update().filter(volteras_id=vehicle_id).first()
        if record is not None and record.last_seen_at > read_at:
            applied.stale = True
            return applied
        record = _store_vehicle(record, vehicle_id, api, read_at)
        if not applied.vin and record is not None:
            applied.vin = record.vin
        entries = list(_entries_for(vehicle_id, applied.vin, applied.status))
        applied.matched = len(entries)
        if applied.status is not None:
            said = f"Volteras says {applied.api_status}"
            detail = f"{reason}: {said}" if reason else said
            for entry in entries:
                applied.changed += entry.observe(
                    applied.status,
                    source,
                    error_codes=_error_codes(api, applied.status),
                    message=(api.connection_error_message or "") if api else "",
                    action_category=str(api.action_category or "") if api else "",
                    vehicle_id=vehicle_id,
                    detail=detail,
                    data={"vehicle_id": vehicle_id, **(data or {})},
                )
        account_id = (api.account_id if api else None) or (record.account_id if record else "")
        applied.unmatched = not entries and not _known_anywhere(
            vehicle_id, applied.vin, account_id or ""
        )
    return applied


def _store_vehicle(
    record: Vehicle | None, vehicle_id: str, api: volteras.Vehicle | None, read_at
) -> Vehicle | None:
    if api is None:
        if record is not None:
            record.connection_status = "DISCONNECTED"
            record.disconnected = True
            record.last_seen_at = read_at
            record.save(update_fields=["connection_status", "disconnected", "last_seen_at"])
        return record
    values = {
        "vin": api.vin.upper(),
        "make": api.make,
        "connection_status": api.connection_status or "",
        "connection_error_code": api.connection_error_code or "",
        "account_id": api.account_id or "",
        "disconnected": (api.connection_status or "").upper() == "DISCONNECTED",
        "raw": api.raw,
        "last_seen_at": read_at,
    }
    if record is None:
        record, _ = Vehicle.objects.update_or_create(volteras_id=vehicle_id, defaults=values)
        return record
    for name, value in values.items():
        setattr(record, name, value)
    record.save(update_fields=list(values))
    return record


def _entries_for(vehicle_id: str, vin: str, status: str | None):
    """Entries the answer about this vehicle applies to. An entry that knows
    its vehicle id takes news about that vehicle only (a VIN connected again
    gets a new id); one that does not yet is matched by VIN, except that a
    disconnection never touches an entry that is still on its way."""
    match = Q(vehicle_id=vehicle_id)
    if vin:
        if status == VinStatus.DISCONNECTED:
            match |= Q(vehicle_id="", vin=vin, status=VinStatus.CONNECTED)
        else:
            match |= Q(vehicle_id="", vin=vin)
    # An ERROR whose way forward is the owner's consent (VIN_UPLOAD_NOT_SUPPORTED)
    # is waiting for exactly this news, like a CONNECTION_REQUIRED entry.
    waiting = Q(status__in=APPLIES_TO) | VinEntry.consent_link_q()
    return (
        VinEntry.objects.filter(match, waiting, superseded=False)
        .select_related("upload")
        .order_by("pk")
    )


def _known_anywhere(vehicle_id: str, vin: str, account_id: str) -> bool:
    """Whether any fleet knows the vehicle: by a VIN entry, or through the
    consent-flow account it was shared from."""
    match = Q(vehicle_id=vehicle_id)
    if vin:
        match |= Q(vin=vin)
    if VinEntry.objects.filter(match).exists():
        return True
    return bool(account_id) and ConnectedAccount.objects.filter(volteras_id=account_id).exists()


def _error_codes(api: volteras.Vehicle | None, status: str) -> list[str]:
    if api is None or status == VinStatus.CONNECTED or not api.connection_error_code:
        return []
    return [api.connection_error_code]


def _remember_unmatched(event: WebhookEvent, applied: Applied, api_answer: dict) -> None:
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


def process_event(event_id: int, *, client: volteras.VolterasClient | None = None) -> str:
    """Claim one stored event and act on it; safe to call twice or concurrently."""
    event = WebhookEvent.claim(event_id)
    if event is None:
        return "not due"
    if not is_acted_on(event.event_type, event.vehicle_id):
        event.finish(WebhookEvent.State.IGNORED, result="Event type not acted on; stored only.")
        return "ignored"
    try:
        applied = apply_vehicle(
            event.vehicle_id,
            Source.WEBHOOK,
            client=client,
            reason=f"{event.event_type or 'untyped'} webhook",
            data={"svix_id": event.svix_id, "event_type": event.event_type},
            not_found_is_final=lambda: _not_found_is_final(event),
        )
    except volteras.NotFound:
        return _not_found_yet(event)
    except volteras.VolterasError as exc:
        return _failed_transiently(event, exc)
    except Exception as exc:
        # A bug or bad data: keep the event for support to look at and retry.
        logger.exception("webhook event %s failed", event.pk)
        event.finish(WebhookEvent.State.FAILED, error=f"{exc.__class__.__name__}: {exc}")
        return "failed"
    vehicle = Vehicle.objects.filter(volteras_id=event.vehicle_id).only("raw").first()
    _remember_unmatched(event, applied, vehicle.raw if vehicle else {})
    if applied.stale:
        # The marker follows the record the fresher read left behind.
        applied.unmatched = UnmatchedVehicle.objects.filter(volteras_id=event.vehicle_id).exists()
    event.finish(
        WebhookEvent.State.PROCESSED,
        result=applied.summary(),
        vin=applied.vin,
        api_status=applied.api_status,
        entries_matched=applied.matched,
        entries_changed=applied.changed,
        unmatched=applied.unmatched,
    )
    return "processed"


def _not_found_is_final(event: WebhookEvent) -> bool:
    """Whether a 404 for this event's vehicle means it is disconnected now.

    After `device.disconnected` it does. After `device.connected` the API may
    not know the new vehicle yet, so only once the retries are spent. An
    untyped event (the contract's body carries no type) is read like a
    disconnection when the portal has read this vehicle from the API before
    (the API knew it and no longer does), like a connection otherwise.
    """
    if event.event_type == DISCONNECTED or event.attempts > NOT_FOUND_RETRIES:
        return True
    if event.event_type == CONNECTED:
        return False
    return Vehicle.objects.filter(volteras_id=event.vehicle_id).exists()


def _not_found_yet(event: WebhookEvent) -> str:
    delay = NOT_FOUND_FIRST * 2 ** (event.attempts - 1)
    left = NOT_FOUND_RETRIES + 1 - event.attempts
    event.finish(
        WebhookEvent.State.RECEIVED,
        error=(
            "Volteras does not know this vehicle yet (404); read again in "
            f"{delay:.0f} s ({left} more read{'s' if left != 1 else ''} before it "
            "counts as disconnected)."
        ),
        api_status="NOT FOUND (404)",
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    return "retry"


def _failed_transiently(event: WebhookEvent, exc: volteras.VolterasError) -> str:
    error = str(exc)[:2000]
    if event.attempts >= MAX_EVENT_ATTEMPTS:
        event.finish(WebhookEvent.State.FAILED, error=f"Gave up after {event.attempts}: {error}")
        return "failed"
    delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (event.attempts - 1)) * random.uniform(0.8, 1.2)
    if isinstance(exc, volteras.RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    # The sweep enqueues a drain once it is due.
    event.finish(
        WebhookEvent.State.RECEIVED,
        error=error,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    return "retry"


@task()
def process_webhook_event(event_id: int) -> str:
    return process_event(event_id)


def process_due(*, budget: float = DRAIN_BUDGET) -> int:
    """Process due events until none is left or the time budget is spent;
    returns how many this call processed. Several may run at once on several
    workers: each event is claimed by exactly one."""
    deadline = time.monotonic() + budget
    done = 0
    while time.monotonic() < deadline:
        ids = list(
            WebhookEvent.objects.due()
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:DRAIN_CHUNK]
        )
        if not ids:
            return done
        # Parallel drains read the same first rows: a shuffled order keeps
        # them from queueing behind one another's claims.
        random.shuffle(ids)
        for pk in ids:
            if process_event(pk) != "not due":
                done += 1
            if time.monotonic() >= deadline:
                break
    # Out of time with work left: hand over to a fresh task.
    if WebhookEvent.objects.due().exists():
        process_due_webhook_events.enqueue()
    return done


@task()
def process_due_webhook_events() -> int:
    return process_due()


def processed_inline() -> bool:
    """Whether tasks run as they are enqueued (a backend other than the
    database queue, e.g. `ImmediateBackend`): then no worker watches the
    events table and the receiver must start their processing itself."""
    return not isinstance(process_due_webhook_events.get_backend(), DatabaseBackend)


def _drain_waiting() -> bool:
    return DBTaskResult.objects.filter(
        status=TaskResultStatus.READY, task_path=process_due_webhook_events.module_path
    ).exists()


@watcher
@sweeper
def redrive_webhook_events() -> int:
    """Enqueue a drain when events are due and no drain is waiting in the
    queue: new deliveries, a retry come due, or a worker that died holding a
    lease (its event is due again once the lease expires). While a drain runs,
    one more waits, so an idle second worker joins in on a burst."""
    if not WebhookEvent.objects.due().exists() or _drain_waiting():
        return 0
    process_due_webhook_events.enqueue()
    return 1


# Refusals deleted per sweep at most, so a flood never makes one sweep slow.
PRUNE_CHUNK = 5000


@sweeper
def prune_refused_deliveries() -> int:
    """Forget refusals older than `WEBHOOK_REFUSED_RETENTION_DAYS`: anyone can
    POST unsigned junk to the webhook URL, and each POST writes a row."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_REFUSED_RETENTION_DAYS)
    old = list(
        RefusedDelivery.objects.filter(at__lt=cutoff)
        .order_by("at")
        .values_list("pk", flat=True)[:PRUNE_CHUNK]
    )
    if not old:
        return 0
    deleted, _ = RefusedDelivery.objects.filter(pk__in=old).delete()
    return deleted


def process_again(event: WebhookEvent) -> None:
    """Support's "process again" for one event."""
    event.process_again()
    process_webhook_event.enqueue(event.pk)
