"""The upload table's "needs you first" sort (issue 14)."""

import pytest

from connections.models import VinStatus
from connections.uploads import views
from connections.uploads.forms import EntryFilterForm
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
    form = EntryFilterForm({"sort": sort}, statuses=VinStatus.values, errors=[], makes=["FORD"])
    assert form.is_valid(), form.errors
    return [e.line_number for e in form.apply(upload.entries.all())]


def test_needs_you_first_then_in_progress_then_the_rest_by_line(table):
    assert lines(table, "needs") == [9, 11, 3, 12, 1, 2, 4, 5, 6, 7, 8, 10]
    assert lines(table, "line") == list(range(1, 13))
