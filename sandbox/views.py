"""The sandbox's own pages and controls, outside `/v1/`."""

import functools
import json
from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import control, webhooks
from sandbox.api.auth import valid_client_credentials
from sandbox.api.responses import REALM, ApiError, authenticate
from sandbox.models import (
    Account,
    ApiToken,
    ConnectGroup,
    ConsentLink,
    EligibilityCheck,
    Vehicle,
    WebhookDelivery,
)


def credentials_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A change to the sandbox needs the sandbox's client credentials (HTTP Basic) or
    one of its bearer tokens, like the API: a stray request cannot wipe or fault it."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "GET" and not _has_credentials(request):
            response = JsonResponse(
                {"error": "Send the sandbox client credentials (HTTP Basic) or a bearer token."},
                status=401,
            )
            response["WWW-Authenticate"] = f"Basic {REALM}"
            return response
        return view(request, *args, **kwargs)

    return guarded


def _has_credentials(request: HttpRequest) -> bool:
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    try:
        if scheme == "basic":
            return valid_client_credentials(request) is not None
        authenticate(request)
    except ApiError:
        return False
    return True


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
@credentials_required
def control_view(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        try:
            changes = json.loads(request.body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            control.update(changes)
        except (ValueError, TypeError) as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(control.current().as_json())


@csrf_exempt
@login_not_required
@require_POST
@credentials_required
def reset(request: HttpRequest) -> JsonResponse:
    """Wipe every sandbox row and put the controls back to the settings."""
    for model in (
        WebhookDelivery,
        ConsentLink,
        EligibilityCheck,
        ConnectGroup,
        Vehicle,
        Account,
        ApiToken,
    ):
        model.objects.all().delete()
    control.reset()
    return JsonResponse(control.current().as_json())


@csrf_exempt
@login_not_required
@require_POST
@credentials_required
def connect_pending(request: HttpRequest) -> JsonResponse:
    """Connect every PENDING vehicle now (except the ones that stay pending forever)."""
    now = timezone.now()
    due = Vehicle.objects.filter(
        outcome=Vehicle.PENDING,
        connect_at__gt=now,
        disconnected_at__isnull=True,
    )
    ids = []
    for vehicle in due:
        at = max(now, vehicle.visible_at)
        Vehicle.objects.filter(pk=vehicle.pk).update(connect_at=at)
        webhooks.reschedule_connected(vehicle.id, at)
        ids.append(vehicle.id)
    return JsonResponse({"connected": ids})


@csrf_exempt
@login_not_required
@require_POST
@credentials_required
def expire_links(request: HttpRequest) -> JsonResponse:
    """Make every unused consent link expire now (links live at least an hour)."""
    expired = ConsentLink.objects.filter(used_at__isnull=True).update(expires_at=timezone.now())
    return JsonResponse({"expired": expired})


@login_not_required
@require_GET
def webhook_log(request: HttpRequest) -> HttpResponse:
    deliveries = WebhookDelivery.objects.order_by("-pk_seq")[:500]
    state = control.current()
    return render(request, "sandbox/webhooks.html", {"deliveries": deliveries, "state": state})


@login_not_required
@require_GET
def webhook_log_json(request: HttpRequest) -> JsonResponse:
    deliveries = WebhookDelivery.objects.order_by("pk_seq")
    return JsonResponse({"deliveries": [webhooks.as_json(d) for d in deliveries]})


@login_not_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    counts = {
        "accounts": Account.objects.filter(disconnected_at__isnull=True).count(),
        "vehicles": Vehicle.objects.count(),
        "groups": ConnectGroup.objects.count(),
        "webhooks": WebhookDelivery.objects.count(),
    }
    return render(request, "sandbox/home.html", {"counts": counts, "state": control.current()})
