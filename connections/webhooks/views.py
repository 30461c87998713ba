"""The Volteras webhook receiver, and the delivery log support reads.

The receiver does the least it can: check the size, verify the Svix
signature and store one row, in one statement. It enqueues nothing: workers
watch the table for due rows (`connections.webhooks.redrive_webhook_events`).
Everything slow (reading the vehicle from the API, moving VIN entries)
happens there, so Svix gets its 2xx in milliseconds and a burst does not pile
up in the web tier.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.db.models import Max, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from svix.webhooks import Webhook, WebhookVerificationError

from connections.backoff import TRANSIENT_DB_ERRORS
from connections.models import (
    ReconciliationRun,
    RefusedDelivery,
    UnmatchedVehicle,
    VinEntry,
    WebhookEvent,
    user_is_support,
)
from connections.models.webhooks import REFUSED_SOURCES_PER_WINDOW
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    mark_rows,
    no_change,
    region_response,
    row_key,
    wants_region,
)
from connections.webhooks.delivery_log import log_version
from connections.webhooks.process import ACTED_ON, delivery_fields, is_acted_on
from connections.webhooks.tasks import process_again, process_due_webhook_events, processed_inline
from fleet_portal.client_ip import client_ip

logger = logging.getLogger(__name__)

# Volteras' events are a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 64 * 1024
SVIX_HEADERS = {
    "svix-id": "HTTP_SVIX_ID",
    "svix-timestamp": "HTTP_SVIX_TIMESTAMP",
    "svix-signature": "HTTP_SVIX_SIGNATURE",
}
PAGE_SIZE = 50
LOG_REGION = "delivery-rows"
LOG_ROWS = "connections/webhooks/event_list.html#rows"
LOG_POLL_SECONDS = 10
# What a 503 asks Svix to wait when the database is unavailable.
RETRY_AFTER_SECONDS = 5


@lru_cache(maxsize=4)
def _verifier(secret: str) -> Webhook:
    return Webhook(secret)


def _source_address(request: HttpRequest) -> str:
    """The peer, plus the first X-Forwarded-For hop a proxy claims (unverified)."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()
    if forwarded and forwarded != remote:
        return f"{forwarded} via {remote}"[:64]
    return remote[:64]


def _refuse(
    request: HttpRequest,
    reason: str,
    status: int,
    detail: str = "",
    body_size: int | None = None,
) -> JsonResponse:
    # Counted per address as the trusted proxies saw it (`client_ip`): the
    # rest of X-Forwarded-For is the sender's to choose, kept only as a claim.
    meta = request.META
    RefusedDelivery.count_one(
        client_ip(request)[:64],
        reason,
        forwarded_for=meta.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()[:64],
        detail=detail[:255],
        claimed_svix_id=meta.get("HTTP_SVIX_ID", "")[:255],
        body_size=body_size,
        user_agent=meta.get("HTTP_USER_AGENT", "")[:255],
    )
    logger.warning("webhook refused (%s): %s", reason, detail)
    return JsonResponse({"error": reason}, status=status)


def _refusal_for(exc: Exception) -> str:
    message = str(exc)
    if "Missing required headers" in message:
        return RefusedDelivery.Reason.MISSING_HEADERS
    if "timestamp too" in message:
        return RefusedDelivery.Reason.STALE
    return RefusedDelivery.Reason.BAD_SIGNATURE


@csrf_exempt
@login_not_required
@require_POST
def receive(request: HttpRequest) -> HttpResponse:
    """`POST /webhooks/volteras/`: verify, store, answer (workers watch the table).

    With the database unavailable (down, or SQLite locked past its busy
    timeout) the answer is a 503 that Svix retries, never a 500 page: nothing
    was stored, and the same delivery will come again."""
    try:
        return _receive(request)
    except TRANSIENT_DB_ERRORS as exc:
        logger.warning("webhook not stored, the database is unavailable: %s", exc)
        response = JsonResponse({"error": "unavailable"}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _receive(request: HttpRequest) -> HttpResponse:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _refuse(request, RefusedDelivery.Reason.TOO_LARGE, 413, body_size=int(declared))
    # Read at most one byte past the limit: a body without a length cannot
    # make the portal hold more than that.
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _refuse(request, RefusedDelivery.Reason.TOO_LARGE, 413, body_size=len(body))
    secret = settings.VOLTERAS_WEBHOOK_SECRET
    if not secret:
        # Our misconfiguration, not the sender's: a 5xx makes Svix retry later.
        return _refuse(request, RefusedDelivery.Reason.NOT_CONFIGURED, 503, body_size=len(body))
    # Straight from META: `request.headers` would build a mapping of every header.
    headers = {name: request.META.get(meta, "") for name, meta in SVIX_HEADERS.items()}
    refusal = _verify(request, secret, body, headers)
    if refusal is not None:
        return refusal
    payload = _json_object(body)
    if payload is None:
        return _refuse(request, RefusedDelivery.Reason.NOT_JSON, 400, body_size=len(body))
    event_type, vehicle_id = delivery_fields(payload)
    acted_on = is_acted_on(event_type, vehicle_id)
    if _store(request, body, headers, event_type, vehicle_id, acted_on) is None:
        # Svix redelivers what it thinks failed: the first copy already counts
        # (store_once counted this one).
        return JsonResponse({"status": "duplicate"})
    if acted_on and processed_inline():
        # No worker watches the table (tasks run inline): process it now.
        process_due_webhook_events.enqueue()
    return JsonResponse({"status": "accepted"})


def _verify(
    request: HttpRequest, secret: str, body: bytes, headers: dict[str, str]
) -> HttpResponse | None:
    """The refusal of a delivery whose Svix signature does not hold, else None."""
    try:
        _verifier(secret).verify(body, headers)
    except WebhookVerificationError as exc:
        return _refuse(request, _refusal_for(exc), 400, str(exc), len(body))
    except (ValueError, UnicodeDecodeError) as exc:
        # A malformed signature header (no "v1," part, bad base64) or a body
        # that is not text: svix raises these rather than its own error.
        return _refuse(
            request, RefusedDelivery.Reason.BAD_SIGNATURE, 400, f"malformed: {exc}", len(body)
        )
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None. Only UTF-8 (JSON's own encoding):
    `json.loads` would also take UTF-16, which the event row cannot store as text."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return None
    return payload if isinstance(payload, dict) else None


def _store(
    request: HttpRequest,
    body: bytes,
    headers: dict[str, str],
    event_type: str,
    vehicle_id: str,
    acted_on: bool,
) -> int | None:
    """One INSERT: the new event's id, or None for a redelivery."""
    now = timezone.now()
    meta = request.META
    return WebhookEvent.store_once(
        svix_id=headers["svix-id"][:255],
        event_type=event_type,
        vehicle_id=vehicle_id,
        body=body.decode("utf-8"),
        headers={
            "svix-timestamp": headers["svix-timestamp"],
            "content-type": meta.get("CONTENT_TYPE", "")[:100],
            "user-agent": meta.get("HTTP_USER_AGENT", "")[:200],
        },
        source_address=_source_address(request),
        received_at=now,
        next_attempt_at=now,
        state=WebhookEvent.State.RECEIVED if acted_on else WebhookEvent.State.IGNORED,
        result="" if acted_on else "Event type not acted on; stored only.",
        processed_at=None if acted_on else now,
    )


# The delivery log: support staff and admins only.


def _support_only(request: HttpRequest) -> None:
    # 404, not 403: a fleet manager learns nothing about the page.
    if not user_is_support(request.user):
        raise Http404


class EventFilterForm(forms.Form):
    STATUS_CHOICES = [
        ("", "Any"),
        *WebhookEvent.State.choices,
        ("duplicate", "Delivered more than once"),
        ("unmatched", "Matches no VIN"),
    ]

    type = forms.ChoiceField(required=False, label="Type")
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES, label="Status")
    vehicle = forms.CharField(required=False, max_length=64, label="Vehicle id or VIN")

    def __init__(self, *args, types: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "Any")] + [(t, t or "(untyped)") for t in types]

    def apply(self, events):
        if not self.is_valid():
            return events
        data = self.cleaned_data
        if data["type"]:
            events = events.of_kind(data["type"])
        status = data["status"]
        if status == "duplicate":
            events = events.filter(duplicates__gt=0)
        elif status == "unmatched":
            events = events.filter(state=WebhookEvent.State.PROCESSED, unmatched=True)
        elif status:
            events = events.filter(state=status)
        vehicle = data["vehicle"].strip()
        if vehicle:
            events = events.filter(Q(vehicle_id=vehicle) | Q(vin=vehicle.upper()))
        return events


def event_list(request: HttpRequest) -> HttpResponse:
    """The delivery log; its rows are a live region polling this same view (204
    while nothing changed). New deliveries come in on page 1; a later page keeps
    its rows (`top`: the newest delivery when it was opened) and shows their
    processing as it moves. Never stops: Volteras may send at any time."""
    _support_only(request)
    version = log_version()
    region = wants_region(request, LOG_REGION)
    if region and is_current(request, version):
        return no_change()
    filters = {k: v for k, v in request.GET.items() if k in EventFilterForm.base_fields and v}
    # The type's choices cost a scan of the log: the page's filter has them,
    # a refresh of the rows only checks the type it was given.
    types = [filters.get("type", "")] if region else _event_types()
    form = EventFilterForm(filters or None, types=types)
    events = form.apply(WebhookEvent.objects.defer("body", "headers"))
    number = _page_number(request)
    top = request.GET.get("top", "")
    if number > 1:
        top = top if top.isdigit() else str(WebhookEvent.objects.aggregate(m=Max("pk"))["m"] or 0)
        events = events.filter(pk__lte=int(top))
    query = urlencode(filters)
    live = Live(
        LOG_REGION,
        reverse("webhook_events"),
        version,
        LOG_POLL_SECONDS,
        params={**filters, "page": number if number > 1 else "", "top": top if number > 1 else ""},
        have=browser_keys(request),
    )
    context = {"form": form, "query": query, "live": live}
    if region:
        # No pager here: it counts the log, and stays as the page drew it.
        start = (number - 1) * PAGE_SIZE
        context["rows"] = _keyed(list(events[start : start + PAGE_SIZE]), live)
        return region_response(request, LOG_ROWS, context, live)
    page = Paginator(events, PAGE_SIZE).get_page(number)
    context |= {
        "page": page,
        "rows": _keyed(list(page), live),
        "refused_count": RefusedDelivery.objects.aggregate(n=Sum("count"))["n"],
        "unmatched_count": UnmatchedVehicle.objects.still_unmatched().count(),
        "runs": ReconciliationRun.objects.all()[:5],
    }
    return render(request, "connections/webhooks/event_list.html", context)


def _event_types() -> list[str]:
    seen = WebhookEvent.objects.values_list("event_type", flat=True).distinct().order_by()
    return sorted({*ACTED_ON} | set(seen))


def _page_number(request: HttpRequest) -> int:
    raw = request.GET.get("page", "")
    return max(int(raw), 1) if raw.isdigit() else 1


def _keyed(events: list[WebhookEvent], live: Live) -> list[WebhookEvent]:
    def key(event: WebhookEvent) -> str:
        return row_key(
            event.pk, event.state, event.attempts, event.result, event.error, event.kind,
            event.vehicle_id, event.vin, event.duplicates, event.is_unmatched,
        )  # fmt: skip

    mark_rows(events, live, "delivery-", key)
    return events


def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    _support_only(request)
    event = get_object_or_404(WebhookEvent, pk=event_id)
    match = Q(vehicle_id=event.vehicle_id) if event.vehicle_id else Q(pk__in=[])
    if event.vin:
        match |= Q(vin=event.vin)
    entries = VinEntry.objects.filter(match).select_related("fleet", "upload").order_by("-pk")[:50]
    return render(
        request,
        "connections/webhooks/event_detail.html",
        {
            "event": event,
            "entries": entries,
            "unmatched": UnmatchedVehicle.objects.still_unmatched()
            .filter(volteras_id=event.vehicle_id)
            .first(),
        },
    )


def event_process_again(request: HttpRequest, event_id: int) -> HttpResponse:
    _support_only(request)  # before the method check: a manager's GET gets 404, not 405
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    event = get_object_or_404(WebhookEvent, pk=event_id)
    process_again(event)
    messages.success(request, f"Event {event.svix_id} queued to be processed again.")
    return redirect(event)


def refused_list(request: HttpRequest) -> HttpResponse:
    _support_only(request)
    page = Paginator(RefusedDelivery.objects.all(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "connections/webhooks/refused_list.html",
        {
            "page": page,
            "refused_count": RefusedDelivery.objects.aggregate(n=Sum("count"))["n"],
            "sources_per_window": REFUSED_SOURCES_PER_WINDOW,
        },
    )


def unmatched_list(request: HttpRequest) -> HttpResponse:
    _support_only(request)
    # Rows matched since (through polling or a later upload) are left out at
    # once; reconciliation deletes them.
    unmatched = UnmatchedVehicle.objects.still_unmatched().select_related("last_event")
    page = Paginator(unmatched, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "connections/webhooks/unmatched_list.html", {"page": page})
