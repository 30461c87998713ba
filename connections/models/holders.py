"""Which fleet a vehicle belongs to. VINs are not secret: without this rule a
manager could upload another fleet's VIN, and Volteras, which answers for the
whole organisation, would hand that fleet's vehicle to theirs.
"""

from __future__ import annotations

from django.db.models import Q

from connections.models.consent import ConnectedAccount
from connections.models.entries import VinEntry
from connections.models.fleets import Fleet
from connections.models.statuses import VinStatus
from connections.models.vehicles import Vehicle

# An entry with the VIN in one of these states holds the vehicle for its fleet.
HOLDING = (
    VinStatus.SUBMITTING,
    VinStatus.PROCESSING,
    VinStatus.PENDING,
    VinStatus.CONNECTION_REQUIRED,
    VinStatus.CONNECTED,
)


def fleet_holding_vehicle(fleet_id: int, *, vin: str = "", vehicle_id: str = "") -> Fleet | None:
    """Another fleet than `fleet_id` that holds the vehicle, or None: one whose
    current (not superseded) entry has the vehicle's id, or its VIN connected or
    in progress, or whose connected consent account the vehicle was shared from."""
    vin = (vin or "").upper()
    if not vin and not vehicle_id:
        return None
    by_entry = Q(vin=vin, status__in=HOLDING) if vin else Q(pk__in=[])
    by_vehicle = Q(vin=vin) if vin else Q(pk__in=[])
    if vehicle_id:
        by_entry |= Q(vehicle_id=vehicle_id)
        by_vehicle |= Q(volteras_id=vehicle_id)
    entry = (
        VinEntry.objects.filter(by_entry, superseded=False)
        .exclude(fleet_id=fleet_id)
        .select_related("fleet")
        .order_by("pk")
        .first()
    )
    if entry is not None:
        return entry.fleet
    accounts = Vehicle.objects.filter(by_vehicle).exclude(account_id="").values("account_id")
    account = (
        ConnectedAccount.objects.filter(
            volteras_id__in=accounts, status=ConnectedAccount.Status.CONNECTED
        )
        .exclude(fleet_id=fleet_id)
        .select_related("fleet")
        .order_by("pk")
        .first()
    )
    return account.fleet if account is not None else None
