"""Applying a vehicle as Volteras describes it now (`GET /v1/vehicles/{id}`)
to the portal: its local record, and every VIN entry that follows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connections import volteras
from connections.models import ConnectedAccount, Vehicle, VinEntry, VinStatus
from connections.models.holders import fleet_holding_vehicle
from connections.models.moves import consent_link_q

logger = logging.getLogger(__name__)


# Entries the API's word about a vehicle may move. Not SUBMITTING: the batch
# that is sending it owns that step. Not ERROR/INCOMPATIBLE/never-sent ones:
# they are another attempt's outcome, replaced by uploading the VIN again.
APPLIES_TO = (
    VinStatus.PROCESSING,
    VinStatus.PENDING,
    VinStatus.CONNECTION_REQUIRED,
    VinStatus.CONNECTED,
    VinStatus.DISCONNECTED,
)


# Volteras' `connectionStatus` -> the status a VIN entry takes. Statuses that
# mean "still on its way" (PENDING, PENDING_CONNECTION, PROCESSING) are left
# to polling: a webhook should not pull an entry backwards into progress.
API_STATUS = {
    "CONNECTED": VinStatus.CONNECTED,
    "DISCONNECTED": VinStatus.DISCONNECTED,
    "CONNECTION_REQUIRED": VinStatus.CONNECTION_REQUIRED,
    "INCOMPATIBLE": VinStatus.INCOMPATIBLE,
    "ERROR": VinStatus.ERROR,
}


@dataclass
class Applied:
    """What applying the API's view of one vehicle did."""

    vehicle_id: str
    vin: str = ""
    api_status: str = ""
    status: str | None = None
    matched: int = 0
    changed: int = 0
    stale: bool = False
    unmatched: bool = False

    def summary(self) -> str:
        if self.stale:
            return "A fresher read of this vehicle was already applied; nothing to do."
        said = self.api_status or "nothing"
        if self.unmatched:
            return f"Volteras says {said}; no VIN entry in any fleet matches this vehicle."
        if self.status is None:
            return f"Volteras says {said}; left to polling ({self.matched} entries match)."
        return (
            f"Volteras says {said}: {self.changed} of {self.matched} matching entries "
            f"changed to {VinStatus(self.status).label}."
        )


def status_from_api(vehicle: volteras.Vehicle | None) -> str | None:
    """The VIN status the API's answer means; None when it should not move entries."""
    if vehicle is None:
        # A vehicle the API no longer knows has been disconnected.
        return VinStatus.DISCONNECTED
    return API_STATUS.get((vehicle.connection_status or "").upper())


def apply_vehicle(
    vehicle_id: str,
    source: str,
    *,
    client: volteras.VolterasClient | None = None,
    known: volteras.Vehicle | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    read_at: datetime | None = None,
    not_found_is_final: bool | Callable[[], bool] = True,
) -> Applied:
    """Read the vehicle (unless `known` was just read, as from the vehicle
    list) and apply what the API says to the vehicle record and to every VIN
    entry of it in any fleet. Raises `VolterasError` when the API cannot be read,
    and `volteras.NotFound` on a 404 unless `not_found_is_final` (then a 404
    means disconnected).

    Two workers may process events for one vehicle at once; the vehicle row
    is locked while applying and a read older than the last applied one is
    dropped, so a slow worker never writes back an older state.
    """
    # When `known` came from a list, `read_at` is when that list was started.
    read_at = read_at or timezone.now()
    api = known or _read(vehicle_id, client, not_found_is_final)
    applied = Applied(vehicle_id=vehicle_id, vin=api.vin.upper() if api else "")
    applied.api_status = (api.connection_status or "UNKNOWN") if api else "NOT FOUND (404)"
    applied.status = status_from_api(api)

    with transaction.atomic():
        record = Vehicle.objects.select_for_update().filter(volteras_id=vehicle_id).first()
        if record is not None and record.last_seen_at > read_at:
            applied.stale = True
            return applied
        record = _store_vehicle(record, vehicle_id, api, read_at)
        if not applied.vin and record is not None:
            applied.vin = record.vin
        entries = _not_held_elsewhere(
            list(_entries_for(vehicle_id, applied.vin, applied.status)), vehicle_id, applied.vin
        )
        applied.matched = len(entries)
        if applied.status is not None:
            said = f"Volteras says {applied.api_status}"
            detail = f"{reason}: {said}" if reason else said
            for entry in entries:
                applied.changed += entry.observe(
                    applied.status,
                    source,
                    error_codes=_error_codes(api, applied.status),
                    message=(api.connection_error_message or "") if api else "",
                    action_category=str(api.action_category or "") if api else "",
                    vehicle_id=vehicle_id,
                    detail=detail,
                    data={"vehicle_id": vehicle_id, **(data or {})},
                )
        account_id = (api.account_id if api else None) or (record.account_id if record else "")
        applied.unmatched = not entries and not _known_anywhere(
            vehicle_id, applied.vin, account_id or ""
        )
    return applied


def _read(
    vehicle_id: str,
    client: volteras.VolterasClient | None,
    not_found_is_final: bool | Callable[[], bool],
) -> volteras.Vehicle | None:
    """`GET /v1/vehicles/{id}`; None for a 404 that means the vehicle is gone."""
    try:
        return (client or volteras.get_client()).get_vehicle(vehicle_id)
    except volteras.NotFound:
        # Asked only on a 404 (deciding may take a query).
        final = not_found_is_final() if callable(not_found_is_final) else not_found_is_final
        if not final:
            raise
        return None


def _store_vehicle(
    record: Vehicle | None, vehicle_id: str, api: volteras.Vehicle | None, read_at
) -> Vehicle | None:
    if api is None:
        if record is not None:
            record.connection_status = "DISCONNECTED"
            record.disconnected = True
            record.last_seen_at = read_at
            record.save(update_fields=["connection_status", "disconnected", "last_seen_at"])
        return record
    values = {
        "vin": api.vin.upper(),
        "make": api.make,
        "connection_status": api.connection_status or "",
        "connection_error_code": api.connection_error_code or "",
        "account_id": api.account_id or "",
        "disconnected": (api.connection_status or "").upper() == "DISCONNECTED",
        "raw": api.raw,
        "last_seen_at": read_at,
    }
    if record is None:
        record, _ = Vehicle.objects.update_or_create(volteras_id=vehicle_id, defaults=values)
        return record
    for name, value in values.items():
        setattr(record, name, value)
    record.save(update_fields=list(values))
    return record


def _entries_for(vehicle_id: str, vin: str, status: str | None):
    """Entries the answer about this vehicle applies to. An entry that knows
    its vehicle id takes news about that vehicle only (a VIN connected again
    gets a new id); one that does not yet is matched by VIN, except that a
    disconnection never touches an entry that is still on its way."""
    match = Q(vehicle_id=vehicle_id)
    if vin:
        if status == VinStatus.DISCONNECTED:
            match |= Q(vehicle_id="", vin=vin, status=VinStatus.CONNECTED)
        else:
            match |= Q(vehicle_id="", vin=vin)
    # An ERROR whose way forward is the owner's consent (VIN_UPLOAD_NOT_SUPPORTED)
    # is waiting for exactly this news, like a CONNECTION_REQUIRED entry.
    waiting = Q(status__in=APPLIES_TO) | consent_link_q()
    return (
        VinEntry.objects.filter(match, waiting, superseded=False)
        .select_related("upload")
        .order_by("pk")
    )


def _not_held_elsewhere(entries: list[VinEntry], vehicle_id: str, vin: str) -> list[VinEntry]:
    """Drop the entries matched by VIN alone whose fleet does not hold the
    vehicle: VINs are not secret, so another fleet's upload of the VIN must not
    take this vehicle's state (nor its id). Two fleets both waiting on the VIN
    both hold back; polling (where Volteras says who was first) settles it."""
    held: dict[int, bool] = {}
    kept = []
    for entry in entries:
        if entry.vehicle_id != vehicle_id and entry.fleet_id not in held:
            holder = fleet_holding_vehicle(entry.fleet_id, vin=vin, vehicle_id=vehicle_id)
            held[entry.fleet_id] = holder is not None
        if entry.vehicle_id == vehicle_id or not held[entry.fleet_id]:
            kept.append(entry)
    return kept


def _known_anywhere(vehicle_id: str, vin: str, account_id: str) -> bool:
    """Whether any fleet knows the vehicle: by a VIN entry, or through the
    consent-flow account it was shared from."""
    match = Q(vehicle_id=vehicle_id)
    if vin:
        match |= Q(vin=vin)
    if VinEntry.objects.filter(match).exists():
        return True
    return bool(account_id) and ConnectedAccount.objects.filter(volteras_id=account_id).exists()


def _error_codes(api: volteras.Vehicle | None, status: str) -> list[str]:
    if api is None or status == VinStatus.CONNECTED or not api.connection_error_code:
        return []
    return [api.connection_error_code]
