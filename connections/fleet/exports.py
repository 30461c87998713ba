"""Exports of exactly the rows a fleet list shows (its filters and sort), as CSV
(streamed) or .xlsx (openpyxl's write-only mode, spooled to a temporary file):
memory stays bounded whatever the fleet's size. Rows are read as tuples, not
model objects, in chunks."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.http import FileResponse
from django.utils import timezone
from openpyxl import Workbook

from connections.csv_files import csv_lines, csv_safe
from connections.explanations import (
    CONTRACT_CATEGORIES,
    STATUS_EXPLANATIONS,
    WHO_ACTS_LABELS,
    WhoActs,
    explain,
)
from connections.fleet.listing import (
    Filters,
    account_vehicles,
    filter_entries,
    filter_vehicles,
    fleet_entries,
    ordering,
    tag_text,
)
from connections.models import STATUS_LABELS, Fleet, VinStatus

COLUMNS = [
    "vin",
    "status",
    "what_happened",
    "next_step",
    "who_must_act",
    "make",
    "model",
    "registration_plate",
    "tags",
    "source",
    "last_change",
    "age_days",
    "error_codes",
    "vehicle_id",
]
ENTRY_FIELDS = (
    "vin",
    "status",
    "error_code",
    "error_codes",
    "message",
    "action_category",
    "make",
    "model",
    "registration_plate",
    "tags",
    "upload_id",
    "status_changed_at",
    "vehicle_id",
)
# Every cell quoted, lines ended by LF: how PostgreSQL's COPY writes CSV, so
# both paths give the same bytes.
CSV_DIALECT = {"quoting": csv.QUOTE_ALL, "lineterminator": "\n"}
CHUNK = 2000
# Above this an .xlsx being built goes from memory to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024


def _who(status: str, code: str, category: str) -> str:
    """`VinEntry.who_acts` on a row's values."""
    if category in CONTRACT_CATEGORIES:
        return WHO_ACTS_LABELS[category]
    if status == VinStatus.INVALID:
        return WHO_ACTS_LABELS[WhoActs.CUSTOMER_ACTION]
    x = explain(code) if code else STATUS_EXPLANATIONS.get(status)
    return WHO_ACTS_LABELS[x.who_acts] if x else ""


def rows(fleet: Fleet, f: Filters) -> Iterator[list[Any]]:
    """The matching rows as cells, entries in the list's order, then account vehicles."""
    now = timezone.now()
    entries = filter_entries(fleet_entries(fleet), f).order_by(*ordering(f.sort))
    for (
        vin,
        status,
        code,
        codes,
        message,
        category,
        make,
        model,
        plate,
        tags,
        upload_id,
        changed,
        vehicle_id,
    ) in entries.values_list(*ENTRY_FIELDS).iterator(chunk_size=CHUNK):
        x = explain(code) if code else STATUS_EXPLANATIONS.get(status)
        yield [
            vin,
            STATUS_LABELS.get(status, status),
            message or (x.title if x else ""),
            x.next_step if x else "",
            _who(status, code, category),
            make,
            model,
            plate,
            ";".join(tag_text(t) for t in tags or ()),
            f"upload #{upload_id}",
            changed,
            _days(now, changed),
            ";".join(codes or ()),
            vehicle_id,
        ]
    if f.source == "upload" or not fleet.connected_accounts.exists():
        return
    vehicles = filter_vehicles(account_vehicles(fleet), f).order_by("vin")
    for vin, make, gone, seen, account, vehicle_id in vehicles.values_list(
        "vin", "make", "disconnected", "last_seen_at", "account_id", "volteras_id"
    ):
        status = VinStatus.DISCONNECTED if gone else VinStatus.CONNECTED
        cells = [vin, STATUS_LABELS[status], "", "", "", make, "", "", ""]
        yield [*cells, f"account {account}", seen, _days(now, seen), "", vehicle_id]


def _days(now: datetime, then: datetime) -> int:
    return (now - then).days


def csv_rows(fleet: Fleet, f: Filters) -> Iterator[list[str]]:
    for row in rows(fleet, f):
        row[10] = row[10].isoformat()
        yield [csv_safe(cell) if isinstance(cell, str) else cell for cell in row]


def header_line() -> str:
    """The export's first line: a byte order mark (for Excel) and the column names."""
    return next(iter(csv_lines(COLUMNS, [], **CSV_DIALECT)))


def xlsx_response(fleet: Fleet, f: Filters, filename: str) -> FileResponse:
    """The rows as an .xlsx file: written row by row (write-only), kept in
    memory while small and in a temporary file beyond `SPOOL_BYTES`."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Vehicles")
    sheet.append(COLUMNS)
    for row in rows(fleet, f):
        # Excel keeps no time zone: times are written in UTC, without it.
        row[10] = row[10].astimezone(UTC).replace(tzinfo=None)
        sheet.append([csv_safe(c) if isinstance(c, str) else c for c in row])
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the response closes it)
    book.save(spool)
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=filename,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
