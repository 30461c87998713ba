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
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import StreamingHttpResponse
from django.utils import timezone

from connections.csv_files import FORMULA_STARTS, csv_safe, stream_csv
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

FORMULA_CHARS = "(" + ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS) + ")"
CHUNK_BYTES = 64 * 1024
ENTRY = '"connections_vinentry".'
VEHICLE = '"connections_vehicle".'
# The explanation a row's texts come from: its error code's, else its status's.
EXPLANATION_KEY = (
    f"CASE WHEN {ENTRY}error_code <> ''"
    f" THEN 'E:' || upper(btrim({ENTRY}error_code, E' \\t\\r\\n\\f\\v'))"
    f" ELSE 'S:' || {ENTRY}status END"
)
# A JSON array's texts joined by ";" (`exports.rows`), worked out only when it
# has any (most rows have none), the guard decided by its first character.
TAGS = (
    "CASE WHEN \"connections_vinentry\".tags = '[]'::jsonb"
    " OR jsonb_typeof(\"connections_vinentry\".tags) <> 'array' THEN ''"
    " ELSE CASE WHEN left(COALESCE(\"connections_vinentry\".tags -> 0 ->> 'key', '') || '=', 1)"
    " IN (chr(61), chr(43), chr(45), chr(64), chr(9), chr(13)) THEN chr(39) ELSE '' END"
    " || (SELECT string_agg(COALESCE(t ->> 'key', '') || '=' || COALESCE(t ->> 'value', ''),"
    " ';' ORDER BY n) FROM jsonb_array_elements(\"connections_vinentry\".tags)"
    " WITH ORDINALITY AS a(t, n)) END"
)
CODES = (
    "CASE WHEN \"connections_vinentry\".error_codes = '[]'::jsonb"
    " OR jsonb_typeof(\"connections_vinentry\".error_codes) <> 'array' THEN ''"
    ' ELSE CASE WHEN left("connections_vinentry".error_codes ->> 0, 1)'
    " IN (chr(61), chr(43), chr(45), chr(64), chr(9), chr(13)) THEN chr(39) ELSE '' END"
    ' || CASE WHEN "connections_vinentry".error_codes ->> 1 IS NULL'
    ' THEN "connections_vinentry".error_codes ->> 0'
    " ELSE (SELECT string_agg(c, ';' ORDER BY n)"
    ' FROM jsonb_array_elements_text("connections_vinentry".error_codes)'
    " WITH ORDINALITY AS a(c, n)) END END"
)


def raw(sql: str, params: list | None = None) -> RawSQL:
    """Every piece of SQL here is this module's own text; values go as parameters."""
    return RawSQL(sql, params or [])  # noqa: S611 (constant SQL, values as parameters)


def guarded(sql: str) -> str:
    """`csv_safe` of a text: a leading quote when it would start a formula
    (a new text only then: the common case hands the column on as it is)."""
    return f"CASE WHEN left({sql}, 1) IN {FORMULA_CHARS} THEN chr(39) || {sql} ELSE {sql} END"


def column(sql: str) -> RawSQL:
    return raw(guarded(sql))


def iso(column: str) -> RawSQL:
    """`datetime.isoformat()` of a UTC time (no fraction when it is whole seconds)."""
    text = f"to_char(({column} AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
    return raw(f"replace({text}, '.000000+', '+')")


def days(column: str, now: datetime) -> RawSQL:
    """`(now - then).days`: whole days, rounded down (an interval's days when
    it is not negative, which is cheaper to read than seconds)."""
    sql = (
        f"CASE WHEN {column} <= %s::timestamptz"
        f" THEN extract(day FROM (%s::timestamptz - {column}))::int"
        f" ELSE floor(extract(epoch FROM (%s::timestamptz - {column})) / 86400)::int END"
    )
    return raw(sql, [now] * 3)


def _texts(part: int) -> str:
    """One text of every explanation (0 title, 1 next step, 2 who acts), keyed as
    EXPLANATION_KEY, already guarded (`csv_safe`): SQL only looks it up."""
    table = {f"E:{code}": x for code, x in {**PORTAL_EXPLANATIONS, **EXPLANATIONS}.items()}
    table |= {f"S:{status}": x for status, x in STATUS_EXPLANATIONS.items()}
    table["generic"] = explain("?")  # a code we have not written up
    texts = {k: (x.title, x.next_step, WHO_ACTS_LABELS[x.who_acts]) for k, x in table.items()}
    return json.dumps({key: csv_safe(text[part]) for key, text in texts.items()})


def text(part: int) -> tuple[str, list[str]]:
    """The row's explanation text `part` (see `_texts`), NULL when it has none."""
    sql = (
        f"COALESCE(%s::jsonb ->> ({EXPLANATION_KEY}),"
        f" CASE WHEN {ENTRY}error_code <> '' THEN %s::jsonb ->> 'generic' END)"
    )
    return sql, [_texts(part)] * 2


def entry_columns(now: datetime) -> list[RawSQL]:
    """`exports.rows`' cells of an upload row, with `csv_rows`' guard."""
    (title, title_params), (step, step_params), (who_text, who_params) = map(text, range(3))
    labels = json.dumps({k: csv_safe(v) for k, v in STATUS_LABELS.items()})
    categories = json.dumps({c.value: csv_safe(WHO_ACTS_LABELS[c]) for c in CONTRACT_CATEGORIES})
    customer = csv_safe(WHO_ACTS_LABELS[WhoActs.CUSTOMER_ACTION])
    message = f"NULLIF({guarded(f'{ENTRY}message')}, '')"
    who = (
        f"CASE WHEN %s::jsonb ? {ENTRY}action_category THEN %s::jsonb ->> {ENTRY}action_category"
        f" WHEN {ENTRY}status = %s THEN %s ELSE COALESCE({who_text}, '') END"
    )
    what = f"COALESCE({message}, {title}, '')"
    return [
        column(f"{ENTRY}vin"),
        raw(f"COALESCE(%s::jsonb ->> {ENTRY}status, {ENTRY}status)", [labels]),
        raw(what, title_params),
        raw(f"COALESCE({step}, '')", step_params),
        raw(who, [categories, categories, VinStatus.INVALID, customer, *who_params]),
        column(f"{ENTRY}make"),
        column(f"{ENTRY}model"),
        column(f"{ENTRY}registration_plate"),
        raw(TAGS),
        raw(f"'upload #' || {ENTRY}upload_id"),
        iso(f"{ENTRY}status_changed_at"),
        days(f"{ENTRY}status_changed_at", now),
        raw(CODES),
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
    # Without JIT: compiling these expressions costs more than evaluating them.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
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
