"""The validation of uploaded rows, before anything is sent.

`validate_rows()` turns the raw rows of a file (see `uploads.reading`)
into `ValidatedRow`s ready to become `VinEntry` rows: normalised VIN, the
contract's make, country, region, optional fields, a validity and plain-English
messages that say what is wrong and what to do. It streams: the only state it
keeps is the set of VINs already seen in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from connections.countries import Region, normalise_country, region_of_country
from connections.makes import (
    EUROPE_ONLY_MAKES,
    MAKES_NEEDING_REGION,
    make_label,
    makes_for_vin,
    normalise_make,
    supported_makes_text,
)
from connections.models import VinStatus
from connections.uploads.rows import FieldMarks, RawRow
from connections.vin import EARLIEST_MODEL_YEAR, INVALID, VALID, WARNING, check_vin, normalise_vin

TAG_PART_MAX = 150
PLATE_MAX = 32
MODEL_MAX = 80
# How a skipped duplicate's problem begins (its link says which row it repeats).
DUPLICATE_OF_LINE = "This VIN is a duplicate of line"


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
    owner_email: str = ""
    # The problems again, by the field they are about ("" for the row as a
    # whole): an inline fix shows each next to its field.
    field_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The entry's status before submission: skipped, invalid or ready."""
        if self.skip_reason:
            return VinStatus.SKIPPED
        if self.validity == INVALID:
            return VinStatus.INVALID
        return VinStatus.READY

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
            "owner_email": self.owner_email[:254],
            "validity": self.validity,
            "problems": self.problems,
            "status": self.status,
        }


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
            _skip(row, f"{DUPLICATE_OF_LINE} {first_line}; only the first is sent.")
        else:
            first_line_of[row.vin] = row.line_number
            _skip_existing(row, existing_vins)
        yield row


def validate_one(
    raw: RawRow,
    *,
    default_country: str,
    default_region: str,
    existing_vins: Mapping[str, str],
    sent_line: int | None,
) -> ValidatedRow:
    """Validate one corrected row of a draft, as `validate_rows` would.

    `sent_line` is the line of another row of the same upload that is sent
    with this row's VIN (None when there is none): this row then repeats it and
    is skipped, whichever comes first in the file, so a fix never changes
    another row."""
    row = _validate_row(raw, default_country.upper(), default_region, date.today().year + 2)
    if row.validity == INVALID:
        return row
    if sent_line is not None:
        _skip(row, f"{DUPLICATE_OF_LINE} {sent_line}; only line {sent_line} is sent.")
    else:
        _skip_existing(row, existing_vins)
    return row


def _skip_existing(row: ValidatedRow, existing_vins: Mapping[str, str]) -> None:
    status = existing_vins.get(row.vin)
    if status is not None:
        _skip(
            row,
            f"This VIN is already in this fleet ({_status_label(status)}), so it is "
            "skipped. To send it again, choose to send VINs already connected or in "
            "progress in this fleet.",
        )


def _skip(row: ValidatedRow, reason: str) -> None:
    row.skip_reason = reason
    row.problems.append(reason)
    row.field_problems.setdefault("vin", []).append(reason)


def _validate_row(
    raw: RawRow, default_country: str, default_region: str, latest_year: int
) -> ValidatedRow:
    fields = raw.fields
    errors = list(raw.problems)
    warnings: list[str] = []
    notes: list[str] = []
    marks = FieldMarks(errors, warnings)
    marks.take("")

    raw_vin = fields.get("vin", "").strip()
    vin = normalise_vin(raw_vin)
    check = check_vin(vin)
    errors.extend(check.errors)
    warnings.extend(check.warnings)
    if check.sandbox_test:
        notes.append("Sandbox test VIN: the Volteras sandbox answers it with a scripted result.")
    marks.take("vin")

    make_text = fields.get("make", "").strip()
    make, make_inferred = _check_make(make_text, vin, check.is_valid, errors, warnings)
    marks.take("make")
    country = _check_country(fields.get("country_code", "").strip(), default_country, errors)
    # The region follows from the country: its problems are the country's to fix.
    region = _check_region(make, country, default_region, errors, warnings)
    marks.take("country_code")

    plate, model = _plate_and_model(fields, errors, marks)
    model_year, year_error = _model_year(fields.get("model_year", "").strip(), latest_year)
    if year_error:
        errors.append(year_error)
    marks.take("")
    tags, tag_errors = parse_tags(fields.get("tags", ""))
    errors.extend(tag_errors)
    marks.take("tags")
    owner_email = _owner_email(fields.get("owner_email", ""), warnings)
    marks.take("")

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
        owner_email=owner_email,
        field_problems=marks.by_field,
    )


def _plate_and_model(
    fields: Mapping[str, str], errors: list[str], marks: FieldMarks
) -> tuple[str, str]:
    plate = _WHITESPACE.sub(" ", fields.get("registration_plate", "")).strip()
    if len(plate) > PLATE_MAX:
        errors.append(
            f"The registration plate has {len(plate)} characters; at most {PLATE_MAX} fit. "
            "Check that the right column is used."
        )
    marks.take("registration_plate")
    model = _WHITESPACE.sub(" ", fields.get("model", "")).strip()
    if len(model) > MODEL_MAX:
        errors.append(
            f"The model has {len(model)} characters; at most {MODEL_MAX} fit. Shorten it."
        )
    return plate, model


def _owner_email(text: str, warnings: list[str]) -> str:
    """The owner's or driver's address, or "" (with a warning when it is not one)."""
    text = text.strip()
    if not text:
        return ""
    try:
        validate_email(text)
    except ValidationError:
        warnings.append(
            f"{text[:60]!r} is not an e-mail address: a consent link for this VIN "
            "cannot be e-mailed (the CSV still has it)."
        )
        return ""
    return text


def _check_make(
    make_text: str, vin: str, vin_is_valid: bool, errors: list[str], warnings: list[str]
) -> tuple[str | None, bool]:
    """The contract's make for the row (or told from the VIN), and whether it was inferred."""
    make = normalise_make(make_text) if make_text else None
    make_inferred = False
    vin_makes = makes_for_vin(vin) if vin_is_valid else ()
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
    return make, make_inferred


def _check_country(country_text: str, default_country: str, errors: list[str]) -> str:
    """The row's ISO country code, the fleet's default when empty ("" when unreadable)."""
    country = normalise_country(country_text) if country_text else default_country
    if country is None:
        errors.append(
            f"{country_text!r} is not a country code. Use the two-letter ISO code, for "
            f"example GB, DE or FR, or leave it empty to use the fleet's default "
            f"({default_country})."
        )
        country = ""
    return country


def _check_region(
    make: str | None, country: str, default_region: str, errors: list[str], warnings: list[str]
) -> str:
    """The Volteras region the VIN is sent to, with the make's regional rules."""
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
    return region
