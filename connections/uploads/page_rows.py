"""The live table's rows of one page, read as one tuple of plain values per
row: its key (`table.RowKeys`) is worked out from them, so that a poll can
tell which rows the browser already shows without building a model object
for each; only the rows sent whole become full entries (from the same values,
no second query).

The page's statement is composed once per upload, filters and page
(`models.composed`). On PostgreSQL its values are read as the driver gives
them, JSON as text, which a key reads as it is and only a row sent whole
decodes; SQLite's (times as text) are converted first.

The fleet vehicles list (`fleet.rows`) reads its rows the same way."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from operator import itemgetter

from django.db import connections
from django.db.models import DEFERRED, QuerySet

from connections.models import ConsentLink, VinEntry
from connections.models.composed import RowVersion, composed

# What `table.RowKeys` reads of an entry (with `is_stale` and `age`, which
# need `submitted_at`), and `attention`, which the rows-need-you note counts.
KEY_FIELDS = (
    "pk",
    "line_number",
    "raw_vin",
    "vin",
    "make",
    "make_inferred",
    "registration_plate",
    "validity",
    "problems",
    "batch_id",
    "status",
    "error_codes",
    "message",
    "action_category",
    "can_retry",
    "superseded",
    "duplicate_of_id",
    "eligibility",
    "eligibility_message",
    "status_changed_at",
    "submitted_at",
    "attention",
)
# What the table reads of an entry: the key fields and the error code, all a
# row shows (`row_html`), in the model's order. A row sent whole becomes an
# entry with the other columns deferred (`from_db` takes a full row of values,
# its fast path, with DEFERRED in their place); a poll of 100 rows reads 23
# columns instead of 42.
ALL_FIELDS = tuple(field.attname for field in VinEntry._meta.concrete_fields)
READ = frozenset({"id" if name == "pk" else name for name in KEY_FIELDS} | {"error_code"})
ENTRY_FIELDS = tuple(name for name in ALL_FIELDS if name in READ)
# Where each column read goes in a full row, and where each key field was read.
READ_AT = tuple(ALL_FIELDS.index(name) for name in ENTRY_FIELDS)
KEY_AT = tuple(ENTRY_FIELDS.index("id" if name == "pk" else name) for name in KEY_FIELDS)
# After the entry's columns: its `has_links` annotation and its version.
HAS_LINKS_AT, VERSION_AT = len(ENTRY_FIELDS), len(ENTRY_FIELDS) + 1


class KeyedRow(tuple):
    """One row as read (a tuple of its values): its key fields are the entry's
    own names for them, each a view into the row, nothing copied; the entry's
    staleness rule itself (its properties) works on them unchanged. A row the
    browser already shows stays one of these: its placeholder shows only its
    id and key (`live_key`, `live_kept`, with `row_links` set on it)."""

    is_stale = VinEntry.is_stale
    age = VinEntry.age
    in_progress_since = VinEntry.in_progress_since
    has_links = property(itemgetter(HAS_LINKS_AT))
    # The row's version on PostgreSQL (`RowVersion`), else None.
    row_version = property(itemgetter(VERSION_AT))
    # Every key field at once, in `KEY_FIELDS` order.
    key_values = property(itemgetter(*KEY_AT))


for _name, _at in zip(KEY_FIELDS, KEY_AT, strict=True):
    setattr(KeyedRow, _name, property(itemgetter(_at)))


def page_rows(
    page_entries: Callable[[], QuerySet],
    key_of: Callable[[KeyedRow], str],
    shown: Callable[[int, str], bool],
    statement: Hashable,
) -> list:
    """The page's rows in page order, each with `live_key` (`key_of` the row)
    and `live_kept` (the browser `shown` the row's id at that key): a
    `KeyedRow` for a kept row, a full `VinEntry` (with `row_links`, its consent
    links) for a row sent whole. `page_entries()` is the page's slice of the
    table's query, annotated with `has_links`, asked for only to compose its
    statement once per `statement`: what its SQL depends on (upload,
    filters, page)."""
    query = composed(
        ("upload-page", statement),
        lambda: (
            page_entries()
            .annotate(row_version=RowVersion())
            .values_list(*ENTRY_FIELDS, "has_links", "row_version")
        ),
    )
    values = query.raw_rows()
    lazy = connections[query.db].vendor == "postgresql"
    if not lazy:
        values = query.convert(values)
    keyed = [KeyedRow(row) for row in values]
    # Consent links are rare: read only for the rows that have one.
    links = _links_of([row.pk for row in keyed if row.has_links])
    rows = []
    for row, row_values in zip(keyed, values, strict=True):
        row.row_links = links.get(row.pk, [])
        row.live_key = key_of(row)
        row.live_kept = shown(row.pk, row.live_key)
        if row.live_kept:
            rows.append(row)
            continue
        if lazy:
            row_values = query.convert_row(row_values)
        values = [DEFERRED] * len(ALL_FIELDS)
        for at, value in zip(READ_AT, row_values, strict=False):
            values[at] = value
        entry = VinEntry.from_db(query.db, ALL_FIELDS, values)
        entry.row_links, entry.live_key, entry.live_kept = row.row_links, row.live_key, False
        rows.append(entry)
    return rows


def _links_of(pks: list[int]) -> dict[int, list[ConsentLink]]:
    """Each entry's consent links (newest first), with their fleet, which the
    link cell's URL needs."""
    links: dict[int, list[ConsentLink]] = {}
    if pks:
        for link in ConsentLink.objects.filter(vin_entry_id__in=pks).select_related("fleet"):
            links.setdefault(link.vin_entry_id, []).append(link)
    return links
