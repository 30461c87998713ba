"""`/v1/accounts...`: list, get, consent link (`:connect`) and `:disconnect`."""

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone

from sandbox import control, rules
from sandbox.api.connect import active_device_count, whole_number
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
INTEGRATION_METHODS = {"BMW_ENERGY_API"}
# The contract's pattern for a coordinate sent as a string (e.g. "51.5").
_COORDINATE = re.compile(r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$")
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
    with transaction.atomic():
        account = _active_account(account_id)
        Account.objects.filter(pk=account.pk).update(disconnected_at=timezone.now())
        delay = DISCONNECT_AFTER * control.current().speed
        for vehicle in Vehicle.objects.filter(account=account, disconnected_at__isnull=True):
            disconnect(vehicle, delay)
    return JsonResponse({})


def _enum_list(body: dict[str, Any], field: str, allowed: set[str] | tuple[str, ...]) -> list:
    value = body.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
        raise _invalid(field, f"a list of {sorted(allowed)}")
    return value


def _absolute_http_url(value: Any) -> bool:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # e.g. "http://[": an unclosed IPv6 bracket
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _coordinate_problem(value: Any) -> bool:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return False
    return not (isinstance(value, str) and _COORDINATE.match(value))


def validate_connect_payload(body: Any) -> dict[str, Any]:
    """The AccountConnectPayload rules; raises the matching API error."""
    if not isinstance(body, dict):
        raise _invalid("body", "must be a JSON object")
    if not body.get("scopes"):
        raise _invalid("scopes", f"required, one or more of {sorted(SCOPES)}")
    _enum_list(body, "scopes", SCOPES)
    if not body.get("deviceTypes"):
        raise _invalid("deviceTypes", f"required, one or more of {sorted(DEVICE_TYPES)}")
    _enum_list(body, "deviceTypes", DEVICE_TYPES)
    makes = None if body.get("makes") is None else _enum_list(body, "makes", rules.MAKES)
    if body.get("locale") not in (None, *LOCALES):
        raise _invalid("locale", f"one of {sorted(LOCALES)}")
    region = body.get("region")
    if region not in (None, *REGIONS):
        raise _invalid("region", f"one of {sorted(REGIONS)}")
    if body.get("integrationMethod") not in (None, *INTEGRATION_METHODS):
        raise _invalid("integrationMethod", f"one of {sorted(INTEGRATION_METHODS)}")
    for field in ("chargerLocationLatitude", "chargerLocationLongitude"):
        if _coordinate_problem(body.get(field)):
            raise _invalid(field, "a number (or a decimal number as a string)")
    raw_expiration = body.get("urlExpiration")
    expiration = DEFAULT_EXPIRATION if raw_expiration is None else whole_number(raw_expiration)
    if expiration is None or not MIN_EXPIRATION <= expiration <= MAX_EXPIRATION:
        raise _invalid("urlExpiration", f"whole seconds from {MIN_EXPIRATION} to {MAX_EXPIRATION}")
    return_url = body.get("returnUrl")
    if return_url is not None and not _absolute_http_url(return_url):
        raise _invalid("returnUrl", "an absolute http(s) URL")
    for field in ("countryCode", "vin", "model"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise _invalid(field, "has the wrong type")
    model_year = body.get("modelYear")
    if model_year is not None and whole_number(model_year) is None:
        raise _invalid("modelYear", "has the wrong type")
    # The schema admits any string; an empty one asks for no single-vehicle link.
    vin = (body.get("vin") or "").strip().upper()
    if vin and rules.vin_problem(vin):
        raise _invalid("vin", rules.vin_problem(vin) or "")
    chosen = set(makes or [])
    if chosen & {"BMW", "MINI"} and region is None:
        raise _invalid("region", "BMW and MINI need a region (EUROPE or NORTH_AMERICA)")
    if chosen & {"HYUNDAI", "KIA"} and region == "NORTH_AMERICA":
        raise ApiError("UNSUPPORTED_OEM", "Hyundai and Kia can be connected in Europe only.")
    return {
        **body,
        "urlExpiration": expiration,
        "region": region or "EUROPE",
        "vin": vin or None,
        "modelYear": None if model_year is None else whole_number(model_year),
    }


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
