"""The live table's rows sent whole, as HTML, written by a small Python
renderer, as the fleet list's are (`fleet.rows`).

A poll that finds every row of a page changed sends 100 of them. The template
engines escape every value they print through a safe-string type: Jinja spent
most of such a poll's rendering time making those strings. Here only text that
comes from a file or from Volteras is escaped per row; the portal's own words
(labels, explanations) are escaped once per process, and numbers and tokens
need none.

`table.render_rows` calls it and writes the placeholders of the rows the
browser already shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cached_property, lru_cache
from html import escape
from urllib.parse import quote

from django.http import HttpRequest
from django.template.backends.utils import csrf_input
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.translation import get_language

from connections.models import VinEntry, VinStatus
from connections.uploads.fixes import repeated_line

RETRYABLE = frozenset({VinStatus.ERROR, VinStatus.DISCONNECTED})


@lru_cache(maxsize=4096)
def said(text: str) -> str:
    """The portal's own words (labels, explanations), escaped once per process."""
    return escape(text)


def changed_label(moment: datetime, months: tuple[str, ...] | None = None) -> str:
    """`moment` as the `date` filter's "j M H:i:s" shows it ("4 Dec 09:05:07"),
    for a tenth of the cost: `dateformat.format` parses its format string anew
    each call, and a live table renders up to 100 rows at a time. `months`,
    `month_names()` made once for many rows."""
    month = months[moment.month] if months else MONTHS_3[moment.month].title()
    return f"{moment.day} {month} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"


def month_names() -> tuple[str, ...]:
    """The short month names in the active language, by number (1 to 12)."""
    return _month_names(get_language())


@lru_cache(maxsize=64)
def _month_names(language: str) -> tuple[str, ...]:
    return ("", *(str(MONTHS_3[number]).title() for number in range(1, 13)))


@lru_cache(maxsize=1024)
def row_links(upload_pk: int) -> dict[str, tuple[str, str]]:
    """The upload's row links by name, each as (before the row's id, after it):
    reversed once per upload, a row's id put in only for the links it shows."""
    urls = {
        "detail": reverse("entry_detail", args=[0]),
        "retry": reverse("entry_retry", args=[upload_pk, 0]),
        "remove": reverse("entry_remove", args=[upload_pk, 0]),
        "edit": reverse("entry_edit", args=[upload_pk, 0]),
    }
    # Ids are never 0: "/0/" is only ever the id's segment.
    return {name: tuple(url.rsplit("/0/", 1)) for name, url in urls.items()}


@dataclass(frozen=True)
class Frame:
    """What every row of the table shows the same way (the view's context),
    and what a row works out the same way: its links, its time zone and the
    month names of its last change."""

    submitted: bool
    managed: bool
    checking: bool
    show_eligibility: bool
    eligibility_labels: dict
    query: str
    request: HttpRequest
    consent_links_url: str
    links: dict[str, tuple[str, str]]
    zone: tzinfo
    months: tuple[str, ...]

    @classmethod
    def of(cls, context: dict, request: HttpRequest, consent_links_url: str) -> Frame:
        names = ("submitted", "managed", "checking", "show_eligibility", "eligibility_labels")
        return cls(
            *(context[name] for name in names),
            query=context["query"],
            request=request,
            consent_links_url=consent_links_url,
            links=row_links(context["upload"].pk),
            zone=timezone.get_current_timezone(),
            months=month_names(),
        )

    @cached_property
    def csrf_input(self) -> str:
        """The CSRF field of every form of the rows: made once (masking the
        token costs), and only when a row sent has a form (most have none)."""
        return str(csrf_input(self.request))

    def url(self, name: str, pk: int) -> str:
        before, after = self.links[name]
        return f"{before}/{pk}/{after}"


def entry_row(entry: VinEntry, frame: Frame) -> str:
    """One row, with its consent link cell already on the entry
    (`table.render_rows`)."""
    pk, line, label = entry.pk, entry.line_number, said(entry.status_label)
    changed = entry.status_changed_at.astimezone(frame.zone)
    vin = escape(entry.vin or entry.raw_vin or "(empty)")
    inferred = (
        ' <span class="muted" title="Read from the VIN">(from VIN)</span>'
        if entry.make_inferred
        else ""
    )
    eligibility = _eligibility(entry, frame) if frame.show_eligibility else ""
    return (
        f'\n      <tr id="entry-{pk}" data-key="{entry.live_key}" data-live-state="{label}">'
        f'\n        <td class="num" data-label="Line">{line}</td>'
        f'\n        <th scope="row" class="mono"><a href="{frame.url("detail", pk)}">{vin}</a></th>'
        f'\n        <td data-label="Make">{said(entry.make_label)}{inferred}</td>'
        f'\n        <td class="nowrap" data-label="Plate">{escape(entry.registration_plate)}</td>'
        f'\n        <td data-label="Status">{_status(entry, frame, label)}</td>{eligibility}'
        f'\n        <td data-label="What happened">{_what(entry, frame)}</td>'
        f'\n        <td data-label="Last update"><time datetime="{changed.isoformat()}">'
        f"{changed_label(changed, frame.months)}</time></td>"
        f'\n        <td class="row-actions">{_actions(entry, frame, vin)}</td>'
        "\n      </tr>"
    )


def _status(entry: VinEntry, frame: Frame, label: str) -> str:
    html = f'<span class="badge {entry.badge}">{label}</span>'
    if entry.is_stale:
        days = entry.age.days
        html += (
            f' <span class="badge warn" title="In progress for {days} days since it was sent">'
            f"stale · {days} d</span>"
        )
    if not frame.submitted and entry.validity == VinEntry.Validity.WARNING:
        html += ' <span class="badge warn">Valid, with a warning</span>'
    return html


def _eligibility(entry: VinEntry, frame: Frame) -> str:
    said_there = ""
    if entry.eligibility:
        said_there = said(frame.eligibility_labels.get(entry.eligibility, ""))
        if entry.eligibility_message:
            said_there += f": {escape(entry.eligibility_message)}"
    return f'\n        <td data-label="Eligibility">{said_there}</td>'


def _what(entry: VinEntry, frame: Frame) -> str:
    """What happened and the next step: the file's problems, the row it
    repeats, and our explanation of Volteras' answer (or its own message)."""
    html = ""
    if entry.problems and not entry.batch_id:
        items = "".join(f"<li>{escape(str(p))}</li>" for p in entry.problems)
        html += f'<ul class="plain">{items}</ul>'
    if entry.duplicate_of_id:
        repeated = repeated_line(entry.problems)
        text = f"Open line {repeated}" if repeated else "Open this VIN's page in the fleet"
        html += f'<a href="{frame.url("detail", entry.duplicate_of_id)}">{text}</a>'
    x = entry.explanation
    if x:
        codes = escape(", ".join(entry.error_codes)) if entry.error_codes else said(x.title)
        html += (
            f'<strong class="codes">{codes}</strong>: {said(x.explanation)} <em>Next:</em> '
            f'{said(x.next_step)} <span class="muted">({said(entry.who_acts)})</span>'
        )
    elif entry.message and entry.status != VinStatus.CONNECTED:
        html += escape(entry.message)
    return html


def _actions(entry: VinEntry, frame: Frame, vin: str) -> str:
    """The row's buttons: edit and remove before sending, a consent link where
    the owner's consent is the way forward, a retry where one can help."""
    if not frame.submitted:
        return _draft_actions(entry, frame) if frame.managed else ""
    if entry.consent_link_helps:
        return _consent_actions(entry, frame, vin)
    if entry.status in RETRYABLE and entry.retry_refusal() is None:
        return (
            f'<form method="post" action="{frame.url("retry", entry.pk)}">{frame.csrf_input}'
            f'<input type="hidden" name="return_query" value="{escape(frame.query)}">'
            f'<button type="submit" class="small" aria-label="Retry {vin}">Retry</button></form>'
        )
    return ""


def _draft_actions(entry: VinEntry, frame: Frame) -> str:
    pk, line, html = entry.pk, entry.line_number, ""
    if not frame.checking:
        back = f"?return_query={quote(frame.query, safe='/')}" if frame.query else ""
        edit = f"{frame.url('edit', pk)}{back}"
        focus = " autofocus" if getattr(entry, "autofocus", False) else ""
        html += (
            f'<a class="button small" id="edit-{pk}" href="{edit}" hx-get="{edit}"'
            ' hx-target="closest tr" hx-swap="outerHTML"'
            f' aria-label="Edit line {line}"{focus}>Edit</a>'
        )
    return html + (
        f'<form method="post" action="{frame.url("remove", pk)}">{frame.csrf_input}'
        f'<input type="hidden" name="return_query" value="{escape(frame.query)}">'
        f'<button type="submit" class="small" aria-label="Remove line {line}">Remove</button>'
        "</form>"
    )


def _consent_actions(entry: VinEntry, frame: Frame, vin: str) -> str:
    pk, html = entry.pk, ""
    link = entry.row_links[0] if entry.row_links else None
    if not link or not link.is_usable:
        # Ticked boxes belong to the "selected VINs" form above (form attribute:
        # no JS, no nested forms); a live refresh keeps them (live.js).
        html += (
            f'<label class="pick" for="pick-{pk}"><input type="checkbox" id="pick-{pk}"'
            f' name="entry" value="{pk}" form="consent-pick"> Select'
            f'<span class="visually-hidden"> {vin} for a consent link</span></label>'
        )
    if link:
        return html + entry.link_cell
    return html + (
        f'<form method="post" action="{frame.consent_links_url}">{frame.csrf_input}'
        f'<input type="hidden" name="entry" value="{pk}">'
        f'<button type="submit" class="small" aria-label="Create a consent link for {vin}">'
        "Consent link</button></form>"
    )
