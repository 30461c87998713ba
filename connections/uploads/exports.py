"""The CSV files an upload offers: every row with its state, and the invalid
rows, ready to fix and upload again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from connections.csv_files import csv_safe, csv_text
from connections.models import VinEntry, VinStatus
from connections.uploads.rows import FIELD_LABELS
from connections.vin import INVALID

EXPORT_COLUMNS = [
    "vin",
    "make",
    "country_code",
    "registration_plate",
    "status",
    "error_codes",
    "message",
    "action_category",
    "can_retry",
    "vehicle_id",
    "updated_at",
]
# The export speaks the contract's per-VIN statuses plus the portal's INVALID (never
# sent), SUBMITTING (not yet accepted) and DISCONNECTED. A skipped row (duplicate, already
# in the fleet) is never sent, and a ready row of a draft is not accepted yet; the
# message keeps the difference.
EXPORT_STATUS = {VinStatus.READY: VinStatus.SUBMITTING, VinStatus.SKIPPED: VinStatus.INVALID}
NOT_CONFIRMED = "Valid, not sent yet: the upload has not been confirmed."


def export_rows(entries: Iterable[VinEntry]) -> Iterator[list[Any]]:
    """An upload's entries as the rows of its export (`EXPORT_COLUMNS`)."""
    for entry in entries:
        status = EXPORT_STATUS.get(entry.status, entry.status)
        message = entry.message or "; ".join(entry.problems)
        if entry.status == VinStatus.READY:
            message = f"{NOT_CONFIRMED} {message}".strip()
        yield [
            csv_safe(entry.vin),
            csv_safe(entry.make),
            csv_safe(entry.country_code),
            csv_safe(entry.registration_plate),
            status,
            csv_safe(";".join(entry.error_codes)),
            csv_safe(message),
            csv_safe(entry.action_category),
            "" if entry.can_retry is None else str(entry.can_retry).lower(),
            csv_safe(entry.vehicle_id),
            entry.updated_at.isoformat(),
        ]


INVALID_ROWS_HEADER: tuple[str, ...] = (*FIELD_LABELS.values(), "Problem", "Original line")


def _tags_text(tags: Iterable[Mapping[str, str]] | None) -> str:
    return ";".join(f"{tag.get('key', '')}={tag.get('value', '')}" for tag in tags or ())


def invalid_rows_csv(rows: Iterable[Any]) -> str:
    """The invalid rows among `rows` (ValidatedRow or VinEntry objects) as CSV text,
    in the upload's own columns plus the problem, safe to open in a spreadsheet.

    Encode it as `utf-8-sig` when serving it, so Excel reads accents correctly.
    """
    return csv_text(INVALID_ROWS_HEADER, _invalid_cells(rows))


def _invalid_cells(rows: Iterable[Any]) -> Iterator[list[str]]:
    for row in rows:
        if getattr(row, "validity", None) != INVALID:
            continue
        model_year = getattr(row, "model_year", None)
        cells = (
            getattr(row, "raw_vin", "") or getattr(row, "vin", ""),
            getattr(row, "make", ""),
            getattr(row, "country_code", ""),
            getattr(row, "registration_plate", ""),
            getattr(row, "model", ""),
            "" if model_year is None else model_year,
            _tags_text(getattr(row, "tags", None)),
            getattr(row, "owner_email", ""),
            " ".join(getattr(row, "problems", None) or ()),
            getattr(row, "line_number", ""),
        )
        yield [csv_safe(cell) for cell in cells]
