"""What becomes of a submitted VIN: Volteras' sandbox rules plus our own.

Everything here is a pure function of the submitted fields and the VIN's
history in the organisation, so a test can produce any outcome on purpose.
The README's table lists every rule; keep the two in step.
"""

import hashlib
import re
from dataclasses import dataclass

MAKES = (
    "ABARTH", "ALFA ROMEO", "AUDI", "BMW", "CHRYSLER", "CITROEN", "CUPRA", "DODGE",
    "DS AUTOMOBILES", "FIAT", "FORD", "HYUNDAI", "JEEP", "KIA", "LANCIA", "LEXUS", "MASERATI",
    "MERCEDES BENZ", "MINI", "NISSAN", "OPEL", "PEUGEOT", "POLESTAR", "RAM", "RENAULT", "SEAT",
    "SKODA", "TESLA", "TOYOTA", "VAUXHALL", "VOLKSWAGEN", "VOLVO",
)  # fmt: skip

EUROPE = frozenset({
    "AD", "AL", "AT", "BA", "BE", "BG", "BY", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FO",
    "FR", "GB", "GI", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MD", "ME",
    "MK", "MT", "NL", "NO", "PL", "PT", "RO", "RS", "SE", "SI", "SK", "SM", "UA", "VA", "XK",
})  # fmt: skip
NORTH_AMERICA = frozenset({"US", "CA", "MX"})

CUSTOMER_ACTION = "CUSTOMER_ACTION"
CONTACT_SUPPORT = "CONTACT_SUPPORT"
UNDER_REVIEW = "UNDER_REVIEW"

_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_CHARS = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_MAGIC_CHARS = re.compile(r"^[A-Z0-9]{17}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str
    code: str = ""
    action_category: str | None = None
    can_retry: bool | None = None
    stays_pending: bool = False
    # The whole connect group ends FAILED: no VIN of it is added.
    fails_group: bool = False

    def errors(self) -> list[dict]:
        if not self.code:
            return []
        return [
            {"code": self.code, "message": self.message, "actionCategory": self.action_category}
        ]


def _error(code: str, message: str, category: str, can_retry: bool) -> Outcome:
    return Outcome("ERROR", message, code, category, can_retry)


# Prefix -> outcome. The first four are Volteras' own sandbox VINs; the rest are ours.
MAGIC_PREFIXES: dict[str, Outcome] = {
    "PERR0R11": _error(
        "OEM_VEHICLE_UPDATE_REQUIRED",
        "The vehicle needs a software update before it can connect.",
        CUSTOMER_ACTION,
        True,
    ),
    "1NC0MP11": Outcome(
        "INCOMPATIBLE",
        "This vehicle cannot be connected.",
        "OEM_VEHICLE_NOT_COMPATIBLE",
        CONTACT_SUPPORT,
        False,
    ),
    "PR0C11": Outcome("PENDING", "Waiting for the vehicle to connect.", stays_pending=True),
    "ALERT511": Outcome("CONNECTED", "Connected (the vehicle reports manufacturer alerts)."),
    "PEND1NG1": Outcome("PENDING", "Waiting for the vehicle to connect."),
    "C0NSENT1": Outcome(
        "CONNECTION_REQUIRED",
        "The owner must approve the connection in a consent flow.",
        can_retry=False,
    ),
    "0FFL1NE1": _error(
        "OEM_VEHICLE_OFFLINE",
        "The vehicle is offline; drive it, then retry.",
        CUSTOMER_ACTION,
        True,
    ),
    "REM0TE11": _error(
        "OEM_VEHICLE_REMOTE_ACCESS_DISABLED",
        "Remote access is switched off in the vehicle.",
        CUSTOMER_ACTION,
        True,
    ),
    "SHAR1NG1": _error(
        "OEM_VEHICLE_DATA_SHARING_DISABLED",
        "Data sharing is switched off for this vehicle.",
        CUSTOMER_ACTION,
        True,
    ),
    "FC0NSNT1": _error(
        "FLEET_CONSENT_MISSING",
        "The fleet has not approved data sharing in the manufacturer's fleet portal.",
        CUSTOMER_ACTION,
        True,
    ),
    "DR1VER11": _error(
        "OEM_AUTH_DRIVER_IS_NOT_PRIMARY_USER",
        "The account holder is not the vehicle's primary user.",
        CUSTOMER_ACTION,
        True,
    ),
    "N0TF0UND": _error(
        "OEM_DEVICE_NOT_FOUND",
        "The manufacturer does not know this vehicle.",
        CONTACT_SUPPORT,
        False,
    ),
    "N0PERM11": _error(
        "NOT_PERMITTED", "The organisation may not add this vehicle.", CONTACT_SUPPORT, False
    ),
    "N0CHECK1": _error(
        "VIN_CHECK_NOT_SUPPORTED",
        "VIN checks are not available for this manufacturer.",
        CONTACT_SUPPORT,
        False,
    ),
    "N0UPL0AD": _error(
        "VIN_UPLOAD_NOT_SUPPORTED",
        "This manufacturer does not support adding vehicles by VIN.",
        CONTACT_SUPPORT,
        False,
    ),
    "BLACK11S": _error(
        "VIN_BLACKLISTED", "This VIN is blocked and is being reviewed.", UNDER_REVIEW, False
    ),
    "SUBJ0000": _error(
        "SUBJECTS_NOT_ASSIGNABLE",
        "The vehicle's owners could not be assigned.",
        CONTACT_SUPPORT,
        True,
    ),
    "FA1LGRP1": Outcome(
        "ERROR",
        "The connect group failed at Volteras; submit its VINs again.",
        can_retry=True,
        fails_group=True,
    ),
}

# Prefixes only the eligibility check reacts to (a connection treats them as any valid VIN).
ELIGIBILITY_PREFIXES: dict[str, tuple[str, str]] = {
    "1NELPND1": (
        "INELIGIBLE_PENDING_FAILURE_REASON",
        "Ineligible; the manufacturer has not said why yet.",
    ),
    "EFA1LED1": ("FAILED", "The eligibility check failed for this VIN; check it again."),
}

CONNECTED = Outcome("CONNECTED", "Connected.")
GROUP_FAILED = MAGIC_PREFIXES["FA1LGRP1"]
DEVICE_LIMIT = _error(
    "DEVICE_LIMIT_REACHED",
    "The organisation has reached its vehicle limit.",
    CONTACT_SUPPORT,
    True,
)

# Re-submitting a VIN that is already on the platform: status kept, code added.
ALREADY_ADDED = {
    "CONNECTED": ("VEHICLE_ALREADY_ADDED_TO_ORGANIZATION", "Already connected."),
    "PENDING": ("VEHICLE_ALREADY_ADDED_PENDING_CONNECTION", "Already added, waiting to connect."),
    "PROCESSING": ("VEHICLE_ALREADY_ADDED_PENDING_CONNECTION", "Already added, being connected."),
    "CONNECTION_REQUIRED": (
        "VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED",
        "Already added; the owner must approve the connection.",
    ),
    "INCOMPATIBLE": ("VEHICLE_ALREADY_ADDED_INCOMPATIBLE", "Already added and incompatible."),
}


def check_digit(vin: str) -> str:
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def magic_prefix(vin: str) -> str | None:
    for prefix in (*MAGIC_PREFIXES, *ELIGIBILITY_PREFIXES):
        if vin.startswith(prefix):
            return prefix
    return None


def fails_group(vin: str) -> bool:
    """A VIN that makes its whole connect group fail (checked before any other rule)."""
    return magic_prefix(vin.strip().upper()) == "FA1LGRP1"


def vin_problem(vin: str) -> str | None:
    """Why a VIN is not acceptable, or None.

    A 17-character VIN of letters and digits that starts with a magic prefix
    is accepted as it is: those prefixes contain O-like zeros and I-like ones,
    and their check digit is not verified (as in Volteras' sandbox). Every
    other VIN must use the ISO 3779 alphabet (no I, O, Q) and carry a correct
    check digit in position 9.
    """
    if len(vin) != 17:
        return f"A VIN has 17 characters; this one has {len(vin)}."
    if magic_prefix(vin):
        return None if _MAGIC_CHARS.match(vin) else "A VIN has only letters and digits."
    if not _VIN_CHARS.match(vin):
        return "A VIN has only digits and the letters A-Z without I, O and Q."
    if vin[8] != check_digit(vin):
        return f"The check digit (9th character) should be {check_digit(vin)}."
    return None


def field_problem(country_code: object, model_year: object) -> str | None:
    """A malformed optional field answers VIN_UPLOAD_INVALID_FORMAT for that VIN."""
    if not isinstance(country_code, str) or not _COUNTRY.match(country_code):
        return "countryCode must be a two-letter ISO 3166 code such as GB."
    if model_year is not None and not 1980 <= model_year <= 2100:
        return "modelYear must be between 1980 and 2100."
    return None


def region_problem(make: str, country_code: str) -> str | None:
    if make in ("HYUNDAI", "KIA") and country_code not in EUROPE:
        return f"{make.title()} vehicles can be connected in Europe only."
    if make in ("BMW", "MINI") and country_code not in EUROPE | NORTH_AMERICA:
        return f"{make.title()} vehicles can be connected in Europe or North America only."
    return None


def decide(vin: str, make: str, country_code: object, model_year: object) -> Outcome:
    """The outcome of a first submission of this VIN (history is the caller's job)."""
    problem = vin_problem(vin)
    if problem:
        return _error("INVALID_VIN", problem, CUSTOMER_ACTION, False)
    problem = field_problem(country_code, model_year)
    if problem:
        return _error("VIN_UPLOAD_INVALID_FORMAT", problem, CUSTOMER_ACTION, False)
    problem = region_problem(make, str(country_code))
    if problem:
        return _error("OEM_INCORRECT_REGION", problem, CUSTOMER_ACTION, False)
    return MAGIC_PREFIXES.get(magic_prefix(vin) or "", CONNECTED)


def already_added(status: str) -> Outcome:
    code, message = ALREADY_ADDED[status]
    shown = "PENDING" if status == "PROCESSING" else status
    return Outcome(shown, message, code, None, False)


_WMI = {
    "BMW": "WBA", "MINI": "WMW", "VOLKSWAGEN": "WVW", "AUDI": "WAU", "MERCEDES BENZ": "WDD",
    "TESLA": "5YJ", "RENAULT": "VF1", "PEUGEOT": "VF3", "CITROEN": "VF7", "FORD": "WF0",
    "VOLVO": "YV1", "POLESTAR": "LPS", "SKODA": "TMB", "SEAT": "VSS", "CUPRA": "VSS",
    "KIA": "KNA", "HYUNDAI": "KMH", "NISSAN": "SJN", "TOYOTA": "JTD", "FIAT": "ZFA",
}  # fmt: skip
_BODY_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def fake_vin(make: str, seed: str) -> str:
    """A deterministic, valid VIN for a vehicle found in a consent-flow account."""
    digest = hashlib.sha256(f"{make}|{seed}".encode()).digest()
    body = "".join(_BODY_CHARS[b % len(_BODY_CHARS)] for b in digest[:14])
    vin = _WMI.get(make, "SBX") + body[:5] + "0" + body[5:13]
    return vin[:8] + check_digit(vin) + vin[9:]
