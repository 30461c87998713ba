"""A corrected file uploaded again replaces the earlier draft instead of
piling up drafts.

The rule: an earlier upload of the same fleet that is still a draft (never
sent, not being checked) is offered for replacement when it has the same file
name as the new upload, or when at least half of its rows have a VIN that is
also in the new upload. Of several, the most recent one (of the last
`CANDIDATES`) is offered.

Replacing deletes the earlier draft and all its rows and keeps the new upload
as it is: nothing is merged, so no row changes without the manager seeing it.
The offer says how many of the earlier draft's rows are not in the new file
(those go with it) and links to its CSV export first; the new upload's rows
that were in the earlier draft get a timeline event naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from connections.models import Upload, VinEntry

# How many of the fleet's latest earlier drafts are looked at.
CANDIDATES = 5


@dataclass(frozen=True)
class Replaceable:
    """An earlier draft the new upload can replace, and what replacing it drops."""

    draft: Upload
    same_name: bool
    rows: int
    shared: int

    @property
    def missing(self) -> int:
        """Rows of the earlier draft whose VIN is not in the new upload (deleted with it)."""
        return self.rows - self.shared


def replaceable_draft(upload: Upload) -> Replaceable | None:
    """The earlier draft `upload` may replace (see the module's rule), or None."""
    if upload.state != Upload.State.DRAFT:
        return None
    drafts = Upload.objects.filter(
        fleet=upload.fleet_id, state=Upload.State.DRAFT, pk__lt=upload.pk
    ).order_by("-pk")[:CANDIDATES]
    vins = upload.entries.exclude(vin="").values("vin")
    for draft in drafts:
        rows = draft.entries.count()
        shared = draft.entries.filter(vin__in=vins).count()
        same_name = bool(upload.source_name) and (
            draft.source_name.casefold() == upload.source_name.casefold()
        )
        if rows and (same_name or shared * 2 >= rows):
            return Replaceable(draft, same_name, rows, shared)
    return None


def replace_draft(upload: Upload, draft: Upload, user) -> int | None:
    """Delete `draft` (an earlier draft of the same fleet) for `upload`, noting it
    on `upload`'s rows that repeat its VINs. The number of rows deleted, or None
    when `draft` is no longer a draft (sent meanwhile: nothing changes)."""
    if draft.fleet_id != upload.fleet_id or draft.pk >= upload.pk:
        return None
    name = f" ({draft.source_name})" if draft.source_name else ""
    who = getattr(user, "username", "") or "a manager"
    with transaction.atomic():
        repeats = list(
            upload.entries.filter(vin__in=draft.entries.exclude(vin="").values("vin")).values_list(
                "pk", flat=True
            )
        )
        rows = draft.delete_draft()
        if rows is None:
            return None
        VinEntry.objects.filter(pk__in=repeats).note(
            f"Replaces draft upload #{draft.pk}{name}: {who} deleted that draft and its "
            f"{rows} row{'s' if rows != 1 else ''} when this file was uploaded again",
            actor=user,
            action="replace",
            replaced_upload=draft.pk,
        )
    return rows
