"""Every vehicle of a fleet in one list: the current row of each VIN sent in any
upload, and the vehicles that arrived through the fleet's consent accounts.

What needs the manager comes first (`VinEntry.attention`, stored and indexed),
every filter and sort is SQL, and a page reads its rows by index and counts at
most `COUNT_CAP` of them, so the first page costs the same on a fleet of
1,000 or 1,000,000 VINs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, reduce
from operator import or_

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse
from django.utils import timezone

from connections.fleet.rows import ENTRY, VEHICLE, Links, Row, age_text, digest, render
from connections.models import (
    Attention,
    Fleet,
    Upload,
    Vehicle,
    VinEntry,
    VinStatus,
    search_needles,
)
from connections.support.workspace import who_must_act_q

PAGE_SIZE = 50
# How long a page's count is kept (it is also keyed by the fleet's version).
COUNT_SECONDS = 600
# A page counts its matches up to here and says "more than" beyond.
COUNT_CAP = 1000
AGES = {
    "1h": ("Unchanged for 1 hour", timedelta(hours=1)),
    "24h": ("Unchanged for 1 day", timedelta(days=1)),
    "7d": ("Unchanged for 7 days", timedelta(days=7)),
    "30d": ("Unchanged for 30 days", timedelta(days=30)),
}
# Sort key -> the columns, in order (the id breaks ties in the same direction).
SORTS: dict[str, tuple[str, ...]] = {
    "needs": ("attention", "-status_changed_at", "-pk"),
    "vin": ("vin", "pk"),
    "status": ("status", "pk"),
    "make": ("make", "pk"),
    "model": ("model", "pk"),
    "plate": ("registration_plate", "pk"),
    "tags": ("tags_text", "pk"),
    "source": ("upload_id", "pk"),
    "changed": ("status_changed_at", "pk"),
}
# The union's columns: what sorting needs, and what to load the page's rows by.
COLUMNS = (
    "kind",
    "pk",
    "attention",
    "status_changed_at",
    "vin",
    "status",
    "make",
    "model",
    "registration_plate",
    "tags_text",
    "upload_id",
    "error_code",
    "message",
    "action_category",
    "account_id",
)


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to (`forms.VehicleFilterForm.filters`)."""

    group: str = ""
    status: str = ""
    who: str = ""
    make: str = ""
    tag: str = ""
    upload: int | None = None
    age: str = ""
    error: str = ""
    source: str = ""
    q: str = ""
    sort: str = "needs"


def fleet_entries(fleet: Fleet) -> QuerySet[VinEntry]:
    """The fleet's current row of every VIN it sent (drafts and never-sent rows aside)."""
    return VinEntry.objects.filter(
        fleet=fleet, superseded=False, attention__lt=Attention.NEVER_SENT
    )


def tag_text(tag: dict[str, str]) -> str:
    return f"{tag.get('key', '')}={tag.get('value', '')}"


def _tag_needle(text: str) -> str:
    """A `key=value` tag as it reads inside the stored JSON (the same on SQLite
    and PostgreSQL: `{"key": "k", "value": "v"}`)."""
    key, _, value = text.partition("=")
    return f'"key": "{key.strip()}", "value": "{value.strip()}"'


def filter_entries(entries: QuerySet[VinEntry], f: Filters) -> QuerySet[VinEntry]:
    """The entries matching the filters (every filter applies to entries)."""
    if f.source == "account":
        return entries.none()
    entries = entries.alias(tags_text=Cast("tags", TextField()))
    if f.group in GROUPS:
        entries = entries.filter(attention=GROUPS[f.group])
    if f.status:
        entries = entries.filter(status=f.status)
    if f.who:
        entries = entries.filter(who_must_act_q(f.who))
    if f.make:
        entries = entries.filter(make=f.make)
    if f.tag:
        entries = entries.filter(tags_text__contains=_tag_needle(f.tag))
    if f.upload:
        entries = entries.filter(upload_id=f.upload)
    if f.age in AGES:
        entries = entries.filter(status_changed_at__lt=timezone.now() - AGES[f.age][1])
    if f.error:
        entries = entries.filter(error_code=f.error)
    if needles := sorted(search_needles(f.q)):
        # One stored column, one LIKE per needle: a search reads each row once.
        entries = entries.filter(reduce(or_, (Q(search_key__contains=n) for n in needles)))
    return entries


GROUPS = {
    "needs": Attention.NEEDS_YOU,
    "progress": Attention.IN_PROGRESS,
    "connected": Attention.CONNECTED,
    "dismissed": Attention.SET_ASIDE,
}


def account_vehicles(fleet: Fleet) -> QuerySet[Vehicle]:
    """Vehicles of the fleet's consent accounts that no upload of the fleet sent."""
    accounts = fleet.connected_accounts.values("volteras_id")
    sent = VinEntry.objects.filter(fleet=fleet, superseded=False, vin=OuterRef("vin"))
    return Vehicle.objects.filter(account_id__in=accounts).exclude(vin="").exclude(Exists(sent))


def filter_vehicles(vehicles: QuerySet[Vehicle], f: Filters) -> QuerySet[Vehicle]:
    """The account vehicles matching the filters: those about upload rows
    (tags, uploads, error codes, who must act) match none of them."""
    if f.source == "upload" or f.tag or f.upload or f.error or f.who:
        return vehicles.none()
    connected = Q(disconnected=False)
    if f.group == "connected" or f.status == VinStatus.CONNECTED:
        vehicles = vehicles.filter(connected)
    elif f.group == "dismissed" or f.status == VinStatus.DISCONNECTED:
        vehicles = vehicles.exclude(connected)
    elif f.group or f.status:
        return vehicles.none()
    if f.make:
        vehicles = vehicles.filter(make__iexact=f.make)
    if f.age in AGES:
        vehicles = vehicles.filter(last_seen_at__lt=timezone.now() - AGES[f.age][1])
    if f.q:
        vehicles = vehicles.filter(vin__contains=f.q.strip().upper())
    return vehicles


def _entry_keys(entries: QuerySet[VinEntry]) -> QuerySet:
    return entries.annotate(
        kind=Value(ENTRY, IntegerField()),
        tags_text=Cast("tags", TextField()),
        account_id=Value("", CharField()),
    ).values_list(*COLUMNS)


def _vehicle_keys(vehicles: QuerySet[Vehicle]) -> QuerySet:
    gone = Q(disconnected=True)
    return vehicles.annotate(
        kind=Value(VEHICLE, IntegerField()),
        attention=Case(
            When(gone, then=Value(Attention.SET_ASIDE)), default=Value(Attention.CONNECTED)
        ),
        status_changed_at=F("last_seen_at"),
        status=Case(
            When(gone, then=Value(VinStatus.DISCONNECTED)), default=Value(VinStatus.CONNECTED)
        ),
        model=Coalesce(Cast(KT("raw__model"), CharField()), Value("", CharField())),
        registration_plate=Value("", CharField()),
        tags_text=Value("", TextField()),
        upload_id=Value(None, IntegerField()),
        error_code=Value("", CharField()),
        message=Value("", TextField()),
        action_category=Value("", CharField()),
    ).values_list(*COLUMNS)


def ordering(sort: str) -> list[str]:
    key = sort.lstrip("-")
    columns = SORTS.get(key, SORTS["needs"])
    if not sort.startswith("-") or key not in SORTS:
        return list(columns)
    return [c[1:] if c.startswith("-") else f"-{c}" for c in columns]


def matching_keys(fleet: Fleet, f: Filters, with_accounts: bool | None = None) -> QuerySet:
    """The keys of every matching row, sorted: entries, plus account vehicles
    when the fleet has any (a UNION ALL the database merges in index order).
    `with_accounts`, when the caller knows, spares asking."""
    keys = _entry_keys(filter_entries(fleet_entries(fleet), f))
    if with_accounts is None:
        with_accounts = fleet.connected_accounts.exists()
    if f.source != "upload" and with_accounts:
        vehicles = _vehicle_keys(filter_vehicles(account_vehicles(fleet), f))
        keys = keys.order_by().union(vehicles.order_by(), all=True)
    return keys.order_by(*ordering(f.sort))


@dataclass
class Page:
    rows: list[Row]
    number: int
    has_next: bool
    count: int
    count_capped: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


@lru_cache(maxsize=1024)
def page_links(slug: str) -> Links:
    return Links(
        entry=reverse("entry_detail", args=[0]),
        upload=reverse("upload_detail", args=[0]),
        accounts=reverse("consent_account_list", args=[slug]),
    )


def page_of(
    fleet: Fleet, f: Filters, number: int, version: str = "", with_accounts: bool | None = None
) -> Page:
    """One page of the list: its rows' values by index in one query (one row
    more tells whether a next page exists), each rendered unless already
    rendered at the same values, then a count up to the cap (kept per version)."""
    start = (number - 1) * PAGE_SIZE
    found = _page_values(fleet, f, with_accounts, start)
    shown = found[:PAGE_SIZE]
    accounts = {}
    if any(values[0] == VEHICLE for values in shown):
        accounts = dict(fleet.connected_accounts.values_list("volteras_id", "username"))
    links, now = page_links(fleet.slug), timezone.now()
    rows = [render(v, age_text(v[3], now), accounts.get(v[14]) or v[14], links) for v in shown]
    count = start + len(found)
    if count > COUNT_CAP:
        count = COUNT_CAP + 1
    elif len(found) > PAGE_SIZE:
        cache_key = f"fleet-count:{digest(fleet.pk, version, f)}" if version else ""
        count = cache.get(cache_key) if cache_key else None
        if count is None:
            keys = matching_keys(fleet, f, with_accounts)
            count = keys.order_by()[: COUNT_CAP + 1].count()
            if cache_key:
                cache.set(cache_key, count, COUNT_SECONDS)
    return Page(rows, number, len(found) > PAGE_SIZE, count, count > COUNT_CAP)


def _page_values(fleet: Fleet, f: Filters, with_accounts: bool | None, start: int) -> list:
    if connection.vendor != "postgresql" or f.age or with_accounts is None:
        return list(matching_keys(fleet, f, with_accounts)[start : start + PAGE_SIZE + 1])
    query = page_sql(fleet.pk, f, with_accounts, start)
    if query is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(*query)
        return cursor.fetchall()


@lru_cache(maxsize=1024)
def page_sql(
    fleet_id: int, f: Filters, with_accounts: bool, start: int
) -> tuple[str, tuple] | None:
    """A page's query as the ORM writes it, composed once per fleet, filters and
    page (composing costs the ORM about ten times what running it costs the
    database). Only where that SQL is all there is: on PostgreSQL, whose driver
    hands back the values the ORM would (SQLite's times need the ORM's
    converters), and without an age filter (its time moves). None: the
    filters match nothing anywhere."""
    keys = matching_keys(Fleet(pk=fleet_id), f, with_accounts)
    try:
        return keys[start : start + PAGE_SIZE + 1].query.sql_with_params()
    except EmptyResultSet:
        return None


def upload_choices(fleet: Fleet) -> list[tuple[int, str]]:
    uploads = fleet.uploads.filter(state=Upload.State.SUBMITTED).order_by("-pk")[:200]
    return [(u.pk, f"#{u.pk} {u.source_name or 'pasted'}") for u in uploads]
