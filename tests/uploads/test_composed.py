"""Statements composed once (`connections.models.composed`) answer what the
ORM answers, run after run, as the data under them changes."""

from __future__ import annotations

import pytest

from connections.models import Upload, UploadSummary, VinEntry, VinStatus
from connections.models.composed import compose, composed
from tests.factories import add_entry, make_upload

COLUMNS = (
    "pk",
    "line_number",
    "vin",
    "problems",
    "error_codes",
    "tags",
    "can_retry",
    "status_changed_at",
)


@pytest.fixture
def entries_upload(fleet, manager) -> Upload:
    upload = make_upload(fleet, manager)
    add_entry(
        upload,
        VinStatus.ERROR,
        codes=["OEM_VEHICLE_OFFLINE"],
        tags=[{"key": "depot", "value": "Leeds"}],
    )
    add_entry(upload, VinStatus.CONNECTED)
    return upload


def test_rows_are_the_orm_values_run_after_run(entries_upload):
    queryset = lambda: VinEntry.objects.filter(upload=entries_upload).order_by("line_number")  # noqa: E731
    statement = compose(queryset().values_list(*COLUMNS))
    before = statement.rows()
    assert before == list(queryset().values_list(*COLUMNS))
    assert [tuple(statement.convert_row(row)) for row in statement.raw_rows()] == before
    # JSON decoded as the ORM decodes it.
    assert before[0][3:6] == ([], ["OEM_VEHICLE_OFFLINE"], [{"key": "depot", "value": "Leeds"}])
    errored = entries_upload.entries.get(status=VinStatus.ERROR)
    errored.observe(VinStatus.CONNECTED, "poll")
    add_entry(entries_upload, VinStatus.PENDING, problems=["The check digit is wrong."])
    # The same statement, run again, reads the rows as they are now.
    rows = statement.rows()
    assert rows == list(queryset().values_list(*COLUMNS))
    assert len(rows) == 3
    assert rows[0][4] == []
    assert rows[0][7] > before[0][7]


def test_objects_carry_what_the_queryset_selects_related(entries_upload):
    statement = compose(
        Upload.objects.select_related("fleet", "summary").filter(pk=entries_upload.pk)
    )
    # No stored counts yet: the upload knows it has none, without a query.
    [upload] = statement.objects()
    with pytest.raises(UploadSummary.DoesNotExist):
        upload.summary  # noqa: B018
    UploadSummary.objects.create(upload=entries_upload, version=3, groups=[["ERROR", 1]])
    [upload] = statement.objects()
    assert upload == entries_upload
    assert upload.fleet.slug == entries_upload.fleet.slug
    assert (upload.summary.version, upload.summary.groups) == (3, [["ERROR", 1]])
    assert upload.created_at == entries_upload.created_at


def test_a_statement_that_matches_nothing_reads_no_rows(entries_upload):
    assert compose(VinEntry.objects.none().values_list("pk")).rows() == []
    assert compose(Upload.objects.filter(pk=entries_upload.pk + 1000)).objects() == []


def test_a_key_keeps_its_first_statement(entries_upload):
    made = []

    def queryset():
        made.append(1)
        return Upload.objects.filter(pk=entries_upload.pk)

    key = ("test-composed", entries_upload.pk)
    first = composed(key, queryset)
    assert composed(key, queryset) is first
    assert made == [1]
