"""The upload as its live table's poll reads it: one statement that checks the
user may see it and brings its version, fleet and stored counts.

Every open table asks every 2 s. Most polls find the version the browser
already has and answer 204 from the version alone; the others need the upload
with its fleet and counts, which come in the same row, so no poll reads the
upload twice. The statement is composed once per upload and user
(`models.composed`): who may see a fleet is `Fleet.objects.visible_to`, the one
rule, whose membership and support checks run in the statement each time; only
whether the user is an admin is composed in, so it is part of the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from connections.models import Fleet, Upload
from connections.models.composed import Statement, composed


@dataclass(frozen=True)
class Polled:
    """The polled upload's row as read: its `version`, and the upload itself
    built from the same row only when asked (`upload()`)."""

    statement: Statement
    row: tuple
    version: int

    def upload(self) -> Upload:
        return self.statement.objects([self.row])[0]


def polled_upload(user, upload_id: int) -> Polled | None:
    """Upload `upload_id` as `user` may see it (None when they may not, or it
    is not there), with its fleet and stored counts (`select_related`)."""
    if not user.is_authenticated or not user.is_active:
        return None
    statement = composed(
        ("polled-upload", upload_id, user.pk, user.is_superuser),
        lambda: Upload.objects.select_related("fleet", "summary").filter(
            pk=upload_id, fleet__in=Fleet.objects.visible_to(user)
        ),
    )
    rows = statement.raw_rows()
    if not rows:
        return None
    return Polled(statement, rows[0], rows[0][_version_at(statement)])


def _version_at(statement: Statement) -> int:
    """Where the upload's own `version` is in the statement's row (its counts
    have a `version` too)."""
    select = statement.compiler.select
    for at in statement.compiler.klass_info["select_fields"]:
        if select[at][0].target.attname == "version":
            return at
    raise LookupError("The polled upload's statement does not read its version.")
