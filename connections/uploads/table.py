"""The live table's summary of an upload: counts per status, the progress bar's
segments, and whether the table should still poll (and how fast)."""

from __future__ import annotations

from datetime import datetime

from django.utils.dates import MONTHS_3

from connections.models import STATUS_BADGES, VinStatus


def summary(counts: dict[str, int], warnings: int = 0, needs_consent: int = 0) -> dict:
    total = sum(counts.values())
    final = sum(n for status, n in counts.items() if status in VinStatus.final())
    ordered = [
        (VinStatus(s) if s in VinStatus.values else s, counts[s], badge(s))
        for s in VinStatus.values
        if counts.get(s)
    ]
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


def entry_key(entry, frame: tuple) -> tuple:
    """Everything a live table row shows, as a tuple (the row's key is its
    digest): the entry's fields, its consent link's state, the time-dependent
    stale badge, and `frame`, what the whole table's rows depend on (submitted,
    managed, eligibility shown, the filter query in the row forms)."""
    link = entry.row_links[0] if getattr(entry, "row_links", None) else None
    return (
        frame,
        entry.pk,
        entry.line_number,
        entry.raw_vin,
        entry.vin,
        entry.make,
        entry.make_inferred,
        entry.registration_plate,
        entry.validity,
        entry.problems,
        entry.batch_id is None,
        entry.status,
        entry.error_codes,
        entry.message,
        entry.action_category,
        entry.can_retry,
        entry.superseded,
        entry.eligibility,
        entry.eligibility_message,
        entry.status_changed_at,
        entry.is_stale and entry.age.days,
        link and (link.pk, link.state, link.is_usable, link.expires_at),
    )


def changed_label(moment: datetime) -> str:
    """`moment` as the `date` filter's "j M H:i:s" shows it ("4 Dec 09:05:07"),
    for a tenth of the cost: `dateformat.format` parses its format string anew
    each call, and a live table renders up to 100 rows at a time."""
    return f"{moment.day} {MONTHS_3[moment.month].title()} {moment:%H:%M:%S}"
