"""The dashboard and a fleet's page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from connections.models import Fleet
from connections.web.access import WATCH_SECONDS, visible_fleet


def dashboard(request: HttpRequest) -> HttpResponse:
    fleets = list(Fleet.objects.visible_to(request.user))
    rows = [(fleet, fleet.headline_counts()) for fleet in fleets]
    return render(request, "connections/web/dashboard.html", {"rows": rows})


def fleet_detail(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    uploads = fleet.uploads.select_related("created_by")[:50]
    return render(
        request,
        "connections/web/fleet_detail.html",
        {
            "fleet": fleet,
            "counts": fleet.headline_counts(),
            "uploads": uploads,
            "version": fleet.live_version(),
            "watch_seconds": WATCH_SECONDS,
            "can_manage": fleet.pk in Fleet.objects.managed_ids(request.user),
        },
    )


def fleet_stats(request: HttpRequest, slug: str) -> HttpResponse:
    """The fleet page's headline counts, polled: unchanged answers 204 without counting."""
    fleet = visible_fleet(request, slug)
    version = fleet.live_version()
    if request.GET.get("v") == version:
        return HttpResponse(status=204)
    context = {
        "fleet": fleet,
        "counts": fleet.headline_counts(),
        "version": version,
        "watch_seconds": WATCH_SECONDS,
    }
    return render(request, "connections/web/fleet_detail.html#stats", context)
