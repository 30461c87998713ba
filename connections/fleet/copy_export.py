"""The fleet list's CSV export written by PostgreSQL itself: `COPY (SELECT …) TO
STDOUT` of the same rows, filters and order as `exports.rows`, streamed as it
comes (psycopg's `cursor.copy`), byte for byte what the Python path writes.

Everything the Python path does per row is done in the SELECT: the status
label and the explanation's texts are looked up in JSON objects passed as
parameters (one keyed lookup per row, not a CASE of every code), `csv_safe`'s
guard against formulas is a CASE on the first character, times are written as
`datetime.isoformat` writes them, and every cell is quoted (`FORCE_QUOTE *`,
the Python path's `QUOTE_ALL`). PostgreSQL only; SQLite keeps the Python path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import StreamingHttpResponse
from django.utils import timezone

from connections.csv_files import csv_safe, stream_csv
from connections.explanations import (
    CONTRACT_CATEGORIES,
    EXPLANATIONS,
    PORTAL_EXPLANATIONS,
    STATUS_EXPLANATIONS,
    WHO_ACTS_LABELS,
    WhoActs,
    explain,
)
from connections.fleet.exports import COLUMNS, CSV_DIALECT, csv_rows, header_line
from connections.fleet.listing import (
    Filters,
    account_vehicles,
    filter_entries,
    filter_vehicles,
    fleet_entries,
    ordering,
)
from connections.models import STATUS_LABELS, Fleet, VinStatus

FORMULA_STARTS = "('=', '+', '-', '@', E'\\t', E'\\r')"
CHUNK_BYTES = 64 * 1024
ENTRY = '"connections_vinentry".'
VEHICLE = '"connections_vehicle".'
# The explanation a row's texts come from: its error code's, else its status's.
EXPLANATION_KEY = (
    f"CASE WHEN {ENTRY}error_code <> ''"
    f" THEN 'E:' || upper(btrim({ENTRY}error_code, E' \\t\\r\\n\\f\\v'))"
    f" ELSE 'S:' || {ENTRY}status END"
)
# A JSON array's texts joined by ";" (`exports.rows`), read only when it has any.
TAGS = (
    "CASE WHEN jsonb_typeof(\"connections_vinentry\".tags) = 'array'"
    ' AND jsonb_array_length("connections_vinentry".tags) > 0 THEN'
    " (SELECT string_agg(COALESCE(t ->> 'key', '') || '=' || COALESCE(t ->> 'value', ''),"
    " ';' ORDER BY n) FROM jsonb_array_elements(\"connections_vinentry\".tags)"
    " WITH ORDINALITY AS a(t, n)) ELSE '' END"
)
TAGS_START = (
    "CASE WHEN \"connections_vinentry\".tags -> 0 IS NULL THEN ''"
    " ELSE left(COALESCE(\"connections_vinentry\".tags -> 0 ->> 'key', '') || '=', 1) END"
)
CODES = (
    "CASE WHEN jsonb_typeof(\"connections_vinentry\".error_codes) <> 'array'"
    " OR jsonb_array_length(\"connections_vinentry\".error_codes) = 0 THEN ''"
    ' WHEN jsonb_array_length("connections_vinentry".error_codes) = 1'
    ' THEN "connections_vinentry".error_codes ->> 0'
    " ELSE (SELECT string_agg(c, ';' ORDER BY n)"
    ' FROM jsonb_array_elements_text("connections_vinentry".error_codes)'
    " WITH ORDINALITY AS a(c, n)) END"
)
CODES_START = "left(COALESCE(\"connections_vinentry\".error_codes ->> 0, ''), 1)"


def raw(sql: str, params: list | None = None) -> RawSQL:
    """Every piece of SQL here is this module's own text; values go as parameters."""
    return RawSQL(sql, params or [])  # noqa: S611 (constant SQL, values as parameters)


def guard(start: str) -> str:
    """`csv_safe`'s leading quote, for a cell whose first character is `start`."""
    return f"CASE WHEN {start} IN {FORMULA_STARTS} THEN '''' ELSE '' END"


def column(sql: str) -> RawSQL:
    """A plain text column, guarded (read twice, which costs nothing)."""
    return raw(f"({guard(f'left({sql}, 1)')} || {sql})")


def iso(column: str) -> RawSQL:
    """`datetime.isoformat()` of a UTC time (no fraction when it is whole seconds)."""
    text = f"to_char(({column} AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
    return raw(f"replace({text}, '.000000+', '+')")


def days(column: str, now: datetime) -> RawSQL:
    """`(now - then).days`: whole days, rounded down."""
    return raw(f"floor(extract(epoch FROM (%s::timestamptz - {column})) / 86400)::int", [now])


def _texts() -> str:
    """Each explanation as [title, next step, who acts], keyed as EXPLANATION_KEY
    and already guarded (`csv_safe`), so that SQL only looks them up."""
    table = {f"E:{code}": x for code, x in {**PORTAL_EXPLANATIONS, **EXPLANATIONS}.items()}
    table |= {f"S:{status}": x for status, x in STATUS_EXPLANATIONS.items()}
    table["generic"] = explain("?")  # a code we have not written up
    return json.dumps(
        {
            key: [csv_safe(x.title), csv_safe(x.next_step), csv_safe(WHO_ACTS_LABELS[x.who_acts])]
            for key, x in table.items()
        }
    )


def entry_columns(now: datetime) -> list[RawSQL]:
    """`exports.rows`' cells of an upload row, with `csv_rows`' guard."""
    x = (
        f"COALESCE(%s::jsonb -> ({EXPLANATION_KEY}),"
        f" CASE WHEN {ENTRY}error_code <> '' THEN %s::jsonb -> 'generic' END)"
    )
    texts = _texts()
    labels = json.dumps({k: csv_safe(v) for k, v in STATUS_LABELS.items()})
    categories = json.dumps({c.value: csv_safe(WHO_ACTS_LABELS[c]) for c in CONTRACT_CATEGORIES})
    customer = csv_safe(WHO_ACTS_LABELS[WhoActs.CUSTOMER_ACTION])
    message = f"NULLIF({ENTRY}message, '')"
    who = (
        f"CASE WHEN %s::jsonb ? {ENTRY}action_category THEN %s::jsonb ->> {ENTRY}action_category"
        f" WHEN {ENTRY}status = %s THEN %s ELSE COALESCE(({x}) ->> 2, '') END"
    )
    what = f"COALESCE({guard(f'left({message}, 1)')} || {message}, ({x}) ->> 0, '')"
    return [
        column(f"{ENTRY}vin"),
        raw(f"COALESCE(%s::jsonb ->> {ENTRY}status, {ENTRY}status)", [labels]),
        raw(what, [texts, texts]),
        raw(f"COALESCE(({x}) ->> 1, '')", [texts, texts]),
        raw(who, [categories, categories, VinStatus.INVALID, customer, texts, texts]),
        column(f"{ENTRY}make"),
        column(f"{ENTRY}model"),
        column(f"{ENTRY}registration_plate"),
        raw(f"({guard(TAGS_START)} || {TAGS})"),
        raw(f"'upload #' || {ENTRY}upload_id"),
        iso(f"{ENTRY}status_changed_at"),
        days(f"{ENTRY}status_changed_at", now),
        raw(f"({guard(CODES_START)} || {CODES})"),
        column(f"{ENTRY}vehicle_id"),
    ]


def vehicle_columns(now: datetime) -> list[RawSQL]:
    """`exports.rows`' cells of an account vehicle."""
    labels = [STATUS_LABELS[VinStatus.DISCONNECTED], STATUS_LABELS[VinStatus.CONNECTED]]
    blank = raw("''")
    return [
        column(f"{VEHICLE}vin"),
        raw(f"CASE WHEN {VEHICLE}disconnected THEN %s ELSE %s END", [csv_safe(s) for s in labels]),
        *[blank] * 3,
        column(f"{VEHICLE}make"),
        *[blank] * 3,
        raw(f"'account ' || {VEHICLE}account_id"),
        iso(f"{VEHICLE}last_seen_at"),
        days(f"{VEHICLE}last_seen_at", now),
        blank,
        column(f"{VEHICLE}volteras_id"),
    ]


def _select(queryset: QuerySet, columns: list[RawSQL]) -> tuple[str, tuple]:
    names = [f"cell_{i}" for i in range(len(columns))]
    cells = queryset.annotate(**dict(zip(names, columns, strict=True))).values_list(*names)
    return cells.query.sql_with_params()


def statements(fleet: Fleet, f: Filters, now: datetime) -> list[tuple[str, tuple]]:
    """The SELECTs of the export, in order: the upload rows, then the account vehicles."""
    entries = filter_entries(fleet_entries(fleet), f).order_by(*ordering(f.sort))
    parts = [(entries, entry_columns(now))]
    if f.source != "upload" and fleet.connected_accounts.exists():
        vehicles = filter_vehicles(account_vehicles(fleet), f).order_by("vin")
        parts.append((vehicles, vehicle_columns(now)))
    found = []
    for queryset, columns in parts:
        try:
            found.append(_select(queryset, columns))
        except EmptyResultSet:  # a filter that matches nothing there (`.none()`)
            continue
    return found


def copy_csv(fleet: Fleet, f: Filters) -> Iterator[bytes]:
    """The export's bytes as PostgreSQL writes them, after the same header line.
    Blocks are handed on as they arrive: memory stays bounded."""
    yield header_line().encode()
    with connection.cursor() as cursor:
        for sql, params in statements(fleet, f, timezone.now()):
            copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
            with cursor.cursor.copy(copy_sql, params) as copy:
                buffer = bytearray()
                for block in copy:  # a row each: handed on in chunks of about 64 KB
                    buffer += block
                    if len(buffer) >= CHUNK_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
                if buffer:
                    yield bytes(buffer)


def csv_download(fleet: Fleet, f: Filters, filename: str) -> StreamingHttpResponse:
    """The CSV download: written by PostgreSQL itself where it runs (the same
    bytes as the Python path), else row by row in Python (SQLite)."""
    if connection.vendor != "postgresql":
        return stream_csv(filename, COLUMNS, csv_rows(fleet, f), **CSV_DIALECT)
    response = StreamingHttpResponse(copy_csv(fleet, f), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
