"""The consent flow pages an `authenticationUrl` points at.

Like Volteras' sandbox, any credentials are accepted. The form posts back to
the same URL; the unguessable, single-use link token is what authorises the
post, so these views are CSRF-exempt (the owner's browser has no session with
the sandbox).
"""

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox import rules, webhooks
from sandbox.models import Account, ConsentLink, Vehicle

VEHICLES_PER_ACCOUNT = 3
SUCCESS, DECLINED = "success", "declined"


def offered_vins(link: ConsentLink, make: str, username: str) -> list[str]:
    """The vehicles the owner's (fake) manufacturer account holds."""
    if link.payload.get("vin"):
        return [link.payload["vin"].strip().upper()]
    return [rules.fake_vin(make, f"{username.lower()}|{n}") for n in range(VEHICLES_PER_ACCOUNT)]


def allowed_makes(link: ConsentLink) -> list[str]:
    return list(link.payload.get("makes") or rules.MAKES)


def _refusal(request: HttpRequest, title: str, detail: str) -> HttpResponse:
    context = {"title": title, "detail": detail}
    return render(request, "sandbox/consent_refused.html", context, status=410)


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest, token: str) -> HttpResponse:
    link = ConsentLink.objects.filter(token=token).first()
    if link is None:
        return _refusal(request, "Link not found", "This connection link does not exist.")
    if link.used_at is not None:
        return _refusal(request, "Link already used", "This connection link was already used.")
    if link.is_expired():
        return _refusal(
            request,
            "Link expired",
            "This connection link has expired. Ask for a new link to connect your vehicle.",
        )
    makes = allowed_makes(link)
    context = {"link": link, "makes": makes, "vin": link.payload.get("vin"), "errors": []}
    if request.method == "GET":
        return render(request, "sandbox/consent_login.html", context)
    decision = request.POST.get("decision", "")
    if decision == "decline":
        return _finish(request, link, DECLINED, None)
    make = request.POST.get("make", "")
    username = request.POST.get("username", "").strip()
    context.update(make=make, username=username)
    if make not in makes:
        context["errors"].append("Choose the manufacturer of your vehicle.")
    if not username:
        context["errors"].append("Enter the username of your manufacturer account.")
    if context["errors"]:
        return render(request, "sandbox/consent_login.html", context, status=400)
    offered = offered_vins(link, make, username)
    context["offered"] = offered
    if decision != "approve":
        return render(request, "sandbox/consent_vehicles.html", context)
    chosen = [vin for vin in request.POST.getlist("vehicles") if vin in offered]
    if link.payload.get("vin"):
        chosen = offered
    if not chosen:
        context["errors"].append("Pick at least one vehicle to share, or decline.")
        return render(request, "sandbox/consent_vehicles.html", context, status=400)
    with transaction.atomic():
        account = Account.objects.create(username=username, make=make)
        for vin in chosen:
            _connect_vehicle(link, account, vin)
    return _finish(request, link, SUCCESS, account)


def _connect_vehicle(link: ConsentLink, account: Account, vin: str) -> None:
    now = timezone.now()
    existing = Vehicle.objects.filter(vin=vin, disconnected_at__isnull=True).last()
    if existing is not None:
        if existing.status_at(now) == Vehicle.CONNECTED:
            Vehicle.objects.filter(pk=existing.pk).update(account=account)
            return
        Vehicle.objects.filter(pk=existing.pk).update(
            account=account, connect_at=now, visible_at=min(existing.visible_at, now)
        )
        webhooks.cancel_connected(existing.id)
        webhooks.enqueue(webhooks.CONNECTED, existing.id, now)
        return
    payload = link.payload
    vehicle = Vehicle.objects.create(
        vin=vin,
        make=account.make,
        model=(payload.get("model") or "") if payload.get("vin") else "",
        model_year=payload.get("modelYear") if payload.get("vin") else None,
        country_code=payload.get("countryCode") or "",
        account=account,
        outcome=Vehicle.CONNECTED,
        visible_at=now,
        connect_at=now,
    )
    webhooks.enqueue(webhooks.CONNECTED, vehicle.id, now)


def _finish(
    request: HttpRequest, link: ConsentLink, result: str, account: Account | None
) -> HttpResponse:
    ConsentLink.objects.filter(pk=link.pk).update(
        used_at=timezone.now(), result=result, account=account
    )
    return_url = link.payload.get("returnUrl")
    if not return_url:
        return render(request, "sandbox/consent_done.html", {"result": result, "account": account})
    params = {"result": result}
    if account is not None:
        params["accountId"] = account.id
    parts = urlsplit(return_url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return HttpResponseRedirect(urlunsplit(parts._replace(query=query)))
