"""Who may see and change what, for every view: a fleet or upload the user may
see, else 404 (another fleet's URL never leaks); one they may change, else 403
with the reason (support staff, who know it exists)."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404

from connections.models import Fleet, Upload, VinEntry

# How often a page whose numbers rarely move (the fleet page, a settled upload) asks
# whether a webhook changed something; htmx doubles it while the tab is hidden.
WATCH_SECONDS = 30

READ_ONLY = (
    "Support staff can read every fleet but not change it: uploads, fleet consent links and "
    "connected accounts are for the fleet's managers. Use the troubleshooting actions on a "
    "VIN's page or in the support workspace instead."
)


def visible_fleet(request: HttpRequest, slug: str) -> Fleet:
    """A fleet the user may see, or 404: another fleet's URL never leaks."""
    return get_object_or_404(Fleet.objects.visible_to(request.user), slug=slug)


def post_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`require_POST` for a fleet's actions, decided after visibility: another
    fleet's action URL answers an outsider's GET with the same 404 as its pages
    (a 405 would confirm that the upload or fleet exists)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            if "upload_id" in kwargs:
                visible = Upload.objects.filter(fleet__in=Fleet.objects.visible_to(request.user))
                get_object_or_404(visible, pk=kwargs["upload_id"])
            elif "slug" in kwargs:
                visible_fleet(request, kwargs["slug"])
            elif "entry_id" in kwargs:
                visible = VinEntry.objects.filter(fleet__in=Fleet.objects.visible_to(request.user))
                get_object_or_404(visible, pk=kwargs["entry_id"])
            return HttpResponseNotAllowed(["POST"])
        return view(request, *args, **kwargs)

    return wrapper


def require_manager(request: HttpRequest, fleet: Fleet) -> None:
    """For a fleet the user may already see: 403 with the reason unless they may
    change it (`Fleet.objects.managed_by`). Only support staff get here, and
    they know the fleet exists, so the refusal can say why."""
    if fleet.pk not in Fleet.objects.managed_ids(request.user):
        raise PermissionDenied(READ_ONLY)


def managed_fleet(request: HttpRequest, slug: str) -> Fleet:
    """A fleet the user may change: 404 to outsiders, 403 to support staff."""
    fleet = visible_fleet(request, slug)
    require_manager(request, fleet)
    return fleet


def visible_upload(request: HttpRequest, upload_id: int, *related: str) -> Upload:
    """An upload of a fleet the user may see, or 404 (with its fleet and `related`)."""
    return get_object_or_404(
        Upload.objects.select_related("fleet", *related).filter(
            fleet__in=Fleet.objects.visible_to(request.user)
        ),
        pk=upload_id,
    )


def managed_upload(request: HttpRequest, upload_id: int) -> Upload:
    """An upload the user may change: 404 to outsiders, 403 to support staff."""
    upload = visible_upload(request, upload_id)
    require_manager(request, upload.fleet)
    return upload
