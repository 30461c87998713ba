"""The live table's summary of an upload: counts per status, the progress bar's
segments, and whether the table should still poll (and how fast); its rows'
keys, and the rows themselves."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.template.loader import render_to_string

from connections.models import STATUS_BADGES, Attention, VinStatus
from connections.uploads.row_html import Frame, entry_row

# Every status in order (`VinStatus.values` is worked out anew at every use).
STATUSES = tuple(VinStatus.values)


def summary(counts: dict[str, int], warnings: int = 0, needs_consent: int = 0) -> dict:
    total = sum(counts.values())
    final = sum(n for status, n in counts.items() if status in VinStatus.final())
    ordered = [(VinStatus(s), counts[s], badge(s)) for s in STATUSES if counts.get(s)]
    segments = [
        (css, round(100 * n / total, 2))
        for css, n in (
            ("ok", counts.get(VinStatus.CONNECTED, 0)),
            ("warn", counts.get(VinStatus.CONNECTION_REQUIRED, 0)),
            (
                "bad",
                sum(
                    counts.get(s, 0)
                    for s in (VinStatus.ERROR, VinStatus.INCOMPATIBLE, VinStatus.DISCONNECTED)
                ),
            ),
            # Never sent (invalid, skipped) is final too: the coloured width is the number.
            ("off", counts.get(VinStatus.INVALID, 0) + counts.get(VinStatus.SKIPPED, 0)),
        )
        if total and n
    ]
    waiting = {s for s, n in counts.items() if n and s not in VinStatus.final()}
    return {
        "counts": ordered,
        "total": total,
        "final": final,
        "percent": round(100 * final / total) if total else 100,
        "segments": segments,
        "settled": not waiting,
        "slow": bool(waiting) and waiting <= VinStatus.slow_moving(),
        "sendable": counts.get(VinStatus.READY, 0),
        "needs_consent": needs_consent,
        "invalid": counts.get(VinStatus.INVALID, 0),
        "skipped": counts.get(VinStatus.SKIPPED, 0),
        "warnings": warnings,
    }


def badge(status: str) -> str:
    return STATUS_BADGES.get(status, "off")


class RowKeys:
    """The keys of one answer's rows (`page_rows` asks for each). A row's key
    names everything the row shows: its fields as read, its consent link's
    state, its stale badge (which moves with time), and `frame`, what all the
    table's rows depend on (submitted, managed, eligibility shown, the filter
    query in the row forms).

    On PostgreSQL the row's version (`models.composed.RowVersion`) names its
    fields, and the rest is a digest made once per answer for each (stale
    badge, link) it meets: most rows share one. Elsewhere the key is a digest
    of all of it, the fields' values as read (`page_rows.KeyedRow.key_values`)
    included. Both are hexadecimal digits, a plain token. `digest` is the
    live regions' (`web.live.row_key`), of fixed length."""

    def __init__(self, frame: tuple, digest: Callable[..., str]) -> None:
        self.frame = frame
        self.digest = digest
        self._around: dict[tuple, str] = {}

    def __call__(self, row) -> str:
        link = row.row_links[0] if row.row_links else None
        around = (
            row.is_stale and row.age.days,
            link and (link.pk, link.state, link.is_usable, link.expires_at),
        )
        if row.row_version is None:
            return self.digest(self.frame, row.key_values, *around)
        rest = self._around.get(around)
        if rest is None:
            rest = self._around[around] = self.digest(self.frame, *around)
        # The digest's length is fixed: the version is what comes before it.
        return f"{row.row_version}{rest}"


# A row the browser already shows at its key (connections/web/live.py).
PLACEHOLDER = '\n      <tr id="entry-{}" data-key="{}" data-live-keep></tr>'


def render_rows(request: HttpRequest, rows: list, context: dict, consent_links_url: str) -> str:
    """The table's rows as HTML (escaped): each row the browser already shows
    (`live_kept`) as a bare placeholder (its id and key, both plain tokens),
    the others whole (`row_html`). A row's consent link cell, rare, is the
    template the consent pages share."""
    frame = None
    html = []
    for entry in rows:
        if entry.live_kept:
            html.append(PLACEHOLDER.format(entry.pk, entry.live_key))
            continue
        if frame is None:
            frame = Frame.of(context, request, consent_links_url)
        if entry.row_links and entry.consent_link_helps:
            entry.link_cell = render_to_string(
                "connections/consent/vin_link_cell.html", {"link": entry.row_links[0]}
            )
        html.append(entry_row(entry, frame))
    return "".join(html)


def needs_you_note(total: int, rows, params: dict[str, str]) -> dict | None:
    """How many rows need the manager and how many of them this page does not
    show ("8 rows need you, 5 of them on other pages"): `total` from the
    upload's stored counts (`EntryGroups.needs_you`), the rows of this page
    counted as they are rendered; None when this page shows them all. With a
    filter on (`params`, the table's), the others are "not shown here"."""
    filtered = any(params.get(k) for k in ("status", "error", "make", "q"))
    here = sum(1 for entry in rows if entry.attention == Attention.NEEDS_YOU)
    if total <= here:
        return None
    return {"total": total, "elsewhere": total - here, "filtered": filtered}
