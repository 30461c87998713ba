"""Deleting a draft upload (issue 14): managers only, drafts only, after a
confirmation naming the row count."""

import pytest
from django.urls import reverse

from connections.models import Upload, UploadSummary, VinEntry, VinEvent, VinStatus
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload
from connections.web.access import READ_ONLY
from tests.factories import add_entry, make_upload, make_vin
from tests.permissions import assert_access


@pytest.fixture
def draft(fleet, manager) -> Upload:
    return create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in range(3))))


def test_the_draft_page_offers_delete_to_managers_only(client, users, draft):
    client.force_login(users["manager"])
    body = client.get(draft.get_absolute_url()).content.decode()
    assert 'id="delete-draft"' in body
    assert reverse("upload_delete", args=[draft.pk]) in body
    client.force_login(users["support"])
    assert 'id="delete-draft"' not in client.get(draft.get_absolute_url()).content.decode()


def test_confirmation_names_the_row_count(client, manager, draft):
    client.force_login(manager)
    response = client.get(reverse("upload_delete", args=[draft.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "its <strong>3 rows</strong>" in body
    assert "Delete the draft and its 3 rows" in body
    assert Upload.objects.filter(pk=draft.pk).exists()  # a GET deletes nothing


def test_delete_removes_the_upload_and_its_rows(client, manager, fleet, draft):
    client.force_login(manager)
    client.get(draft.get_absolute_url())  # stores the summary, which goes too
    assert UploadSummary.objects.filter(upload=draft).exists()
    entry_ids = list(draft.entries.values_list("pk", flat=True))
    assert len(entry_ids) == 3
    response = client.post(reverse("upload_delete", args=[draft.pk]), follow=True)
    assert response.redirect_chain[0] == (fleet.get_absolute_url(), 302)
    message = f"Draft upload #{draft.pk} and its 3 rows were deleted."
    assert message in response.content.decode()
    assert not Upload.objects.filter(pk=draft.pk).exists()
    assert not VinEntry.objects.filter(pk__in=entry_ids).exists()
    assert not VinEvent.objects.filter(entry__in=entry_ids).exists()
    assert not UploadSummary.objects.filter(upload_id=draft.pk).exists()


def test_access(client, users, draft):
    url = reverse("upload_delete", args=[draft.pk])
    assert_access(client, url, users, support=403, forbidden_says=READ_ONLY)
    # POST: support is refused and nothing goes; outsiders do not learn it exists.
    for who, expected in (("support", 403), ("outsider", 404)):
        client.force_login(users[who])
        assert client.post(url).status_code == expected, who
        assert Upload.objects.filter(pk=draft.pk).exists()
    client.force_login(users["manager"])
    assert client.post(url).status_code == 302
    assert not Upload.objects.filter(pk=draft.pk).exists()


@pytest.mark.parametrize("state", [Upload.State.SUBMITTED, Upload.State.CHECKING])
def test_only_drafts_are_deleted(client, manager, fleet, state):
    upload = make_upload(fleet, manager, state=state)
    entry = add_entry(upload, VinStatus.PROCESSING if state == "submitted" else VinStatus.READY)
    client.force_login(manager)
    url = reverse("upload_delete", args=[upload.pk])
    page = client.get(upload.get_absolute_url()).content.decode()
    assert 'id="delete-draft"' not in page
    confirm = client.get(url).content.decode()
    assert "Only a draft can be deleted" in confirm and "Delete the draft" not in confirm
    response = client.post(url, follow=True)
    assert response.redirect_chain[0] == (upload.get_absolute_url(), 302)
    assert "Only a draft upload can be deleted" in response.content.decode()
    assert Upload.objects.filter(pk=upload.pk).exists()
    assert VinEntry.objects.filter(pk=entry.pk).exists()


def test_delete_draft_refuses_once_it_is_no_longer_a_draft(fleet, manager, draft):
    """The model re-reads the state under a lock: a stale draft object cannot
    delete an upload that was submitted meanwhile."""
    Upload.objects.filter(pk=draft.pk).update(state=Upload.State.SUBMITTED)
    assert draft.delete_draft() is None
    assert draft.entries.count() == 3
