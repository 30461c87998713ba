"""The fleet list's rows as HTML, written by a small Python renderer instead of
the template engine, and kept by what they show.

A row is read as one tuple of plain values (`listing.COLUMNS`, no model
object). Everything it shows follows from that tuple, the row's age as words
and the page's link prefixes, so that is the row's cache key: a row that
did not change is never rendered twice in a process, and its digest
(`rows.digest`) is the `data-key` a live refresh compares.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from connections.makes import make_label
from connections.models import Attention, VinEntry, VinStatus

ENTRY, VEHICLE = 0, 1
# Rendered rows kept per process: a few pages of many fleets (about 1 KB each).
CACHED_ROWS = 8192
NEEDS_YOU = mark_safe(' <span class="visually-hidden">needs you</span>')
AGE_UNITS = ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"))


def digest(*parts: object) -> str:
    """A short digest of what a row shows (as `web.live.row_key`, which this
    layer may not import): the row's `data-key` and its cache keys."""
    return hashlib.blake2s(repr(parts).encode(), digest_size=6).hexdigest()


def age_text(changed_at: datetime, now: datetime) -> str:
    """How long ago, in its largest unit ("3 hours"): what the row shows and
    part of its key, so a row is rendered again when its age reads differently."""
    seconds = max(0, int((now - changed_at).total_seconds()))
    for size, unit in AGE_UNITS:
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    minutes = seconds // 60
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


@dataclass(frozen=True)
class Links:
    """The page's link prefixes, with 0 where a row puts its own id."""

    entry: str
    upload: str
    accounts: str


@dataclass(frozen=True)
class Row:
    """One vehicle of the page: its element's key ("e12": upload row 12, "v7":
    account vehicle 7), its digest (its `data-key`) and its `<tr>`."""

    key: str
    vin: str
    source_label: str
    digest: str
    html: str

    @property
    def placeholder(self) -> str:
        """The row as a live answer sends it when the browser already has it."""
        keep = '<tr id="row-{}" data-key="{}" data-live-keep></tr>'
        return format_html(keep, self.key, self.digest)


def _entry(values: tuple) -> VinEntry:
    """An unsaved entry carrying the row's values: its own rules (who acts, the
    explanation, the badge) then apply unchanged."""
    status, make, model, plate, error_code, message, category = (
        values[5], values[6], values[7], values[8], values[11], values[12], values[13]
    )  # fmt: skip
    return VinEntry(
        status=status,
        make=make,
        model=model,
        registration_plate=plate,
        error_code=error_code,
        message=message,
        action_category=category,
    )


def _tags(tags_text: str) -> list[str]:
    if not tags_text:
        return []
    return [f"{t.get('key', '')}={t.get('value', '')}" for t in json.loads(tags_text) or ()]


def describe(values: tuple, account: str, links: Links) -> dict:
    """What a row shows, by name, from its values and its account's name."""
    kind, pk, attention, changed_at, vin = values[:5]
    entry = _entry(values)
    upload_id = values[10]
    is_entry = kind == ENTRY
    return {
        "key": f"{'e' if is_entry else 'v'}{pk}",
        "vin": vin,
        "status": entry.status,
        "status_label": entry.status_label,
        "badge": entry.badge,
        "attention": attention,
        "make_label": entry.make_label if is_entry else make_label(entry.make.upper()),
        "model": entry.model,
        "plate": entry.registration_plate,
        "tags": _tags(values[9]),
        "changed_at": changed_at,
        "detail_url": links.entry.replace("/0/", f"/{pk}/") if is_entry else "",
        "source_label": f"Upload #{upload_id}" if is_entry else f"Account {account}",
        "source_url": links.upload.replace("/0/", f"/{upload_id}/") if is_entry else links.accounts,
        "explanation": entry.explanation if is_entry else None,
        "error_code": entry.error_code,
        "message": entry.message,
        "who": entry.who_acts if is_entry else "",
    }


@lru_cache(maxsize=CACHED_ROWS)
def render(values: tuple, age: str, account: str, links: Links) -> Row:
    """The row, rendered; cached by everything it shows."""
    row = describe(values, account, links)
    key = digest(values, age, account, links)
    return Row(row["key"], row["vin"], row["source_label"], key, _tr(row, key, age))


def _what(row: dict) -> str:
    x = row["explanation"]
    if x:
        code, extra = row["error_code"], ""
        if code:
            # A long code breaks after an underscore first (OEM_VEHICLE_<wbr>…).
            breakable = format_html_join("_<wbr>", "{}", ((part,) for part in code.split("_")))
            extra = format_html(' <span class="muted mono">{}</span>', breakable)
        return format_html("{}. <em>Next:</em> {}{}", x.title, x.next_step, extra)
    if row["message"] and row["status"] != VinStatus.CONNECTED:
        return format_html("{}", row["message"])
    return ""


def _tr(row: dict, key: str, age: str) -> str:
    vin = row["vin"]
    changed = timezone.localtime(row["changed_at"])
    # A tag may break after its "=" (a long one would widen the whole table).
    tags = format_html_join(
        " ",
        '<a class="badge off" href="?tag={}">{}=<wbr>{}</a>',
        ((quote(t), *t.split("=", 1)) for t in row["tags"]),
    )
    link = format_html('<a href="{}">{}</a>', row["detail_url"], vin) if row["detail_url"] else vin
    return format_html(
        '<tr id="row-{key}" data-key="{digest}" data-live-state="{label}">'
        '<td><input type="checkbox" name="rows" value="{key}" id="pick-{key}" form="bulk"'
        ' aria-label="Select {vin}"></td>'
        '<th scope="row" class="mono">{link}</th>'
        '<td><span class="badge {badge}">{label}</span>{needs}</td>'
        "<td>{what}</td><td>{who}</td><td>{make}</td><td>{model}</td>"
        '<td class="nowrap">{plate}</td><td>{tags}</td>'
        '<td><a href="{source_url}">{source}</a></td>'
        '<td><time datetime="{iso}" title="{title}">{age} ago</time></td></tr>',
        key=row["key"],
        digest=key,
        label=row["status_label"],
        vin=vin,
        link=link,
        badge=row["badge"],
        needs=NEEDS_YOU if row["attention"] == Attention.NEEDS_YOU else "",
        what=_what(row),
        who=row["who"] or "—",
        make=row["make_label"],
        model=row["model"],
        plate=row["plate"],
        tags=tags,
        source_url=row["source_url"],
        source=row["source_label"],
        iso=changed.isoformat(),
        title=dateformat.format(changed, "j M Y H:i"),
        age=age,
    )
