"""Svix-style webhooks: queued as rows, signed and posted by the clock thread.

Body, as the Volteras docs give it for both events:
    {"id": "<vehicle id>", "deviceType": "VEHICLE"}
Like Svix, the event type (`device.connected` / `device.disconnected`) is
the message's own attribute, kept in the delivery log, not sent in the body
or a header: a receiver learns what happened by reading the vehicle.
"""

import json
import logging
import random
import uuid
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone
from svix.webhooks import Webhook

from sandbox import control
from sandbox.api.responses import iso
from sandbox.models import WebhookDelivery

log = logging.getLogger("sandbox.webhooks")

CONNECTED = "device.connected"
DISCONNECTED = "device.disconnected"
MAX_ATTEMPTS = 10
BACKOFF_SECONDS = (1, 2, 4, 8, 16, 32, 60, 120, 300)
MIN_BACKOFF = 0.2
REORDER_WINDOW = timedelta(seconds=0.5)
TIMEOUT = 5.0


def enqueue(event_type: str, vehicle_id: str, due: datetime | None = None) -> WebhookDelivery:
    due = (due or timezone.now()) + timedelta(milliseconds=control.current().webhook_delay_ms)
    body = {"id": vehicle_id, "deviceType": "VEHICLE"}
    return WebhookDelivery.objects.create(
        msg_id=f"msg_{uuid.uuid4().hex}",
        event_type=event_type,
        vehicle_id=vehicle_id,
        body=json.dumps(body, separators=(",", ":")),
        next_attempt_at=due,
    )


def reschedule_connected(vehicle_id: str, due: datetime) -> None:
    """A pending vehicle's connection moved: its queued webhook follows it."""
    WebhookDelivery.objects.filter(
        vehicle_id=vehicle_id, event_type=CONNECTED, state=WebhookDelivery.SCHEDULED
    ).update(next_attempt_at=due)


def cancel_connected(vehicle_id: str) -> None:
    """A vehicle disconnected before it ever connected: it never says it did."""
    WebhookDelivery.objects.filter(
        vehicle_id=vehicle_id, event_type=CONNECTED, state=WebhookDelivery.SCHEDULED
    ).delete()


def signed_headers(msg_id: str, body: str, secret: str, now: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, now, body),
    }


def due_deliveries(now: datetime) -> list[WebhookDelivery]:
    due = list(
        WebhookDelivery.objects.filter(
            state__in=[WebhookDelivery.SCHEDULED, WebhookDelivery.RETRYING],
            next_attempt_at__lte=now,
        )
    )
    if not control.current().webhook_reorder or not due:
        return due
    # Hold the batch for a moment so several events pile up, then send newest first.
    if min(d.next_attempt_at for d in due) > now - REORDER_WINDOW:
        return []
    return sorted(due, key=lambda d: d.pk_seq, reverse=True)


def deliver_due(client: httpx.Client) -> int:
    """Attempt every due delivery once; returns how many were attempted."""
    state = control.current()
    if not state.webhook_url:
        return 0
    deliveries = due_deliveries(timezone.now())
    for delivery in deliveries:
        ok = _attempt(client, delivery, state.webhook_url)
        if ok and state.webhook_duplicates and random.random() < state.webhook_duplicates:
            _attempt(client, delivery, state.webhook_url, duplicate=True)
    return len(deliveries)


def _attempt(
    client: httpx.Client, delivery: WebhookDelivery, url: str, duplicate: bool = False
) -> bool:
    now = timezone.now()
    headers = signed_headers(delivery.msg_id, delivery.body, settings.SANDBOX_WEBHOOK_SECRET, now)
    record: dict = {"at": iso(now), "url": url, "duplicate": duplicate, "error": None}
    try:
        response = client.post(url, content=delivery.body.encode(), headers=headers)
        record["status"] = response.status_code
        ok = 200 <= response.status_code < 300
    except httpx.HTTPError as exc:
        record["status"] = None
        record["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    delivery.attempts = [*delivery.attempts, record]
    if duplicate:
        delivery.save(update_fields=["attempts"])
        return ok
    if ok:
        delivery.state = WebhookDelivery.DELIVERED
        delivery.next_attempt_at = None
    else:
        failures = sum(1 for a in delivery.attempts if not a["duplicate"])
        if failures >= MAX_ATTEMPTS:
            delivery.state = WebhookDelivery.FAILED
            delivery.next_attempt_at = None
        else:
            wait = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS)) - 1]
            wait = max(wait * control.current().speed, MIN_BACKOFF)
            delivery.state = WebhookDelivery.RETRYING
            delivery.next_attempt_at = now + timedelta(seconds=wait)
    delivery.save(update_fields=["attempts", "state", "next_attempt_at"])
    log.info("webhook %s %s %s -> %s", delivery.msg_id, delivery.event_type, url, record["status"])
    return ok


def as_json(delivery: WebhookDelivery) -> dict:
    return {
        "msgId": delivery.msg_id,
        "type": delivery.event_type,
        "vehicleId": delivery.vehicle_id,
        "body": json.loads(delivery.body),
        "state": delivery.state,
        "createdAt": iso(delivery.created_at),
        "nextAttemptAt": iso(delivery.next_attempt_at),
        "attempts": delivery.attempts,
    }
