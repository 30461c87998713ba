"""Processing verified Volteras webhooks, and re-driving any left behind.

A webhook is a signal, never the truth: `device.connected` and
`device.disconnected` only say that something changed for a vehicle id. The
worker reads `GET /v1/vehicles/{id}` (which also gives the VIN the payload
lacks) and applies what the API says now. Duplicates and late or reordered
deliveries are therefore harmless: each one applies the current state again,
which `VinEntry.observe()` recognises as nothing new.

The receiver (`webhooks/views.py`) only verifies and stores one row; the rows
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
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from connections import volteras
from connections.backoff import exponential, jittered
from connections.models import RefusedDelivery, Source, UnmatchedVehicle, Vehicle, WebhookEvent
from connections.models.webhooks import MAX_EVENT_ATTEMPTS
from connections.vehicles.apply import apply_vehicle
from connections.vehicles.unmatched import remember_unmatched

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
    remember_unmatched(event, applied, vehicle.raw if vehicle else {})
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
    delay = exponential(event.attempts, NOT_FOUND_FIRST, float("inf"))
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
    delay = jittered(event.attempts, RETRY_FIRST, RETRY_MAX).total_seconds()
    if isinstance(exc, volteras.RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    # The sweep enqueues a drain once it is due.
    event.finish(
        WebhookEvent.State.RECEIVED,
        error=error,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    return "retry"


def process_due(*, budget: float = DRAIN_BUDGET) -> int:
    """Process due events until none is left or the time budget is spent;
    returns how many this call processed (the task hands what is left to a
    fresh task). Several may run at once on several
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
    return done


# Refusals deleted per sweep at most, so a flood never makes one sweep slow.
PRUNE_CHUNK = 5000


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
