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
from functools import lru_cache
from html import escape
from urllib.parse import quote

from connections.models import VinEntry, VinStatus

RETRYABLE = frozenset({VinStatus.ERROR, VinStatus.DISCONNECTED})


@lru_cache(maxsize=4096)
def said(text: str) -> str:
    """The portal's own words (labels, explanations), escaped once per process."""
    return escape(text)


@dataclass(frozen=True)
class Frame:
    """What every row of the table shows the same way (the view's context)."""

    submitted: bool
    managed: bool
    checking: bool
    show_eligibility: bool
    eligibility_labels: dict
    query: str
    csrf_input: str
    consent_links_url: str

    @classmethod
    def of(cls, context: dict, csrf_input: str, consent_links_url: str) -> Frame:
        names = ("submitted", "managed", "checking", "show_eligibility", "eligibility_labels")
        return cls(
            *(context[name] for name in names),
            query=context["query"],
            csrf_input=str(csrf_input),
            consent_links_url=consent_links_url,
        )


def entry_row(entry: VinEntry, frame: Frame) -> str:
    """One row, with its links, its last change and its consent link cell
    already on the entry (`table.dress_rows`, `table.render_rows`)."""
    pk, line, label = entry.pk, entry.line_number, said(entry.status_label)
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
        f'\n        <th scope="row" class="mono"><a href="{entry.detail_url}">{vin}</a></th>'
        f'\n        <td data-label="Make">{said(entry.make_label)}{inferred}</td>'
        f'\n        <td class="nowrap" data-label="Plate">{escape(entry.registration_plate)}</td>'
        f'\n        <td data-label="Status">{_status(entry, frame, label)}</td>{eligibility}'
        f'\n        <td data-label="What happened">{_what(entry)}</td>'
        f'\n        <td data-label="Last update"><time datetime="{entry.changed_iso}">'
        f"{entry.changed_label}</time></td>"
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


def _what(entry: VinEntry) -> str:
    """What happened and the next step: the file's problems, the row it
    repeats, and our explanation of Volteras' answer (or its own message)."""
    html = ""
    if entry.problems and not entry.batch_id:
        items = "".join(f"<li>{escape(str(p))}</li>" for p in entry.problems)
        html += f'<ul class="plain">{items}</ul>'
    if entry.duplicate_of_id:
        repeated = entry.repeated_line
        text = f"Open line {repeated}" if repeated else "Open this VIN's page in the fleet"
        html += f'<a href="{entry.duplicate_url}">{text}</a>'
    x = entry.explanation
    if x:
        codes = escape(", ".join(entry.error_codes)) if entry.error_codes else said(x.title)
        html += (
            f"<strong>{codes}</strong>: {said(x.explanation)} <em>Next:</em> "
            f'{said(x.next_step)} <span class="muted">({said(entry.who_acts)})</span>'
        )
    elif entry.message and entry.status != VinStatus.CONNECTED:
        html += escape(entry.message)
    return html


def _actions(entry: VinEntry, frame: Frame, vin: str) -> str:
    """The row's buttons: edit and remove before sending, a consent link where
    the owner's consent is the way forward, a retry where one can help."""
    csrf = frame.csrf_input
    if not frame.submitted:
        return _draft_actions(entry, frame) if frame.managed else ""
    if entry.consent_link_helps:
        return _consent_actions(entry, frame, vin)
    if entry.status in RETRYABLE and entry.retry_refusal() is None:
        return (
            f'<form method="post" action="{entry.retry_url}">{csrf}'
            f'<input type="hidden" name="return_query" value="{escape(frame.query)}">'
            f'<button type="submit" class="small" aria-label="Retry {vin}">Retry</button></form>'
        )
    return ""


def _draft_actions(entry: VinEntry, frame: Frame) -> str:
    pk, line, html = entry.pk, entry.line_number, ""
    if not frame.checking:
        back = f"?return_query={quote(frame.query, safe='/')}" if frame.query else ""
        edit = f"{entry.edit_url}{back}"
        focus = " autofocus" if getattr(entry, "autofocus", False) else ""
        html += (
            f'<a class="button small" id="edit-{pk}" href="{edit}" hx-get="{edit}"'
            ' hx-target="closest tr" hx-swap="outerHTML"'
            f' aria-label="Edit line {line}"{focus}>Edit</a>'
        )
    return html + (
        f'<form method="post" action="{entry.remove_url}">{frame.csrf_input}'
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
