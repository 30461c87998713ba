"""`/v1/accounts...`: list, get, consent link (`:connect`) and `:disconnect`."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone

from sandbox import control, rules
from sandbox.api.connect import active_device_count
from sandbox.api.pages import cursor_page
from sandbox.api.responses import ApiError, api_view, json_body
from sandbox.api.vehicles import DISCONNECT_AFTER, disconnect
from sandbox.models import Account, ConsentLink, Vehicle

SCOPES = {
    "vehicle:all", "vehicle:charging_history", "vehicle:driving_behavior",
    "vehicle:location_history", "vehicle:telemetry", "vehicle:information", "vehicle:commands",
    "battery:all", "battery:telemetry", "geofences:all", "geofences:read", "geofences:write",
}  # fmt: skip
DEVICE_TYPES = {"VEHICLE", "BATTERY", "CHARGER", "INVERTER", "HEAT_PUMP"}
LOCALES = {"en-GB", "de-DE", "fr-FR", "nl-NL"}
REGIONS = {"EUROPE", "NORTH_AMERICA"}
MIN_EXPIRATION, MAX_EXPIRATION, DEFAULT_EXPIRATION = 3600, 1_209_600, 3600


def account_json(account: Account) -> dict[str, Any]:
    return {"id": account.id, "username": account.username}


def _active_account(account_id: str) -> Account:
    account = Account.objects.filter(id=account_id, disconnected_at__isnull=True).first()
    if account is None:
        raise ApiError("RESOURCE_NOT_FOUND", "No account with this id.", {"id": account_id})
    return account


def _list(request: HttpRequest) -> JsonResponse:
    queryset = Account.objects.filter(disconnected_at__isnull=True)
    rows, next_token, total = cursor_page(request, queryset, {"filter": request.GET.get("filter")})
    return JsonResponse(
        {
            "results": [account_json(a) for a in rows],
            "nextPageToken": next_token,
            "totalResults": total,
        }
    )


def _get(request: HttpRequest, account_id: str) -> JsonResponse:
    return JsonResponse(account_json(_active_account(account_id)))


def _disconnect(request: HttpRequest, account_id: str) -> JsonResponse:
    with transaction.atomic(using="sandbox"):
        account = _active_account(account_id)
        Account.objects.filter(pk=account.pk).update(disconnected_at=timezone.now())
        delay = DISCONNECT_AFTER * control.current().speed
        for vehicle in Vehicle.objects.filter(account=account, disconnected_at__isnull=True):
            disconnect(vehicle, delay)
    return JsonResponse({})


def validate_connect_payload(body: Any) -> dict[str, Any]:
    """The AccountConnectPayload rules; raises the matching API error."""
    if not isinstance(body, dict):
        raise _invalid("body", "must be a JSON object")
    scopes, device_types = body.get("scopes"), body.get("deviceTypes")
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
        raise _invalid("scopes", f"required, one or more of {sorted(SCOPES)}")
    if (
        not isinstance(device_types, list)
        or not device_types
        or not set(device_types) <= DEVICE_TYPES
    ):
        raise _invalid("deviceTypes", f"required, one or more of {sorted(DEVICE_TYPES)}")
    makes = body.get("makes")
    if makes is not None and (not isinstance(makes, list) or not set(makes) <= set(rules.MAKES)):
        raise _invalid("makes", "a list of supported makes")
    if body.get("locale") not in (None, *LOCALES):
        raise _invalid("locale", f"one of {sorted(LOCALES)}")
    region = body.get("region")
    if region not in (None, *REGIONS):
        raise _invalid("region", f"one of {sorted(REGIONS)}")
    expiration = body.get("urlExpiration")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION
    if (
        isinstance(expiration, bool)
        or not isinstance(expiration, int)
        or not MIN_EXPIRATION <= expiration <= MAX_EXPIRATION
    ):
        raise _invalid("urlExpiration", f"whole seconds from {MIN_EXPIRATION} to {MAX_EXPIRATION}")
    return_url = body.get("returnUrl")
    if return_url is not None:
        parts = urlsplit(return_url) if isinstance(return_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise _invalid("returnUrl", "an absolute http(s) URL")
    for field, kind in (("countryCode", str), ("vin", str), ("model", str), ("modelYear", int)):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise _invalid(field, "has the wrong type")
    vin = body.get("vin")
    if vin is not None and rules.vin_problem(vin.strip().upper()):
        raise _invalid("vin", rules.vin_problem(vin.strip().upper()) or "")
    chosen = set(makes or [])
    if chosen & {"BMW", "MINI"} and region is None:
        raise _invalid("region", "BMW and MINI need a region (EUROPE or NORTH_AMERICA)")
    if chosen & {"HYUNDAI", "KIA"} and region == "NORTH_AMERICA":
        raise ApiError("UNSUPPORTED_OEM", "Hyundai and Kia can be connected in Europe only.")
    return {**body, "urlExpiration": expiration, "region": region or "EUROPE"}


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        "REQUEST_VALIDATION_ERROR",
        f"{field}: {message}",
        {"errors": [{"loc": ["body", field], "msg": message}]},
    )


def _connect(request: HttpRequest) -> JsonResponse:
    payload = validate_connect_payload(json_body(request))
    state = control.current()
    if active_device_count() >= state.vehicle_limit:
        raise ApiError("DEVICE_LIMIT_REACHED", "The organisation has reached its vehicle limit.")
    link = ConsentLink.objects.create(
        payload=payload,
        expires_at=timezone.now() + timedelta(seconds=payload["urlExpiration"]),
    )
    path = reverse("sandbox:consent", args=[link.token])
    return JsonResponse({"authenticationUrl": f"{state.base_url}{path}"})


accounts = api_view({"GET": _list})
account = api_view({"GET": _get})
account_connect = api_view({"POST": _connect})
account_disconnect = api_view({"POST": _disconnect})
