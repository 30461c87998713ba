"""The upload table's "needs you first" sort (issue 14)."""

import pytest

from connections.models import Attention, UploadSummary, VinStatus
from connections.models.summaries import count_groups, entry_groups
from connections.uploads import views
from connections.uploads.forms import apply_filters, clean_filters
from tests.factories import add_entry, make_upload

# line: status (and dismissed): 12 rows, so with pages of 5 the two that need
# action (lines 9 and 11) are both on page 2 or 3 when sorted by line.
STATUSES = {
    3: VinStatus.PROCESSING,
    7: VinStatus.CONNECTED,
    9: VinStatus.ERROR,
    10: VinStatus.CONNECTION_REQUIRED,  # dismissed below: not "needs you"
    11: VinStatus.DISCONNECTED,
    12: VinStatus.PENDING,
}


@pytest.fixture
def table(fleet, manager, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 5)
    upload = make_upload(fleet, manager)
    for line in range(1, 13):
        status = STATUSES.get(line, VinStatus.CONNECTED)
        add_entry(upload, status, line=line, dismissed=line == 10)
    return upload


def lines(upload, sort: str) -> list[int]:
    filters = clean_filters((("sort", sort),), (), ("FORD",))
    assert filters is not None
    return [e.line_number for e in apply_filters(upload.entries.all(), filters)]


def test_needs_you_first_then_in_progress_then_the_rest_by_line(table):
    assert lines(table, "needs") == [9, 11, 3, 12, 1, 2, 4, 5, 6, 7, 8, 10]
    assert lines(table, "line") == list(range(1, 13))


def note_of(client, upload, **params) -> str:
    body = client.get(upload.get_absolute_url(), params).content.decode()
    if 'id="needs-you-note"' not in body:
        return ""
    return body.split('id="needs-you-note"')[1].split("</p>")[0]


def test_the_table_says_how_many_rows_needing_you_are_on_other_pages(client, manager, table):
    client.force_login(manager)
    note = note_of(client, table)
    assert "2 rows need you, 2 of them on other pages." in note
    assert f'href="{table.get_absolute_url()}?sort=needs">Show them first</a>' in note
    assert "2 rows need you, 1 of them on other pages." in note_of(client, table, page=2)
    assert note_of(client, table, sort="needs") == ""  # both on the first page
    assert "not shown here" in note_of(client, table, status=VinStatus.CONNECTED)


def test_the_note_reads_the_stored_counts(client, manager, table):
    client.force_login(manager)
    note_of(client, table)  # stores the counts of this version
    summary = UploadSummary.objects.get(upload=table)
    # Pretend the stored count saw 3 rows needing you in each of its two groups
    # (ERROR, DISCONNECTED): the note believes it, so it runs no count of its own.
    summary.groups = [
        [*row[:-1], 3 if row[4] == Attention.NEEDS_YOU else row[-1]] for row in summary.groups
    ]
    summary.save()
    assert "6 rows need you" in note_of(client, table)
    assert entry_groups(table).needs_you == 6
    assert count_groups(table).needs_you == 2
