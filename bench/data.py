"""Synthetic VIN lists shaped like a real fleet export.

Every VIN is unique, 17 characters, from a manufacturer code the portal knows,
with a correct ISO 3779 check digit (the sandbox rejects a wrong one). A
`messy` list also carries what real files do: about 1% invalid rows (a wrong
check digit on a North American VIN) and 0.5% repeated VINs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# (manufacturer code, make as a fleet writes it, country, model)
MAKERS: tuple[tuple[str, str, str, str], ...] = (
    ("WVW", "VW", "DE", "ID.3"),
    ("WVG", "Volkswagen", "DE", "ID.4"),
    ("WBA", "BMW", "DE", "i4"),
    ("VF1", "Renault", "FR", "Megane E-Tech"),
    ("VF3", "Peugeot", "FR", "e-208"),
    ("TMB", "Skoda", "CZ", "Enyaq"),
    ("WDD", "Mercedes-Benz", "DE", "EQA"),
    ("YV1", "Volvo", "SE", "EX30"),
    ("W0V", "Opel", "DE", "Corsa-e"),
    ("5YJ", "Tesla", "GB", "Model 3"),
    ("1FA", "Ford", "GB", "Mustang Mach-E"),
)
# Letters a VIN may hold (no I, O, Q), for the descriptor section.
_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
# ISO 3779 check digit, kept here so the data does not depend on the code it
# is fed to (nor need Django set up to be written).
_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
HEADER = ("VIN", "Make", "Country", "Registration plate", "Model", "Model year")


def check_digit(body: str) -> str:
    remainder = sum(_VALUES[c] * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11
    return "X" if remainder == 10 else str(remainder)


def vin(serial: int) -> str:
    """A valid VIN, different for every serial below 10**6 * len(MAKERS)."""
    wmi = MAKERS[serial % len(MAKERS)][0]
    descriptor = "".join(_ALPHABET[(serial // 7**i) % len(_ALPHABET)] for i in range(5))
    body = f"{wmi}{descriptor}0N{'ABCDEFGH'[serial % 8]}{serial % 10**6:06d}"
    return body[:8] + check_digit(body) + body[9:]


def _broken(good: str) -> str:
    wrong = "0" if good[8] != "0" else "1"
    return good[:8] + wrong + good[9:]


def rows(count: int, *, messy: bool = True) -> Iterator[tuple[str, ...]]:
    for serial in range(count):
        _, make, country, model = MAKERS[serial % len(MAKERS)]
        number = vin(serial)
        if messy and serial % 100 == 37 and number[0] in "12345":
            number = _broken(number)
        elif messy and serial % 200 == 51 and serial > 0:
            number = vin(serial - 1)
        plate = f"{'ABCDEFGHJK'[serial % 10]}{serial % 100:02d} {serial % 17576:05d}"
        yield (number, make, country, plate, model, str(2019 + serial % 6))


def write_csv(path: Path, count: int, *, messy: bool = True) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows(count, messy=messy))
    return path


def entry_defaults(given: Sequence[str]) -> tuple[list[str], list[Any]]:
    """The VIN entry columns a COPY must fill beyond `given`: every NOT NULL
    one (Django keeps defaults in Python, not in the table), with its default."""
    from django.db.models import JSONField

    from connections.models import VinEntry

    now = datetime.now(UTC)
    names, values = [], []
    for model_field in VinEntry._meta.concrete_fields:
        if model_field.primary_key or model_field.generated or model_field.null:
            continue
        if model_field.column in given:
            continue
        if model_field.column in {"status_changed_at", "updated_at"}:
            value: Any = now
        elif model_field.column == "validity":
            value = VinEntry.Validity.VALID.value
        elif model_field.column == "status":
            value = "READY"
        elif isinstance(model_field, JSONField):
            value = json.dumps(model_field.get_default())
        else:
            value = model_field.get_default()
        names.append(model_field.column)
        values.append(value)
    return names, values


def copy_entries(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """`COPY` rows of `columns` into the VIN entry table (in the caller's
    transaction); returns how many were written."""
    from django.db import connection

    from connections.models import VinEntry

    extra_names, extra_values = entry_defaults(columns)
    names = [*columns, *extra_names]
    statement = f"COPY {VinEntry._meta.db_table} ({', '.join(names)}) FROM STDIN"
    connection.ensure_connection()
    written = 0
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row((*row, *extra_values))
            written += 1
    return written
