"""A corrected file uploaded again offers to replace the earlier draft (issue 14):
same file name, or at least half of the draft's VINs in the new file."""

import pytest
from django.urls import reverse

from connections.models import Upload, VinEvent, VinStatus
from connections.uploads.replacing import replaceable_draft
from connections.web.access import READ_ONLY
from tests.factories import make_upload, make_vin, uploaded

FIRST = "vin,make\n" + "\n".join([f"{make_vin(1)},Ford", "WBA12,Ford", f"{make_vin(3)},Ford"])
FIXED = "vin,make\n" + "\n".join([f"{make_vin(1)},Ford", f"{make_vin(2)},Ford"])


@pytest.fixture
def first(fleet, manager) -> Upload:
    return uploaded(fleet, manager, FIRST, filename="fleet.csv", source_name="fleet.csv")


def offer_of(client, upload) -> str:
    body = client.get(upload.get_absolute_url()).content.decode()
    return (
        body.split('id="replace-offer"')[1].split("</section>")[0]
        if "replace-offer" in body
        else ""
    )


def test_same_file_name_is_offered_with_what_would_go(client, manager, fleet, first):
    again = uploaded(fleet, manager, FIXED, filename="FLEET.csv", source_name="FLEET.csv")
    offer = replaceable_draft(again)
    assert (offer.draft, offer.same_name, offer.rows, offer.shared, offer.missing) == (
        first,
        True,
        3,
        1,
        2,
    )
    client.force_login(manager)
    text = offer_of(client, again)
    assert "has the same file name as this one" in text
    assert "2 of its rows have VINs that are not in this file" in text
    assert reverse("upload_export", args=[first.pk]) in text
    assert f"Replace draft #{first.pk} with this upload" in text


def test_shared_vins_are_offered_without_the_same_name(client, fleet, manager):
    earlier = uploaded(
        fleet, manager, f"{make_vin(1)}\n{make_vin(2)}", filename="a.csv", source_name="a.csv"
    )
    later = uploaded(
        fleet, manager, f"{make_vin(1)}\n{make_vin(5)}", filename="b.csv", source_name="b.csv"
    )
    offer = replaceable_draft(later)
    assert offer.draft == earlier and not offer.same_name and offer.shared == 1
    client.force_login(manager)
    text = offer_of(client, later)
    assert "shares 1 of its 2 VINs with this one" in text
    assert "1 of its rows has a VIN that is not in this file" in text
    # Half of the draft's VINs is enough; fewer is not.
    other = uploaded(fleet, manager, f"{make_vin(7)}\n{make_vin(8)}", source_name="c.csv")
    assert (
        replaceable_draft(uploaded(fleet, manager, make_vin(7), source_name="d.csv")).draft == other
    )
    three = uploaded(fleet, manager, "\n".join(make_vin(i) for i in (20, 21, 22)))
    assert three.source_name == ""
    assert replaceable_draft(uploaded(fleet, manager, make_vin(20))) is None


def test_no_offer_for_a_sent_upload_or_another_fleet(fleet, other_fleet, manager, first):
    elsewhere = uploaded(other_fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    assert replaceable_draft(elsewhere) is None
    again = uploaded(fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    Upload.objects.filter(pk=first.pk).update(state=Upload.State.SUBMITTED)
    assert replaceable_draft(again) is None


def test_replacing_deletes_the_earlier_draft_and_notes_it(client, manager, fleet, first):
    again = uploaded(fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    client.force_login(manager)
    url = reverse("upload_replace_draft", args=[again.pk, first.pk])
    response = client.post(url, follow=True)
    assert response.redirect_chain[0] == (again.get_absolute_url(), 302)
    body = response.content.decode()
    assert f"Draft upload #{first.pk} and its 3 rows were deleted: upload #{again.pk}" in body
    assert 'id="replace-offer"' not in body
    assert not Upload.objects.filter(pk=first.pk).exists()
    assert again.entries.count() == 2  # the new upload is kept as it is
    noted = VinEvent.objects.get(entry__upload=again)  # only the row whose VIN was in #first
    assert noted.entry.vin == make_vin(1)
    assert noted.detail == (
        f"Replaces draft upload #{first.pk} (fleet.csv): manager deleted that draft and its "
        "3 rows when this file was uploaded again"
    )


def test_a_sent_upload_is_never_deleted(client, manager, fleet, first):
    again = uploaded(fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    Upload.objects.filter(pk=first.pk).update(state=Upload.State.SUBMITTED)
    client.force_login(manager)
    response = client.post(reverse("upload_replace_draft", args=[again.pk, first.pk]), follow=True)
    assert "no longer a draft" in response.content.decode()
    assert Upload.objects.filter(pk=first.pk).exists()
    # Nor a later upload by an earlier one.
    client.post(reverse("upload_replace_draft", args=[first.pk, again.pk]))
    assert Upload.objects.filter(pk=again.pk).exists()


def test_access(client, users, manager, fleet, other_fleet, first):
    again = uploaded(fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    url = reverse("upload_replace_draft", args=[again.pk, first.pk])
    for who, expected in (("support", 403), ("outsider", 404)):
        client.force_login(users[who])
        response = client.post(url)
        assert response.status_code == expected, who
        if expected == 403:
            assert READ_ONLY in response.content.decode().replace("&#x27;", "'")
    assert Upload.objects.filter(pk=first.pk).exists()
    # Another fleet's draft cannot be named in the URL.
    foreign = make_upload(other_fleet, state=Upload.State.DRAFT)
    client.force_login(manager)
    assert (
        client.post(reverse("upload_replace_draft", args=[again.pk, foreign.pk])).status_code == 404
    )
    assert Upload.objects.filter(pk=foreign.pk).exists()


def test_support_sees_no_offer(client, support, manager, fleet, first):
    again = uploaded(fleet, manager, FIXED, filename="fleet.csv", source_name="fleet.csv")
    client.force_login(support)
    assert offer_of(client, again) == ""
    assert again.entries.filter(status=VinStatus.READY).count() == 2
