"""The live table's counts of an upload, kept per upload version.

The summary bar, the filters' choices and the pager's total all come from one
count of the upload's entries by (status, error code, make, validity): a scan
of every entry, about 40 ms for a 100,000-VIN upload on PostgreSQL, on every
poll and page view. An upload's version moves with every change to its
entries (`VinEntry.observe()` and the bulk moves bump it in the same
transaction), so the count of one version never changes: it is made once,
stored with the version it was made for, and used only while the upload is
still at that version. A version the row does not match is counted afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from connections.explanations import EXPLANATIONS
from connections.models.entries import VinEntry, VinStatus
from connections.models.statuses import Attention
from connections.models.uploads import Upload

# (status, error_code, make, validity, attention, number of entries)
Group = tuple[str, str, str, str, int, int]


@dataclass(frozen=True)
class EntryGroups:
    """An upload's entries counted by (status, error code, make, validity, attention)."""

    rows: tuple[Group, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Entries per status."""
        counts: dict[str, int] = {}
        for status, *_, n in self.rows:
            counts[status] = counts.get(status, 0) + n
        return counts

    @property
    def total(self) -> int:
        return sum(row[-1] for row in self.rows)

    @property
    def errors(self) -> set[str]:
        return {row[1] for row in self.rows if row[1]}

    @property
    def makes(self) -> set[str]:
        return {row[2] for row in self.rows if row[2]}

    @property
    def warnings(self) -> int:
        return sum(row[-1] for row in self.rows if row[3] == VinEntry.Validity.WARNING)

    @property
    def needs_you(self) -> int:
        """Entries needing the fleet's manager (`Attention.NEEDS_YOU`), what the
        table's "needs you first" sort puts first."""
        return sum(row[-1] for row in self.rows if row[4] == Attention.NEEDS_YOU)

    @property
    def waiting_for_consent(self) -> int:
        """Entries whose way forward is the owner's consent
        (`VinEntry.consent_link_helps`): CONNECTION_REQUIRED, and the errors a
        consent link fixes (VIN_UPLOAD_NOT_SUPPORTED)."""
        codes = {code for code, x in EXPLANATIONS.items() if x.consent_link}
        return sum(
            n
            for s, e, *_, n in self.rows
            if s == VinStatus.CONNECTION_REQUIRED or (s == VinStatus.ERROR and e in codes)
        )

    def matching(self, *, status: str = "", error: str = "", make: str = "") -> int:
        """How many entries the table's status/error/make filters keep ("" = any):
        the pager's total without a COUNT of its own."""
        return sum(
            n
            for s, e, m, *_, n in self.rows
            if (not status or s == status) and (not error or e == error) and (not make or m == make)
        )


class UploadSummary(models.Model):
    """`EntryGroups` of one upload as they were at `version`."""

    upload = models.OneToOneField(
        Upload, on_delete=models.CASCADE, primary_key=True, related_name="summary"
    )
    version = models.PositiveBigIntegerField()
    groups = models.JSONField(default=list)

    class Meta:
        verbose_name_plural = "upload summaries"

    def __str__(self) -> str:
        return f"Counts of upload {self.upload_id} at version {self.version}"


def count_groups(upload: Upload) -> EntryGroups:
    """A fresh count of the upload's entries (one scan)."""
    rows = (
        upload.entries.values_list("status", "error_code", "make", "validity", "attention")
        .annotate(n=models.Count("pk"))
        .order_by("status", "error_code", "make", "validity", "attention")
    )
    return EntryGroups(tuple(rows))


def _current_shape(stored: UploadSummary) -> bool:
    return all(len(row) == GROUP_WIDTH for row in stored.groups)


GROUP_WIDTH = 6


def entry_groups(upload: Upload) -> EntryGroups:
    """The upload's `EntryGroups` at `upload.version`: stored ones when they were
    made for that version, else a fresh count, stored for the next reader.

    `upload.version` was read before the count, so a change committed in between
    can only make the stored count newer than its version, never older; and a
    newer version never matches it. Load the upload with
    `select_related("summary")` to spare the read of the stored count."""
    try:
        stored = upload.summary
    except UploadSummary.DoesNotExist:
        stored = None
    # A count stored before `attention` was counted has one column less: counted afresh.
    if stored is not None and stored.version == upload.version and _current_shape(stored):
        return EntryGroups(tuple(tuple(row) for row in stored.groups))
    fresh = count_groups(upload)
    summary = UploadSummary(upload=upload, version=upload.version, groups=list(fresh.rows))
    # One statement whether or not a row exists; two readers of different
    # versions racing here leave one of them stored, which the other version
    # then simply does not match.
    UploadSummary.objects.bulk_create(
        [summary],
        update_conflicts=True,
        unique_fields=["upload"],
        update_fields=["version", "groups"],
    )
    upload.summary = summary
    return fresh
