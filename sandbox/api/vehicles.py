"""`/v1/vehicles` (list), `/v1/vehicles/{id}` (get, delete)."""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from sandbox import control, webhooks
from sandbox.api.pages import cursor_page
from sandbox.api.responses import ApiError, api_view, iso
from sandbox.models import Vehicle

# A disconnection is processed asynchronously (seconds, times speed).
DISCONNECT_AFTER = 1.0


def vehicle_json(vehicle: Vehicle) -> dict[str, Any]:
    status = vehicle.status_at()
    failed = status in (Vehicle.INCOMPATIBLE, Vehicle.CONNECTION_REQUIRED)
    return {
        "id": vehicle.id,
        "vin": vehicle.vin,
        "make": vehicle.make,
        "model": vehicle.model or None,
        "trim": None,
        "modelYear": str(vehicle.model_year) if vehicle.model_year else None,
        "registrationPlate": vehicle.registration_plate or None,
        "isRegNoValidated": None,
        "regNoValidatedAt": None,
        "metadata": {
            "lastSeenAt": iso(vehicle.connect_at) if status == Vehicle.CONNECTED else None,
            "consentId": vehicle.account_id,
            "accountId": vehicle.account_id,
            "registrationDate": (
                vehicle.registration_date.isoformat() if vehicle.registration_date else None
            ),
        },
        "isListening": status == Vehicle.CONNECTED,
        "listeningLastUpdated": None,
        "connectionStatus": status,
        "connectionErrorCode": vehicle.error_code or None if failed else None,
        "connectionErrorMessage": vehicle.error_message or None if failed else None,
        "actionCategory": vehicle.action_category or None if failed else None,
    }


def connected_now() -> Q:
    now = timezone.now()
    return (
        Q(visible_at__lte=now)
        & (Q(disconnected_at__isnull=True) | Q(disconnected_at__gt=now))
        & (Q(outcome=Vehicle.CONNECTED) | Q(connect_at__lte=now))
    )


def _list(request: HttpRequest) -> JsonResponse:
    queryset = Vehicle.objects.filter(connected_now())
    tag_key, tag_value = request.GET.get("tagKey"), request.GET.get("tagValue")
    if tag_key or tag_value:
        ids = [
            v.pk_seq
            for v in queryset
            if any(
                (not tag_key or t.get("key") == tag_key)
                and (not tag_value or t.get("value") == tag_value)
                for t in v.tags
            )
        ]
        queryset = queryset.filter(pk_seq__in=ids)
    filters = {"tagKey": tag_key, "tagValue": tag_value, "filter": request.GET.get("filter")}
    rows, next_token, total = cursor_page(request, queryset, filters)
    return JsonResponse(
        {
            "results": [vehicle_json(v) for v in rows],
            "nextPageToken": next_token,
            "totalResults": total,
        }
    )


def visible_vehicle(vehicle_id: str) -> Vehicle:
    vehicle = Vehicle.objects.filter(id=vehicle_id, visible_at__lte=timezone.now()).first()
    if vehicle is None:
        raise ApiError("RESOURCE_NOT_FOUND", "No vehicle with this id.", {"id": vehicle_id})
    return vehicle


def _get(request: HttpRequest, vehicle_id: str) -> JsonResponse:
    return JsonResponse(vehicle_json(visible_vehicle(vehicle_id)))


def disconnect(vehicle: Vehicle, delay_seconds: float) -> None:
    """Schedule the vehicle's disconnection and its `device.disconnected` webhook."""
    at = timezone.now() + timedelta(seconds=delay_seconds)
    Vehicle.objects.filter(pk=vehicle.pk).update(disconnected_at=at)
    webhooks.cancel_connected(vehicle.id)
    webhooks.enqueue(webhooks.DISCONNECTED, vehicle.id, at)


def _delete(request: HttpRequest, vehicle_id: str) -> HttpResponse:
    with transaction.atomic():
        vehicle = visible_vehicle(vehicle_id)
        if vehicle.disconnected_at is not None:
            raise ApiError("RESOURCE_NOT_FOUND", "This vehicle is already disconnected.")
        disconnect(vehicle, DISCONNECT_AFTER * control.current().speed)
    # The contract documents the 202 with no body, so none and no content type.
    response = HttpResponse(status=202)
    del response["Content-Type"]
    return response


vehicles = api_view({"GET": _list})
vehicle = api_view({"GET": _get, "DELETE": _delete})
