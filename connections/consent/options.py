"""What a consent link asks the owner for: the options of one
`POST /v1/accounts:connect`, with the words the form shows for each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)


MIN_EXPIRY = 3600


MAX_EXPIRY = 14 * 24 * 3600


# Per-VIN links go out by mail merge and may sit in an inbox for days.
VIN_LINK_EXPIRY = MAX_EXPIRY


DEFAULT_SCOPES = ("vehicle:all",)


DEFAULT_DEVICE_TYPES = ("VEHICLE",)


# What each scope lets the portal read or do, in the words shown on the form (in
# English) and on the owner's page (in the owner's language).
SCOPES: dict[str, str] = {
    "vehicle:all": _(
        "Everything about the vehicle: details, live data, trips, charging and commands"
    ),
    "vehicle:information": _("Vehicle details: make, model, year, battery size"),
    "vehicle:telemetry": _("Live data: battery level, range, odometer, charging state"),
    "vehicle:location_history": _("Where the vehicle has been"),
    "vehicle:charging_history": _("Past charging sessions"),
    "vehicle:driving_behavior": _("Driving style: speed, acceleration, braking"),
    "vehicle:commands": _("Send commands: start or stop charging, lock, climate"),
    "battery:all": _("Everything about a home battery"),
    "battery:telemetry": _("Live data of a home battery"),
    "geofences:all": _("Read and change geofences"),
    "geofences:read": _("Read geofences"),
    "geofences:write": _("Change geofences"),
}


DEVICE_TYPES: dict[str, str] = {
    "VEHICLE": "Vehicle",
    "CHARGER": "Charger",
    "BATTERY": "Home battery",
    "INVERTER": "Solar inverter",
    "HEAT_PUMP": "Heat pump",
}


LOCALES: dict[str, str] = {
    "en-GB": "English",
    "de-DE": "German",
    "fr-FR": "French",
    "nl-NL": "Dutch",
}


# Volteras' consent flow speaks only the contract's `ConsentFlowLocales` (above); the
# portal's own pages and e-mails for the owner speak `settings.LANGUAGES`, Spanish and
# Italian included, chosen per link (`ConsentLink.language`).
OWNER_LOCALES: dict[str, str] = {
    **LOCALES,
    "es-ES": "Spanish (Volteras' own pages in English)",
    "it-IT": "Italian (Volteras' own pages in English)",
}


@dataclass(frozen=True)
class LinkOptions:
    """The owner-facing options of one `POST /v1/accounts:connect`."""

    scopes: tuple[str, ...] = DEFAULT_SCOPES
    device_types: tuple[str, ...] = DEFAULT_DEVICE_TYPES
    expires_in: int = MIN_EXPIRY
    makes: tuple[str, ...] = ()
    locale: str = ""
    region: str = ""
    country_code: str = ""
    vin: str = ""
    model: str = ""
    model_year: int | None = None
    integration_method: str = ""
    charger_latitude: float | None = None
    charger_longitude: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def payload(self, return_url: str) -> dict[str, Any]:
        """The request body as the contract spells it (what the link stores)."""
        fields: dict[str, Any] = {
            "scopes": list(self.scopes),
            "deviceTypes": list(self.device_types),
            "returnUrl": return_url,
            "urlExpiration": self.expires_in,
            "makes": list(self.makes) or None,
            "locale": self.locale or None,
            "region": self.region or None,
            "countryCode": self.country_code or None,
            "vin": self.vin or None,
            "model": self.model or None,
            "modelYear": self.model_year,
            "integrationMethod": self.integration_method or None,
            "chargerLocationLatitude": self.charger_latitude,
            "chargerLocationLongitude": self.charger_longitude,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LinkOptions:
        return cls(
            scopes=tuple(payload.get("scopes") or DEFAULT_SCOPES),
            device_types=tuple(payload.get("deviceTypes") or DEFAULT_DEVICE_TYPES),
            expires_in=int(payload.get("urlExpiration") or MIN_EXPIRY),
            makes=tuple(payload.get("makes") or ()),
            locale=payload.get("locale") or "",
            region=payload.get("region") or "",
            country_code=payload.get("countryCode") or "",
            vin=payload.get("vin") or "",
            model=payload.get("model") or "",
            model_year=payload.get("modelYear"),
            integration_method=payload.get("integrationMethod") or "",
            charger_latitude=_number(payload.get("chargerLocationLatitude")),
            charger_longitude=_number(payload.get("chargerLocationLongitude")),
        )


def _number(value: Any) -> float | None:
    """The contract allows a coordinate as a number or a numeric string."""
    return None if value is None or value == "" else float(value)
