"""Bulk VIN connection (`/v1/vehicles/connect...`) and eligibility checks."""

import re
from datetime import date, timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from sandbox import control, rules, webhooks
from sandbox.api.pages import numbered_page
from sandbox.api.responses import ApiError, api_view, iso, json_body
from sandbox.models import ConnectGroup, EligibilityCheck, Vehicle, VehicleInput

MAX_VEHICLES = 100
MAX_ELIGIBILITY_VINS = 500
_OPTIONAL = {
    "registrationPlate": str,
    "model": str,
    "modelYear": int,
    "batteryCapacity": (int, float),
    "horsepower": int,
    "generation": str,
    "wltpRange": (int, float),
    "registrationDate": str,
}


# The contract's VIN pattern with its length; ASCII only (str.isalnum admits any script).
_ELIGIBILITY_VIN = re.compile(r"[A-Z0-9]{17}")


def whole_number(value: Any) -> int | None:
    """The value as an int if JSON Schema's `integer` admits it (3600 and 3600.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _invalid(problems: list[dict[str, Any]]) -> ApiError:
    return ApiError(
        "REQUEST_VALIDATION_ERROR", "The request body is not valid.", {"errors": problems}
    )


def _check_item(index: int, item: Any, problems: list[dict[str, Any]]) -> None:
    def problem(field: str, message: str) -> None:
        problems.append({"loc": ["body", "vehicles", index, field], "msg": message})

    if not isinstance(item, dict):
        problem("", "must be an object")
        return
    if not isinstance(item.get("vin"), str):
        problem("vin", "required, a string")
    if item.get("make") not in rules.MAKES:
        problem("make", "required, one of the supported makes")
    if "countryCode" not in item or not isinstance(item["countryCode"], str | None):
        problem("countryCode", "required, a string or null")
    for field, kind in _OPTIONAL.items():
        value = item.get(field)
        if value is None:
            continue
        if kind is int:
            if whole_number(value) is None:
                problem(field, "has the wrong type")
            else:
                item[field] = whole_number(value)
        elif isinstance(value, bool) or not isinstance(value, kind):
            problem(field, "has the wrong type")
    if isinstance(item.get("registrationDate"), str):
        try:
            date.fromisoformat(item["registrationDate"])
        except ValueError:
            problem("registrationDate", "must be a date (YYYY-MM-DD)")
    tags = item.get("tags")
    if tags is not None and not (
        isinstance(tags, list)
        and all(
            isinstance(t, dict)
            and isinstance(t.get("key"), str)
            and isinstance(t.get("value"), str)
            and len(t["key"]) <= 150
            and len(t["value"]) <= 150
            for t in tags
        )
    ):
        problem("tags", "must be a list of {key, value} strings of at most 150 characters")


def _parse_connect(request: HttpRequest) -> list[dict[str, Any]]:
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("vehicles"), list):
        raise _invalid([{"loc": ["body", "vehicles"], "msg": "required, a list"}])
    items = body["vehicles"]
    if len(items) > MAX_VEHICLES:
        raise _invalid(
            [{"loc": ["body", "vehicles"], "msg": f"at most {MAX_VEHICLES} vehicles per request"}]
        )
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        _check_item(index, item, problems)
    if problems:
        raise _invalid(problems)
    return items


def active_device_count() -> int:
    return sum(1 for v in Vehicle.objects.filter(disconnected_at__isnull=True) if v.is_active())


def _submit_one(group: ConnectGroup, item: dict[str, Any], active: int) -> int:
    """Record one VIN's input; returns the organisation's new device count."""
    state = control.current()
    vin = item["vin"].strip().upper()
    extras = {k: item.get(k) for k in (*_OPTIONAL, "tags")}
    extras["tags"] = extras["tags"] or []
    ready_at = group.at(ConnectGroup.COMPLETED_AFTER)
    existing = Vehicle.objects.filter(vin=vin, disconnected_at__isnull=True).last()
    vehicle = None
    if existing is not None:
        outcome = rules.already_added(existing.status_at(max(timezone.now(), ready_at)))
        vehicle = existing
        was_connected = outcome.status == Vehicle.CONNECTED
    else:
        outcome = rules.decide(vin, item["make"], item.get("countryCode"), item.get("modelYear"))
        was_connected = False
        adds_device = outcome.status in ("CONNECTED", "PENDING", "CONNECTION_REQUIRED")
        if adds_device and active >= state.vehicle_limit:
            outcome = rules.DEVICE_LIMIT
        elif outcome.status != "ERROR":
            vehicle = _create_vehicle(vin, item, extras, outcome, ready_at)
            active += 1 if adds_device else 0
    VehicleInput.objects.create(
        group=group,
        vin=vin,
        make=item["make"],
        country_code=item.get("countryCode"),
        payload=extras,
        outcome=outcome.status,
        errors=outcome.errors(),
        message=outcome.message,
        can_retry=outcome.can_retry,
        was_already_connected=was_connected,
        vehicle=vehicle,
    )
    return active


def _record_failed(group: ConnectGroup, item: dict[str, Any]) -> None:
    """A VIN of a group that failed as a whole: nothing is added, it may be sent again."""
    extras = {k: item.get(k) for k in (*_OPTIONAL, "tags")}
    extras["tags"] = extras["tags"] or []
    outcome = rules.GROUP_FAILED
    VehicleInput.objects.create(
        group=group,
        vin=item["vin"].strip().upper(),
        make=item["make"],
        country_code=item.get("countryCode"),
        payload=extras,
        outcome=outcome.status,
        errors=outcome.errors(),
        message=outcome.message,
        can_retry=outcome.can_retry,
    )


def _create_vehicle(
    vin: str, item: dict[str, Any], extras: dict[str, Any], outcome: rules.Outcome, ready_at
) -> Vehicle:
    connect_at = None
    if outcome.status == "CONNECTED":
        connect_at = ready_at
    elif outcome.status == "PENDING" and not outcome.stays_pending:
        connect_at = ready_at + timedelta(seconds=control.current().pending_delay())
    registration_date = extras.get("registrationDate")
    vehicle = Vehicle.objects.create(
        vin=vin,
        make=item["make"],
        model=extras.get("model") or "",
        model_year=extras.get("modelYear"),
        registration_plate=extras.get("registrationPlate") or "",
        registration_date=date.fromisoformat(registration_date) if registration_date else None,
        country_code=item.get("countryCode") or "",
        tags=extras["tags"],
        outcome=outcome.status,
        error_code=outcome.code,
        error_message=outcome.message if outcome.code else "",
        action_category=outcome.action_category or "",
        visible_at=ready_at,
        connect_at=connect_at,
    )
    if connect_at is not None:
        webhooks.enqueue(webhooks.CONNECTED, vehicle.id, connect_at)
    return vehicle


def _connect(request: HttpRequest) -> JsonResponse:
    items = _parse_connect(request)
    with transaction.atomic():
        active = active_device_count()
        if items and active >= control.current().vehicle_limit:
            raise ApiError(
                "DEVICE_LIMIT_REACHED",
                "The organisation has reached its vehicle limit.",
                {"limit": control.current().vehicle_limit},
            )
        failed = any(rules.fails_group(item["vin"]) for item in items)
        group = ConnectGroup.objects.create(speed=control.current().speed, failed=failed)
        for item in items:
            if failed:
                _record_failed(group, item)
            else:
                active = _submit_one(group, item, active)
    body = {"id": group.id, "status": "CREATED", "createdAt": iso(group.created_at)}
    return JsonResponse(body, status=202)


def _group(group_id: str) -> ConnectGroup:
    group = ConnectGroup.objects.filter(id=group_id).first()
    if group is None:
        raise ApiError("RESOURCE_NOT_FOUND", "No connect group with this id.", {"id": group_id})
    return group


def _group_status(request: HttpRequest, group_id: str) -> JsonResponse:
    group = _group(group_id)
    body = {"id": group.id, "status": group.status_at(), "createdAt": iso(group.created_at)}
    return JsonResponse(body)


def result_json(entry: VehicleInput, group: ConnectGroup) -> dict[str, Any]:
    now = timezone.now()
    status, message, errors, can_retry = entry.outcome, entry.message, entry.errors, entry.can_retry
    was_connected = entry.was_already_connected
    if now < group.at(ConnectGroup.VIN_PENDING_AFTER):
        status, message, errors, can_retry = "PROCESSING", "Queued.", [], None
    elif now < group.at(ConnectGroup.COMPLETED_AFTER):
        status, message, errors, can_retry = "PENDING", "Being connected.", [], None
    elif (
        entry.vehicle is not None
        and status in ("PENDING", "CONNECTION_REQUIRED")
        and entry.vehicle.status_at(now) == Vehicle.CONNECTED
    ):
        # The vehicle connected after the attempt ended (driven, or consent given).
        status, message, can_retry = "CONNECTED", "Connected.", None
        if any(e["code"].startswith("VEHICLE_ALREADY_ADDED_") for e in errors):
            # A re-upload that has now completed on the existing vehicle reads as
            # one of a connected vehicle (`wasAlreadyConnected`, in the contract).
            again = rules.already_added(Vehicle.CONNECTED)
            message, errors, was_connected = again.message, again.errors(), True
    payload = entry.payload
    return {
        "vehicleInputId": entry.id,
        "vehicleId": entry.vehicle.id if status == "CONNECTED" and entry.vehicle else None,
        "status": status,
        "message": message,
        "errors": errors,
        "canRetry": can_retry,
        "vin": entry.vin,
        "make": entry.make,
        "model": payload.get("model"),
        "countryCode": entry.country_code,
        "registrationPlate": payload.get("registrationPlate"),
        "modelYear": payload.get("modelYear"),
        "registrationDate": payload.get("registrationDate"),
        "owners": [],
        "tags": payload.get("tags") or [],
        "wasAlreadyConnected": was_connected,
    }


def _results(request: HttpRequest, group_id: str) -> JsonResponse:
    group = _group(group_id)
    entries = list(group.inputs.select_related("vehicle"))
    page = numbered_page(request, entries)
    return JsonResponse(
        {"results": [result_json(e, group) for e in page], "totalResults": len(entries)}
    )


def _eligibility_status(vin: str, make: str | None, country_code: str | None) -> tuple[str, str]:
    problem = rules.vin_problem(vin)
    if problem:
        return "VALIDATION_ERROR", problem
    if make and country_code and rules.region_problem(make, country_code):
        return "INELIGIBLE", rules.region_problem(make, country_code) or ""
    prefix = rules.magic_prefix(vin)
    if prefix in rules.ELIGIBILITY_PREFIXES:
        return rules.ELIGIBILITY_PREFIXES[prefix]
    outcome = rules.MAGIC_PREFIXES.get(prefix or "")
    if (
        outcome is None
        or outcome.fails_group
        or outcome.status in ("CONNECTED", "PENDING", "CONNECTION_REQUIRED")
    ):
        return ("PENDING", "") if prefix == "PR0C11" else ("ELIGIBLE", "")
    if outcome.code in ("VIN_CHECK_NOT_SUPPORTED", "VIN_UPLOAD_NOT_SUPPORTED"):
        return "NOT_SUPPORTED", outcome.message
    return "INELIGIBLE", outcome.message


def _eligibility(request: HttpRequest) -> JsonResponse:
    body = json_body(request)
    vins = body.get("vins") if isinstance(body, dict) else None
    if not isinstance(vins, list) or not 1 <= len(vins) <= MAX_ELIGIBILITY_VINS:
        raise _invalid([{"loc": ["body", "vins"], "msg": "1 to 500 entries"}])
    problems = []
    for index, entry in enumerate(vins):
        # `vin` and `make` are optional in SingleEligibilityEntry, but not nullable.
        vin = entry.get("vin", ...) if isinstance(entry, dict) else None
        if vin is not ... and not (isinstance(vin, str) and _ELIGIBILITY_VIN.fullmatch(vin)):
            problems.append({"loc": ["body", "vins", index, "vin"], "msg": "17 of A-Z, 0-9"})
        if isinstance(entry, dict) and "make" in entry and entry["make"] not in rules.MAKES:
            problems.append({"loc": ["body", "vins", index, "make"], "msg": "unknown make"})
        country = entry.get("countryCode", ...) if isinstance(entry, dict) else ...
        if country is ... or not (
            country is None or (isinstance(country, str) and len(country) == 2)
        ):
            problems.append({"loc": ["body", "vins", index, "countryCode"], "msg": "required"})
    if problems:
        raise _invalid(problems)
    results = []
    for row, entry in enumerate(vins):
        if "vin" not in entry:
            # Nothing to check, and a result row must name a VIN: the row is skipped.
            continue
        status, message = _eligibility_status(
            entry["vin"], entry.get("make"), entry.get("countryCode")
        )
        results.append(
            {
                "rowId": row,
                "vin": entry["vin"],
                "make": entry.get("make"),
                "status": status,
                "errorMessage": message or None,
            }
        )
    check = EligibilityCheck.objects.create(speed=control.current().speed, results=results)
    body = {"id": check.id, "status": "CREATED", "createdAt": iso(check.created_at)}
    return JsonResponse(body, status=202)


def _eligibility_results(request: HttpRequest, check_id: str) -> JsonResponse:
    check = EligibilityCheck.objects.filter(id=check_id).first()
    if check is None:
        raise ApiError("RESOURCE_NOT_FOUND", "No eligibility check with this id.")
    results = check.results
    if not check.is_complete():
        results = [{**r, "status": "SUBMITTED", "errorMessage": None} for r in results]
    page = numbered_page(request, results)
    return JsonResponse({"results": page, "totalResults": len(results)})


connect = api_view({"POST": _connect})
group_status = api_view({"GET": _group_status})
group_results = api_view({"GET": _results})
eligibility = api_view({"POST": _eligibility})
eligibility_results = api_view({"GET": _eligibility_results})
