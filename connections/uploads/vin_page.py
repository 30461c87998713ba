"""The VIN page's reads: its self-updating part, the webhook deliveries about
its vehicle, and Volteras' current view of it."""

from __future__ import annotations

from django.db.models import OuterRef, Q, Subquery
from django.http import HttpRequest

from connections.explanations import WhoActs
from connections.models import (
    ConsentLinkEvent,
    Fleet,
    VinEntry,
    VinEvent,
    VinStatus,
    WebhookEvent,
    user_is_support,
)
from connections.volteras import NotFound, Vehicle, VolterasError, get_client

DELIVERIES_SHOWN = 20
# Never sent, so nothing will ever happen to them (a later upload makes a new row).
NEVER_SENT = {VinStatus.INVALID, VinStatus.SKIPPED}


def live_version(user, entry_id: int) -> tuple[str, str] | None:
    """What the VIN page's poll compares, in one query: the entry's last change
    (every transition saves `updated_at` and records an event), its last timeline
    event and the last event of its consent links; with how the page watches
    (`watch_mode`). None when `user` may not see the entry."""
    events = VinEvent.objects.filter(entry=OuterRef("pk")).order_by("-pk").values("pk")[:1]
    link_events = (
        ConsentLinkEvent.objects.filter(link__vin_entry=OuterRef("pk"))
        .order_by("-pk")
        .values("pk")[:1]
    )
    row = (
        VinEntry.objects.filter(pk=entry_id, fleet__in=Fleet.objects.visible_to(user))
        .annotate(last_event=Subquery(events), last_link_event=Subquery(link_events))
        .values_list("updated_at", "last_event", "last_link_event", "status", "superseded")
        .first()
    )
    if row is None:
        return None
    changed, last_event, last_link_event, status, superseded = row
    # Superseding a row touches neither its `updated_at` nor its timeline.
    version = f"{changed.timestamp():.6f}.{last_event or 0}.{last_link_event or 0}.{superseded:d}"
    return version, watch_mode(status, superseded)


def watch_mode(status: str, superseded: bool) -> str:
    """ "fast" while the VIN is on its way, "slow" once it is final but can still
    change (a disconnect by webhook, an owner's consent, support's actions),
    "" when nothing can happen to it any more (replaced, or never sent)."""
    if superseded or status in NEVER_SENT:
        return ""
    if status == VinStatus.PENDING:
        return "slow"  # can take days: the slower poll, as on the upload table
    return "fast" if status in VinStatus.in_progress() else "slow"


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
