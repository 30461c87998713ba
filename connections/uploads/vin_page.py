"""The VIN page's reads: its self-updating part, the webhook deliveries about
its vehicle, and Volteras' current view of it."""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest

from connections.explanations import WhoActs
from connections.models import Fleet, VinEntry, VinStatus, WebhookEvent, user_is_support
from connections.volteras import NotFound, Vehicle, VolterasError, get_client

DELIVERIES_SHOWN = 20


def live_context(request: HttpRequest, entry: VinEntry, events: list) -> dict:
    """The VIN page's self-updating part: where it stands, its next steps as
    buttons, and its timeline. Support is offered whenever the page says
    "Who acts: Contact support" (Volteras' category or our explanation's), and
    removing the vehicle where the next step is to remove it."""
    explanation = entry.explanation
    sent = entry.status not in {VinStatus.READY, VinStatus.INVALID, VinStatus.SKIPPED}
    current = not entry.superseded
    return {
        "entry": entry,
        "events": events,
        "fleet": entry.fleet,
        "explanation": explanation,
        "who_must_act": entry.who_acts,
        "retry_refusal": entry.retry_refusal(),
        "support_user": user_is_support(request.user),
        "polling": entry.status in VinStatus.in_progress(),
        "has_links": entry.consent_links.exists(),
        "offer_escalate": sent
        and current
        and not entry.escalated
        and entry.status != VinStatus.CONNECTED
        and (entry.is_stuck() or entry.who_acts_category == WhoActs.CONTACT_SUPPORT),
        "offer_remove": current
        and entry.status == VinStatus.INCOMPATIBLE
        and entry.fleet_id in Fleet.objects.managed_ids(request.user),
    }


def webhook_deliveries(entry: VinEntry, *, everywhere: bool) -> list[WebhookEvent]:
    """The webhook deliveries about this VIN's vehicle, newest first. Support
    (`everywhere`) also sees those matched by VIN, whichever fleet's vehicle
    they were about; a fleet manager only those about this entry's vehicle."""
    match = Q(vin=entry.vin) if entry.vin and everywhere else Q(pk__in=[])
    if entry.vehicle_id:
        match |= Q(vehicle_id=entry.vehicle_id)
    events = WebhookEvent.objects.filter(match).defer("body", "headers")
    return list(events.order_by("-received_at", "-pk")[:DELIVERIES_SHOWN])


def volteras_view(entry: VinEntry) -> tuple[Vehicle | None, str]:
    """Volteras' current view of the VIN's vehicle, or why it could not be read."""
    if not entry.vehicle_id:
        return None, ""
    try:
        return get_client().get_vehicle(entry.vehicle_id), ""
    except NotFound:
        return None, (
            f"Volteras does not know vehicle {entry.vehicle_id} (any more): it may have been "
            "disconnected or removed."
        )
    except VolterasError as exc:
        text = (
            "Volteras could not be asked about this vehicle just now, so only the portal's "
            f"own record is shown ({exc.message or type(exc).__name__})."
        )
        if exc.request_id:
            text += f" Volteras request {exc.request_id}."
        return None, text
