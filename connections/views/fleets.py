from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from connections.models import Fleet


def visible_fleet(request: HttpRequest, slug: str) -> Fleet:
    """A fleet the user may see, or 404: another fleet's URL never leaks."""
    return get_object_or_404(Fleet.objects.visible_to(request.user), slug=slug)


def dashboard(request: HttpRequest) -> HttpResponse:
    fleets = list(Fleet.objects.visible_to(request.user))
    rows = [(fleet, fleet.headline_counts()) for fleet in fleets]
    return render(request, "connections/dashboard.html", {"rows": rows})


def fleet_detail(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    uploads = fleet.uploads.select_related("created_by")[:50]
    return render(
        request,
        "connections/fleet_detail.html",
        {"fleet": fleet, "counts": fleet.headline_counts(), "uploads": uploads},
    )
