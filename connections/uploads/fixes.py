"""Fixing a draft's row in place: the manager's corrected values are validated
again exactly as an uploaded row is (`validation.validate_one`), duplicates in
the upload and VINs already in the fleet included, and stored with a timeline
event saying what changed (`VinEntryQuerySet.correct`).

The rows that a duplicate skipped are linked to the row they repeat
(`VinEntry.duplicate_of`): `link_repeats()` sets that link for a new upload,
and a fix that takes a VIN away from a row checks the rows that repeated it
again, so the VIN is still sent once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from connections.makes import make_label
from connections.models import Upload, VinEntry, VinStatus
from connections.uploads.rows import RawRow
from connections.uploads.validation import DUPLICATE_OF_LINE, INVALID, ValidatedRow, validate_one
from connections.vin import normalise_vin

# What a manager may correct on a row, with the words the timeline uses.
EDITABLE: dict[str, str] = {
    "vin": "VIN",
    "make": "make",
    "country_code": "country",
    "registration_plate": "plate",
    "tags": "tags",
}


# The line number in a skipped duplicate's problem.
_REPEATED_LINE = re.compile(re.escape(DUPLICATE_OF_LINE) + r" (\d+)")


@dataclass
class Fix:
    """A fix's outcome: the row as validated, and whether it was stored (a row
    that would still be invalid is not: the form shows why, field by field)."""

    row: ValidatedRow
    saved: bool
    rechecked: int = 0


def live_statuses() -> set[str]:
    """The statuses of a fleet's VINs that a new upload skips (connected or in progress)."""
    return {VinStatus.CONNECTED, *VinStatus.in_progress()}


def repeated_line(problems: list[str]) -> int | None:
    """The line of its own upload that a skipped row repeats, read from its
    problem (`validation.DUPLICATE_OF_LINE`); None when it repeats a VIN already
    in the fleet instead."""
    for problem in problems:
        match = _REPEATED_LINE.match(problem)
        if match:
            return int(match.group(1))
    return None


def tags_text(tags: list[dict[str, str]]) -> str:
    """Tags as the upload file writes them: `key=value;key=value`."""
    return ";".join(f"{t.get('key', '')}={t.get('value', '')}" for t in tags or [])


def initial_values(entry: VinEntry) -> dict[str, str]:
    """The edit form's values: the row as stored (a make read from the VIN is left
    empty, so that a corrected VIN is read again)."""
    return {
        "vin": entry.vin or entry.raw_vin,
        "make": "" if entry.make_inferred else entry.make_label or entry.make,
        "country_code": entry.country_code,
        "registration_plate": entry.registration_plate,
        "tags": tags_text(entry.tags),
    }


def fix_entry(entry: VinEntry, values: Mapping[str, str], user) -> Fix | None:
    """Validate `values` (the `EDITABLE` fields) for this draft row and store them
    unless the row would still be invalid. None when the upload is no longer a
    draft (sent, or being checked): the upload's lock makes a fix and a Send
    racing each other take turns."""
    with transaction.atomic():
        upload = (
            Upload.objects.select_for_update()
            .select_related("fleet")
            .filter(pk=entry.upload_id, state=Upload.State.DRAFT)
            .first()
        )
        current = upload and upload.entries.filter(pk=entry.pk).first()
        if current is None:
            return None
        old_vin = current.vin
        row, changes = _check(upload, current, {**_kept_values(current), **values})
        if row.validity == INVALID:
            return Fix(row, saved=False)
        detail = _describe(current, row, user)
        VinEntry.objects.correct(current, changes, detail, actor=user)
        rechecked = (
            _check_repeats(upload, old_vin, current.line_number) if old_vin != row.vin else 0
        )
    entry.refresh_from_db()
    return Fix(row, saved=True, rechecked=rechecked)


def _kept_values(entry: VinEntry) -> dict[str, str]:
    """The row's fields a fix does not change, as validation reads them."""
    return {
        "model": entry.model,
        "model_year": str(entry.model_year or ""),
        "owner_email": entry.owner_email,
    }


def _check(upload: Upload, entry: VinEntry, values: dict[str, str]) -> tuple[ValidatedRow, dict]:
    """Validate one row of `upload` against the rest of the upload and the fleet;
    the row and the fields to store."""
    vin = normalise_vin(values.get("vin", ""))
    sent = (
        upload.entries.filter(vin=vin, status=VinStatus.READY)
        .exclude(pk=entry.pk)
        .order_by("line_number")
        .values_list("pk", "line_number")
        .first()
    )
    existing = None
    if not upload.include_existing:
        existing = (
            VinEntry.objects.filter(
                fleet=upload.fleet, vin=vin, superseded=False, status__in=live_statuses()
            )
            .exclude(upload=upload)
            .order_by("-pk")
            .values_list("pk", "status")
            .first()
        )
    row = validate_one(
        RawRow(
            entry.line_number, {k: values.get(k, "") for k in (*EDITABLE, *_kept_values(entry))}
        ),
        default_country=upload.fleet.default_country_code,
        default_region=upload.fleet.default_region,
        existing_vins={vin: existing[1]} if existing else {},
        sent_line=sent[1] if sent else None,
    )
    changes = row.entry_fields()
    del changes["line_number"]
    repeated = sent or existing
    changes["duplicate_of_id"] = repeated[0] if row.skip_reason and repeated else None
    if row.vin != entry.vin:
        # An eligibility answer was about the old VIN.
        changes.update(eligibility="", eligibility_message="")
    return row, changes


def _check_repeats(upload: Upload, vin: str, line: int) -> int:
    """A fix took `vin` away from a row: check again the rows that were skipped
    as its duplicates (the first of them is now the one sent). Returns how many changed."""
    changed = 0
    repeats = upload.entries.filter(vin=vin, status=VinStatus.SKIPPED).order_by("line_number")
    for entry in repeats:
        row, changes = _check(upload, entry, {**initial_values(entry), **_kept_values(entry)})
        if row.validity == INVALID or (
            changes["status"] == entry.status
            and changes["problems"] == entry.problems
            and changes["duplicate_of_id"] == entry.duplicate_of_id
        ):
            continue
        now = "ready to send" if row.status == VinStatus.READY else "still skipped"
        VinEntry.objects.correct(
            entry, changes, f"Checked again after line {line} was edited: {now}."
        )
        changed += 1
    return changed


def _describe(entry: VinEntry, row: ValidatedRow, user) -> str:
    """The timeline's words for a fix: "Edited by alice: VIN A → B, make BMW"."""
    before = initial_values(entry)
    after = {
        "vin": row.vin or row.raw_vin,
        "make": make_label(row.make) if row.make and not row.make_inferred else "",
        "country_code": row.country_code,
        "registration_plate": row.registration_plate,
        "tags": tags_text(row.tags),
    }
    parts = []
    for name, label in EDITABLE.items():
        if before[name] == after[name]:
            continue
        if not before[name]:
            parts.append(f"{label} {after[name]}")
        elif not after[name]:
            parts.append(f"{label} {before[name]} removed")
        else:
            parts.append(f"{label} {before[name]} → {after[name]}")
    who = getattr(user, "username", "") or "a manager"
    return f"Edited by {who}: " + (", ".join(parts) if parts else "checked again, nothing changed")


def link_repeats(upload: Upload) -> int:
    """Link each skipped row of a new upload to the row it repeats: the first
    earlier row of the upload with its VIN, else the fleet's current row of
    that VIN (one UPDATE of the skipped rows only)."""
    earlier = (
        VinEntry.objects.filter(
            upload=upload, vin=OuterRef("vin"), line_number__lt=OuterRef("line_number")
        )
        .exclude(status=VinStatus.INVALID)
        .order_by("line_number")
        .values("pk")[:1]
    )
    in_fleet = (
        VinEntry.objects.filter(
            fleet=upload.fleet_id, vin=OuterRef("vin"), superseded=False, status__in=live_statuses()
        )
        .exclude(upload=upload)
        .order_by("-pk")
        .values("pk")[:1]
    )
    return VinEntry.objects.filter(upload=upload, status=VinStatus.SKIPPED).update(
        duplicate_of=Coalesce(Subquery(earlier), Subquery(in_fleet))
    )
