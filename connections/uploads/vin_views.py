"""The VIN page: where a VIN stands, its next steps as buttons, its timeline,
and what Volteras says of it now; its live part refreshes itself."""

from __future__ import annotations

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from connections.models import (
    VinEntry,
    VinStatus,
)
from connections.support.actions import ACTIONS, request_ids
from connections.uploads.vin_page import (
    live_context,
    live_version,
    volteras_view,
    webhook_deliveries,
)
from connections.web.access import (
    WATCH_SECONDS,
)
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    no_change,
    region_response,
    row_key,
    wants_region,
)

VIN_LIVE = "connections/uploads/entry_detail.html#live"
LINKS_SHOWN = 20
VIN_REGION = "vin-live"
VIN_POLL_SECONDS = {"fast": 3, "slow": WATCH_SECONDS}


def entry_detail(request: HttpRequest, entry_id: int) -> HttpResponse:
    """A VIN's page. Its live part (`#vin-live`) polls this same view: 204 while
    nothing changed (one query), else the parts that changed; 286 once the VIN
    is final, the part it sends then carrying a slow watcher (a connected VIN
    can still be disconnected), or none when nothing can happen to it any more."""
    seen = live_version(request.user, entry_id)
    if seen is None:
        raise Http404("No such VIN.")
    version, mode = seen
    region = wants_region(request, VIN_REGION)
    if region and is_current(request, version):
        return no_change()
    entry = get_object_or_404(
        VinEntry.objects.select_related("upload__created_by", "fleet", "batch"), pk=entry_id
    )
    links = list(
        entry.consent_links.select_related("fleet").order_by("-created_at", "-pk")[:LINKS_SHOWN]
    )
    events = list(entry.events.select_related("actor").order_by("at", "pk"))
    live = Live(
        VIN_REGION,
        reverse("entry_detail", args=[entry.pk]),
        version,
        VIN_POLL_SECONDS.get(mode),
        stop=mode != "fast",
        have=browser_keys(request) if region else {},
    )
    context = {**live_context(request, entry, events), "consent_links": links, "live": live}
    context["has_links"] = bool(links)
    context["keys"] = keys = _vin_keys(context)
    # Volteras is asked on the page's load, and by a poll only when the VIN's
    # record moved since the browser's answer (its key), never on every poll.
    context["volteras_kept"] = live.kept("volteras-view", keys["volteras"])
    if not context["volteras_kept"]:
        vehicle, vehicle_problem = volteras_view(entry)
        context |= {"vehicle": vehicle, "vehicle_problem": vehicle_problem}
        context["vehicle_asked_at"] = timezone.now() if entry.vehicle_id else None
    if region:
        return region_response(request, VIN_LIVE, context, live)
    others = (
        VinEntry.objects.filter(fleet=entry.fleet, vin=entry.vin)
        .exclude(pk=entry.pk)
        .select_related("upload")
        .order_by("-pk")[:20]
    )
    context |= {
        "others": others,
        "deliveries": webhook_deliveries(entry, everywhere=context["support_user"]),
    }
    if context["support_user"]:
        context["support_actions"] = ACTIONS
        context["request_ids"] = request_ids([entry]).get(entry.pk, [])
    return render(request, "connections/uploads/entry_detail.html", context)


def _vin_keys(context: dict) -> dict[str, str]:
    """Keys of the VIN page's live parts, each what it shows. The next steps
    have their own, so a note being typed survives a change of status that
    leaves the same steps on offer."""
    entry = context["entry"]
    return {
        "now": row_key(
            entry.status,
            entry.status_changed_at,
            entry.escalated,
            entry.dismissed,
            entry.message,
            entry.error_codes,
            entry.problems,
            context["who_must_act"],
            context["live"].every,
        ),
        "steps": row_key(
            context["retry_refusal"],
            entry.consent_link_helps,
            context["has_links"],
            context["offer_escalate"],
            context["offer_remove"],
            entry.status == VinStatus.CONNECTED,
        ),
        "links": row_key(
            [(link.pk, link.state, link.expires_at) for link in context["consent_links"]]
        ),
        "vehicle": row_key(
            entry.make, entry.make_inferred, entry.country_code, entry.registration_plate,
            entry.model, entry.model_year, entry.vehicle_id, context["support_user"],
            entry.batch and entry.batch.group_id,
        ),
        "volteras": row_key(entry.vehicle_id, entry.status, entry.status_changed_at, entry.message),
    }  # fmt: skip
