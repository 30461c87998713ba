"""VIN checks and the validation of uploaded rows, before anything is sent.

`validate_rows()` turns the raw rows of a file (see `connections.imports`)
into `ValidatedRow`s ready to become `VinEntry` rows: normalised VIN, the
contract's make, country, region, optional fields, a validity and plain-English
messages that say what is wrong and what to do. It streams: the only state it
keeps is the set of VINs already seen in the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from connections.makes import (
    EUROPE_ONLY_MAKES,
    MAKES_NEEDING_REGION,
    comparison_key,
    make_label,
    makes_for_vin,
    normalise_make,
    supported_makes_text,
)
from connections.models import Region, VinEntry, VinStatus

if TYPE_CHECKING:
    from connections.imports import RawRow

VALID = VinEntry.Validity.VALID
WARNING = VinEntry.Validity.WARNING
INVALID = VinEntry.Validity.INVALID

# Volteras' sandbox answers these prefixes with scripted outcomes. They are
# built with zeros where a real VIN would have letters, so they rarely carry a
# valid check digit; they must still go through so demos and tests can use them.
SANDBOX_TEST_PREFIXES: tuple[str, ...] = ("PERR0R11", "1NC0MP11", "PR0C11", "ALERT511")

VIN_LENGTH = 17
EARLIEST_MODEL_YEAR = 1980
TAG_PART_MAX = 150

_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")
_NOT_VIN_ALPHABET = re.compile(r"[^A-Z0-9]")
_LOOKALIKES = {"I": "1", "O": "0", "Q": "0"}


def normalise_vin(raw: str | None) -> str:
    """The VIN as Volteras wants it: upper case, no spaces or dashes."""
    if not raw:
        return ""
    return _SEPARATORS.sub("", raw).upper()


def check_digit(vin: str) -> str:
    """The ISO 3779 check digit (position 9) a 17-character VIN should carry."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_north_american(vin: str) -> bool:
    """VINs of vehicles built for North America must carry a correct check digit."""
    return vin[:1] in {"1", "2", "3", "4", "5"}


def is_sandbox_test_vin(vin: str) -> bool:
    return vin.startswith(SANDBOX_TEST_PREFIXES)


@dataclass(frozen=True, slots=True)
class VinCheck:
    vin: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sandbox_test: bool = False

    @property
    def validity(self) -> str:
        if self.errors:
            return INVALID
        return WARNING if self.warnings else VALID

    @property
    def is_valid(self) -> bool:
        """Whether the VIN can be sent (possibly with a warning)."""
        return not self.errors


def check_vin(vin: str) -> VinCheck:
    """Check a normalised VIN's form: length, alphabet and check digit."""
    if not vin:
        return VinCheck(
            vin, errors=("There is no VIN on this line. Add the vehicle's 17-character VIN.",)
        )
    errors: list[str] = []
    strange = sorted(set(_NOT_VIN_ALPHABET.findall(vin)))
    if strange:
        shown = " ".join(repr(c) for c in strange)
        errors.append(
            f"The VIN contains {shown}, which cannot be part of a VIN: "
            "VINs use only letters and digits. Remove or correct it."
        )
    for letter, digit in _LOOKALIKES.items():
        if letter in vin:
            errors.append(
                f"The VIN contains the letter {letter}, which VINs never use. "
                f"It is probably the digit {digit}: check the VIN on the registration document."
            )
    if len(vin) != VIN_LENGTH:
        errors.append(
            f"The VIN has {len(vin)} characters but a VIN has exactly {VIN_LENGTH}. "
            "Check for a missing or extra character."
        )
    sandbox_test = is_sandbox_test_vin(vin)
    if errors or sandbox_test:
        return VinCheck(vin, errors=tuple(errors), sandbox_test=sandbox_test)
    expected = check_digit(vin)
    if vin[8] == expected:
        return VinCheck(vin)
    if is_north_american(vin):
        return VinCheck(
            vin,
            errors=(
                f"The VIN's check digit (9th character, {vin[8]}) does not match the rest of "
                "the VIN, so a character is probably mistyped. North American VINs always "
                "carry a correct check digit: compare the VIN with the registration document.",
            ),
        )
    return VinCheck(
        vin,
        warnings=(
            f"The VIN's 9th character ({vin[8]}) is not a valid check digit. Many European "
            "manufacturers do not use one, so this may be fine, but check the VIN for a typo.",
        ),
    )


# ISO 3166-1 alpha-2, as published in the tz database's iso3166.tab.
_ALPHA2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRY_CODES: frozenset[str] = frozenset(_ALPHA2.split())

# Where Volteras' European platform applies (Hyundai and Kia connect only here).
_EUROPE = """
    AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE
    LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS SE SI SJ SK SM TR UA VA
"""
EUROPEAN_COUNTRIES: frozenset[str] = frozenset(_EUROPE.split())
NORTH_AMERICAN_COUNTRIES: frozenset[str] = frozenset({"US", "CA", "MX", "PR"})

# What people write instead of the alpha-2 code, compared lower-case without
# punctuation. Alpha-3 and names for the markets Volteras serves, not the world.
_COUNTRY_SPELLINGS: dict[str, str] = {
    "uk": "GB",
    "el": "GR",
    "gbr": "GB",
    "unitedkingdom": "GB",
    "greatbritain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "deu": "DE",
    "ger": "DE",
    "germany": "DE",
    "deutschland": "DE",
    "fra": "FR",
    "france": "FR",
    "nld": "NL",
    "netherlands": "NL",
    "thenetherlands": "NL",
    "holland": "NL",
    "nederland": "NL",
    "bel": "BE",
    "belgium": "BE",
    "belgie": "BE",
    "belgique": "BE",
    "lux": "LU",
    "luxembourg": "LU",
    "esp": "ES",
    "spain": "ES",
    "espana": "ES",
    "prt": "PT",
    "portugal": "PT",
    "ita": "IT",
    "italy": "IT",
    "italia": "IT",
    "irl": "IE",
    "ireland": "IE",
    "aut": "AT",
    "austria": "AT",
    "osterreich": "AT",
    "che": "CH",
    "switzerland": "CH",
    "schweiz": "CH",
    "suisse": "CH",
    "swe": "SE",
    "sweden": "SE",
    "nor": "NO",
    "norway": "NO",
    "dnk": "DK",
    "denmark": "DK",
    "fin": "FI",
    "finland": "FI",
    "isl": "IS",
    "iceland": "IS",
    "pol": "PL",
    "poland": "PL",
    "cze": "CZ",
    "czechia": "CZ",
    "czechrepublic": "CZ",
    "svk": "SK",
    "slovakia": "SK",
    "hun": "HU",
    "hungary": "HU",
    "rou": "RO",
    "romania": "RO",
    "bgr": "BG",
    "bulgaria": "BG",
    "grc": "GR",
    "greece": "GR",
    "hrv": "HR",
    "croatia": "HR",
    "svn": "SI",
    "slovenia": "SI",
    "est": "EE",
    "estonia": "EE",
    "lva": "LV",
    "latvia": "LV",
    "ltu": "LT",
    "lithuania": "LT",
    "cyp": "CY",
    "cyprus": "CY",
    "mlt": "MT",
    "malta": "MT",
    "tur": "TR",
    "turkey": "TR",
    "turkiye": "TR",
    "usa": "US",
    "unitedstates": "US",
    "unitedstatesofamerica": "US",
    "america": "US",
    "can": "CA",
    "canada": "CA",
    "mex": "MX",
    "mexico": "MX",
}


@functools.lru_cache(maxsize=512)
def normalise_country(text: str) -> str | None:
    """The ISO 3166-1 alpha-2 code for what a person wrote, or None when unknown."""
    upper = text.strip().upper()
    if upper in COUNTRY_CODES:
        return upper
    return _COUNTRY_SPELLINGS.get(comparison_key(text))


def region_of_country(code: str) -> str | None:
    if code in EUROPEAN_COUNTRIES:
        return Region.EUROPE
    if code in NORTH_AMERICAN_COUNTRIES:
        return Region.NORTH_AMERICA
    return None


@dataclass(slots=True)
class ValidatedRow:
    line_number: int
    raw_vin: str
    vin: str
    make: str
    make_inferred: bool
    country_code: str
    region: str
    registration_plate: str
    model: str
    model_year: int | None
    tags: list[dict[str, str]]
    validity: str
    problems: list[str]
    skip_reason: str = ""
    notes: list[str] = field(default_factory=list)
    sandbox_test: bool = False

    @property
    def status(self) -> str:
        """The entry's status before submission: skipped, invalid or ready."""
        if self.skip_reason:
            return VinStatus.SKIPPED
        if self.validity == INVALID:
            return VinStatus.INVALID
        return VinStatus.READY

    @property
    def is_sendable(self) -> bool:
        return self.status == VinStatus.READY

    def entry_fields(self) -> dict[str, Any]:
        """Keyword arguments for `VinEntry(upload=..., fleet=..., **fields)`,
        cut to the columns' lengths (an invalid row may hold anything)."""
        return {
            "line_number": self.line_number,
            "raw_vin": self.raw_vin[:64],
            "vin": self.vin[:64],
            "make": self.make[:40],
            "make_inferred": self.make_inferred,
            "country_code": self.country_code[:2],
            "region": self.region,
            "registration_plate": self.registration_plate[:32],
            "model": self.model[:80],
            "model_year": self.model_year,
            "tags": self.tags,
            "validity": self.validity,
            "problems": self.problems,
            "status": self.status,
        }


PLATE_MAX = 32
MODEL_MAX = 80
_WHITESPACE = re.compile(r"\s+")
_YEAR = re.compile(r"^(\d{4})(?:\.0+)?$")


def parse_tags(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """Tags written as `key=value;key=value`; returns (tags, error messages)."""
    tags: list[dict[str, str]] = []
    errors: list[str] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, equals, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key:
            errors.append(
                f"The tag {part!r} is not written as key=value. Write tags like "
                "depot=Leeds;cost-centre=42, separated by semicolons."
            )
        elif len(key) > TAG_PART_MAX or len(value) > TAG_PART_MAX:
            errors.append(
                f"The tag {key[:30]!r} is too long: keys and values can have at most "
                f"{TAG_PART_MAX} characters. Shorten it."
            )
        else:
            tags.append({"key": key, "value": value})
    return tags, errors


def _model_year(text: str, latest: int) -> tuple[int | None, str]:
    if not text:
        return None, ""
    match = _YEAR.match(text)
    year = int(match.group(1)) if match else None
    if year is None or not EARLIEST_MODEL_YEAR <= year <= latest:
        return None, (
            f"The model year {text!r} is not a four-digit year between "
            f"{EARLIEST_MODEL_YEAR} and {latest}. Write it like 2021, or leave it empty."
        )
    return year, ""


def _status_label(status: str) -> str:
    return VinStatus(status).label if status in VinStatus.values else status


def validate_rows(
    rows: Iterable[RawRow],
    *,
    default_country: str,
    default_region: str,
    existing_vins: Mapping[str, str],
) -> Iterator[ValidatedRow]:
    """Validate raw rows one by one.

    `existing_vins` maps the VINs already connected or in progress in the fleet
    to their status; such rows are skipped (pass an empty mapping to send them
    again). A VIN repeated in the file is sent once: the first sendable row is
    kept and later ones are skipped as duplicates.
    """
    first_line_of: dict[str, int] = {}
    default_country = default_country.upper()
    latest_year = date.today().year + 2
    for raw in rows:
        fields = raw.fields
        if not raw.problems and not any(value.strip() for value in fields.values()):
            continue
        row = _validate_row(raw, default_country, default_region, latest_year)
        if row.validity == INVALID:
            yield row
            continue
        first_line = first_line_of.get(row.vin)
        if first_line is not None:
            row.skip_reason = (
                f"This VIN is a duplicate of line {first_line}; only the first is sent."
            )
        else:
            first_line_of[row.vin] = row.line_number
            status = existing_vins.get(row.vin)
            if status is not None:
                row.skip_reason = (
                    f"This VIN is already in this fleet ({_status_label(status)}), so it is "
                    "skipped. To send it again, choose to send VINs already connected or in "
                    "progress in this fleet."
                )
        if row.skip_reason:
            row.problems.append(row.skip_reason)
        yield row


def _validate_row(
    raw: RawRow, default_country: str, default_region: str, latest_year: int
) -> ValidatedRow:
    fields = raw.fields
    errors = list(raw.problems)
    warnings: list[str] = []
    notes: list[str] = []

    raw_vin = fields.get("vin", "").strip()
    vin = normalise_vin(raw_vin)
    check = check_vin(vin)
    errors.extend(check.errors)
    warnings.extend(check.warnings)
    if check.sandbox_test:
        notes.append("Sandbox test VIN: the Volteras sandbox answers it with a scripted result.")

    make_text = fields.get("make", "").strip()
    make = normalise_make(make_text) if make_text else None
    make_inferred = False
    vin_makes = makes_for_vin(vin) if check.is_valid else ()
    if make_text and make is None:
        errors.append(
            f"{make_text!r} is not a make Volteras can connect. "
            f"Use one of: {supported_makes_text()}."
        )
    elif make and vin_makes and make not in vin_makes:
        warnings.append(
            f"The make is {make_label(make)} but the VIN's first three characters "
            f"({vin[:3]}) belong to {' or '.join(make_label(m) for m in vin_makes)}. "
            f"Check the make and the VIN; it will be sent as {make_label(make)}."
        )
    elif not make_text:
        if len(vin_makes) == 1:
            make, make_inferred = vin_makes[0], True
        elif vin_makes:
            errors.append(
                "There is no make on this line and the VIN could belong to "
                f"{' or '.join(make_label(m) for m in vin_makes)}. Add the make."
            )
        else:
            errors.append(
                "There is no make on this line and it cannot be told from the VIN. "
                "Add the make, for example Volkswagen or Mercedes-Benz."
            )

    country_text = fields.get("country_code", "").strip()
    country = normalise_country(country_text) if country_text else default_country
    if country is None:
        errors.append(
            f"{country_text!r} is not a country code. Use the two-letter ISO code, for "
            f"example GB, DE or FR, or leave it empty to use the fleet's default "
            f"({default_country})."
        )
        country = ""

    region = default_region
    country_region = region_of_country(country) if country else None
    if make in EUROPE_ONLY_MAKES:
        region = Region.EUROPE
        if country and country_region != Region.EUROPE:
            errors.append(
                f"Volteras connects {make_label(make)} vehicles in Europe only, and this "
                f"vehicle's country is {country}. Correct the country if the vehicle is in "
                "Europe; otherwise it cannot be connected."
            )
    elif make in MAKES_NEEDING_REGION and country and country_region is None:
        warnings.append(
            f"{make_label(make)} vehicles are connected in Europe or North America, and "
            f"this vehicle's country is {country}. Check the country; the connection is "
            "likely to fail if it is right."
        )
    elif make in MAKES_NEEDING_REGION and country_region and country_region != default_region:
        warnings.append(
            f"{make_label(make)} vehicles connect per region and this fleet uses "
            f"{Region(default_region).label}, but the country {country} is in "
            f"{Region(country_region).label}. Check the country, or ask support to change "
            "the fleet's region."
        )

    plate = _WHITESPACE.sub(" ", fields.get("registration_plate", "")).strip()
    if len(plate) > PLATE_MAX:
        errors.append(
            f"The registration plate has {len(plate)} characters; at most {PLATE_MAX} fit. "
            "Check that the right column is used."
        )
    model = _WHITESPACE.sub(" ", fields.get("model", "")).strip()
    if len(model) > MODEL_MAX:
        errors.append(
            f"The model has {len(model)} characters; at most {MODEL_MAX} fit. Shorten it."
        )
    model_year, year_error = _model_year(fields.get("model_year", "").strip(), latest_year)
    if year_error:
        errors.append(year_error)
    tags, tag_errors = parse_tags(fields.get("tags", ""))
    errors.extend(tag_errors)

    validity = INVALID if errors else WARNING if warnings else VALID
    return ValidatedRow(
        line_number=raw.line_number,
        raw_vin=raw_vin,
        vin=vin,
        make=make or make_text,
        make_inferred=make_inferred,
        country_code=country,
        region=region,
        registration_plate=plate,
        model=model,
        model_year=model_year,
        tags=tags,
        validity=validity,
        problems=errors + warnings,
        notes=notes,
        sandbox_test=check.sandbox_test,
    )
