"""What every reader of a VIN list yields: `RawRow`s with canonical keys
(`FIELDS`) found from the header's spellings, and `ImportProblem` for an upload
that cannot be read as a whole, with a message for the person who uploaded it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from django.conf import settings

from connections.makes import comparison_key
from connections.vin import normalise_vin


class ImportProblem(ValueError):
    """The upload as a whole cannot be read; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read: canonical keys (see `FIELDS`) and any problem with the
    row itself (bad quoting, wrong number of cells)."""

    line_number: int
    fields: Mapping[str, str]
    problems: tuple[str, ...] = ()


FIELDS: tuple[str, ...] = (
    "vin",
    "make",
    "country_code",
    "registration_plate",
    "model",
    "model_year",
    "tags",
    "owner_email",
)


FIELD_LABELS: dict[str, str] = {
    "vin": "VIN",
    "make": "Make",
    "country_code": "Country",
    "registration_plate": "Registration plate",
    "model": "Model",
    "model_year": "Model year",
    "tags": "Tags",
    "owner_email": "Owner's e-mail",
}


_HEADER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "vin": (
        "vin",
        "vins",
        "vin number",
        "vin no",
        "vehicle identification number",
        "vehicle id number",
        "chassis number",
        "chassis no",
    ),
    "make": ("make", "brand", "manufacturer", "marque", "oem", "vehicle make"),
    "country_code": ("country", "country code", "countrycode", "country_code", "iso country"),
    "registration_plate": (
        "registration plate",
        "plate",
        "license plate",
        "licence plate",
        "license plate number",
        "licence plate number",
        "number plate",
        "plate number",
        "registration",
        "registration number",
        "reg",
        "reg no",
        "vrm",
    ),
    "model": ("model", "vehicle model"),
    "model_year": ("model year", "year", "my"),
    "tags": ("tags", "tag"),
    "owner_email": (
        "email",
        "e-mail",
        "email address",
        "e-mail address",
        "owner email",
        "owner e-mail",
        "driver email",
        "driver e-mail",
        "owner",
        "driver",
        "contact email",
        "mail",
    ),
}


_COLUMN_FOR_HEADER: dict[str, str] = {
    comparison_key(spelling): name
    for name, spellings in _HEADER_SPELLINGS.items()
    for spelling in spellings
}


_VIN_LIKE = re.compile(r"^(?=.*\d)(?=.*[A-Z])[A-Z0-9]{11,20}$")


def column_for_header(text: str) -> str | None:
    """The canonical field a column heading names (case, spacing and punctuation ignored)."""
    return _COLUMN_FOR_HEADER.get(comparison_key(text))


def looks_like_vin(text: str) -> bool:
    return bool(_VIN_LIKE.match(normalise_vin(text)))


def _unescape(cell: str) -> str:
    # Undo csv_safe() so a downloaded file of invalid rows can be fixed and uploaded again.
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@":
        return cell[1:]
    return cell


def limits(max_rows: int | None, max_bytes: int | None) -> tuple[int, int]:
    return (
        settings.UPLOAD_MAX_ROWS if max_rows is None else max_rows,
        settings.UPLOAD_MAX_BYTES if max_bytes is None else max_bytes,
    )


def too_big(max_bytes: int) -> ImportProblem:
    megabytes = max_bytes / (1024 * 1024)
    size = f"{megabytes:.0f} MB" if megabytes >= 1 else f"{max_bytes:,} bytes"
    return ImportProblem(f"The file is larger than {size}; split it and upload the parts.")


def too_many_rows(max_rows: int) -> ImportProblem:
    return ImportProblem(
        f"The file has more than {max_rows:,} rows; split it and upload the parts."
    )


# A record as the table reader sees it: where it starts, its cells (None when
# unreadable) and what went wrong.
Record = tuple[int, list[str] | None, str]


def table(
    source: Iterable[Record], *, unit: str, max_rows: int, strict_width: bool
) -> Iterator[RawRow]:
    """Find the header (or decide there is none), then map each record to a RawRow.

    Reads eagerly up to the first non-empty record so a file without a VIN
    column fails when the reader is created, not halfway through.
    """
    records = iter(source)
    first: Record | None = None
    for record in records:
        line, cells, _problem = record
        if cells is None or any(cell.strip() for cell in cells):
            first = record
            break
    if first is None:
        raise ImportProblem("The file has no rows. Add one VIN per line, with a header row.")

    line, cells, _problem = first
    columns: list[str | None]
    header_line: int | None = None
    if cells is not None and any(column_for_header(cell) == "vin" for cell in cells):
        columns = []
        for cell in cells:
            name = column_for_header(cell)
            columns.append(name if name not in columns else None)
        header_line = line
    elif cells is not None and cells and looks_like_vin(cells[0]):
        columns = list(FIELDS)
    else:
        found = ", ".join(repr(c.strip()) for c in (cells or []) if c.strip()) or "nothing"
        raise ImportProblem(
            f"No VIN column was found. The first {unit} has: {found}. Add a header row with a "
            f"column named VIN (optional columns: {', '.join(list(FIELD_LABELS.values())[1:])})."
        )
    if header_line is not None and hasattr(source, "width"):
        # CSV records span lines by the header's width (quoted newlines).
        source.width = len(columns)
    return _rows(
        first if header_line is None else None,
        records,
        columns,
        unit=unit,
        max_rows=max_rows,
        strict_width=strict_width and header_line is not None,
    )


def _rows(
    first: Record | None,
    records: Iterator[Record],
    columns: list[str | None],
    *,
    unit: str,
    max_rows: int,
    strict_width: bool,
) -> Iterator[RawRow]:
    last_named = max((i for i, name in enumerate(columns) if name), default=0)
    count = 0
    pending = [first] if first is not None else []
    for line, cells, problem in itertools.chain(pending, records):
        if not problem and not any(cell.strip() for cell in cells or ()):
            continue
        problems = [f"{unit.capitalize()} {line}: {problem}"] if problem else []
        cells = cells or []
        count += 1
        if count > max_rows:
            raise too_many_rows(max_rows)
        extra = [cell for cell in cells[len(columns) :] if cell.strip()]
        if extra and not problem:
            problems.append(
                f"{unit.capitalize()} {line} has {_values(len(cells))} but there are only "
                f"{len(columns)} columns. A value probably contains the separator: put it in "
                "double quotes, or remove the extra values."
            )
        elif strict_width and not problem and len(cells) <= last_named:
            problems.append(
                f"{unit.capitalize()} {line} has {_values(len(cells))} but the header has "
                f"{len(columns)} columns. Check for a missing separator."
            )
        fields = dict.fromkeys(FIELDS, "")
        for name, cell in zip(columns, cells, strict=False):
            if name:
                fields[name] = _unescape(cell.strip())
        yield RawRow(line, fields, tuple(problems))


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"


class FieldMarks:
    """Which field each of a row's messages is about: `take(name)` gives the
    messages added since the last call to that field."""

    def __init__(self, errors: list[str], warnings: list[str]) -> None:
        self.lists = (errors, warnings)
        self.seen = [0, 0]
        self.by_field: dict[str, list[str]] = {}

    def take(self, name: str) -> None:
        for i, messages in enumerate(self.lists):
            new = messages[self.seen[i] :]
            if new:
                self.by_field.setdefault(name, []).extend(new)
            self.seen[i] = len(messages)
