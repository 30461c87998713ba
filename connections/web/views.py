"""The dashboard and a fleet's page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from connections.models import Fleet
from connections.web.access import WATCH_SECONDS, visible_fleet
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    no_change,
    region_response,
    row_key,
)

STATS = "connections/web/fleet_detail.html#stats"
# Each headline tile: its count, its label, the list of its rows and how a
# screen reader names the link to it (one, several).
TILES = [
    (
        "connected",
        "Connected vehicles",
        "fleet_vehicles",
        "?group=connected",
        ("connected vehicle", "connected vehicles"),
    ),
    (
        "in_progress",
        "VINs in progress",
        "fleet_vehicles",
        "?group=progress",
        ("VIN in progress", "VINs in progress"),
    ),
    (
        "needs_action",
        "VINs needing action",
        "fleet_vehicles",
        "?group=needs",
        ("VIN needing action", "VINs needing action"),
    ),
    (
        "active_links",
        "Active consent links",
        "consent_link_list",
        "?status=active",
        ("active consent link", "active consent links"),
    ),
]


def dashboard(request: HttpRequest) -> HttpResponse:
    fleets = list(Fleet.objects.visible_to(request.user))
    rows = [(fleet, fleet.headline_counts()) for fleet in fleets]
    return render(request, "connections/web/dashboard.html", {"rows": rows})


def stats_context(request: HttpRequest, fleet: Fleet, version: str) -> dict:
    """The headline tiles, a live region: each tile keyed by what it shows.
    A fleet's counts can change at any time (a webhook), so it never stops."""
    counts = fleet.headline_counts()
    live = Live(
        "fleet-stats",
        reverse("fleet_stats", args=[fleet.slug]),
        version,
        WATCH_SECONDS,
        have=browser_keys(request),
    )
    tiles = [
        {
            "id": f"tile-{name}",
            "label": label,
            "value": counts[name],
            "url": reverse(route, args=[fleet.slug]) + query,
            "names": f"{counts[name]} {one if counts[name] == 1 else several}",
        }
        for name, label, route, query, (one, several) in TILES
    ]
    for tile in tiles:
        tile["key"] = row_key(tile["label"], tile["value"])
    return {"fleet": fleet, "counts": counts, "tiles": tiles, "version": version, "live": live}


def fleet_detail(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    uploads = fleet.uploads.select_related("created_by")[:50]
    context = stats_context(request, fleet, fleet.live_version())
    context |= {
        "uploads": uploads,
        "can_manage": fleet.pk in Fleet.objects.managed_ids(request.user),
    }
    return render(request, "connections/web/fleet_detail.html", context)


def fleet_stats(request: HttpRequest, slug: str) -> HttpResponse:
    """The fleet page's headline tiles, polled: unchanged answers 204 without counting."""
    fleet = visible_fleet(request, slug)
    version = fleet.live_version()
    if is_current(request, version):
        return no_change()
    context = stats_context(request, fleet, version)
    return region_response(request, STATS, context, context["live"])
