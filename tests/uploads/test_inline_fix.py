"""Fixing a draft's row in place (issue 14): re-validated as the upload was,
duplicates and the fleet's VINs included, recorded in the row's timeline;
managers of the fleet only, drafts only."""

import pytest
from django.test import Client
from django.urls import reverse

from connections.models import Upload, VinEvent, VinStatus
from connections.web.access import READ_ONLY
from tests.factories import add_entry, make_upload, make_vin, uploaded
from tests.permissions import assert_access

CONNECTED_VIN = make_vin(900)


@pytest.fixture
def draft(fleet, manager) -> Upload:
    """Line 2 valid, 3 an invalid VIN, 4 repeats line 2, 5 is already connected
    in the fleet, 6 a valid BMW-less VIN with an unknown make."""
    earlier = make_upload(fleet, manager)
    add_entry(earlier, VinStatus.CONNECTED, vin=CONNECTED_VIN)
    rows = [
        "vin,make,country,plate",
        f"{make_vin(1)},Ford,GB,AB12 CDE",
        "WBA12,Ford,GB,",
        f"{make_vin(1)},Ford,GB,",
        f"{CONNECTED_VIN},Ford,GB,",
        f"{make_vin(6)},Tractorco,GB,",
    ]
    return uploaded(fleet, manager, "\n".join(rows) + "\n", filename="fleet.csv")


def line(upload: Upload, number: int):
    return upload.entries.get(line_number=number)


def edit_url(entry) -> str:
    return reverse("entry_edit", args=[entry.upload_id, entry.pk])


def values(entry, **changes) -> dict[str, str]:
    data = {
        "vin": entry.vin,
        "make": "Ford",
        "country_code": "GB",
        "registration_plate": entry.registration_plate,
        "tags": "",
    }
    return {**data, **changes}


def test_a_fixed_row_is_ready_and_its_timeline_says_what_changed(client, manager, draft):
    entry = line(draft, 3)
    assert entry.status == VinStatus.INVALID
    client.force_login(manager)
    response = client.post(
        edit_url(entry), values(entry, vin=make_vin(3), tags="depot=Leeds", return_query="page=1")
    )
    assert response.status_code == 302
    assert response["Location"] == f"{draft.get_absolute_url()}?page=1#entry-{entry.pk}"
    entry.refresh_from_db()
    assert (entry.status, entry.vin, entry.problems) == (VinStatus.READY, make_vin(3), [])
    assert entry.tags == [{"key": "depot", "value": "Leeds"}]
    event = VinEvent.objects.get(entry=entry)
    assert event.detail == f"Edited by manager: VIN WBA12 → {make_vin(3)}, tags depot=Leeds"
    assert (event.status_from, event.status_to, event.actor) == ("INVALID", "READY", manager)
    page = client.get(response["Location"]).content.decode()
    assert "Line 3 was saved and is ready to send." in page
    assert "Send 2 valid VINs to Volteras" in page


def test_htmx_save_answers_the_row_the_summary_and_the_send_button(client, manager, draft):
    entry = line(draft, 3)
    client.force_login(manager)
    response = client.post(edit_url(entry), values(entry, vin=make_vin(3)), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="entry-{entry.pk}"')
    assert f'id="edit-{entry.pk}"' in body and "autofocus" in body  # focus back on Edit
    assert 'id="live-summary"' in body and 'id="send-actions"' in body
    assert body.count('hx-swap-oob="true"') == 2
    # The out-of-band parts come in a <template>: after a <tr>, a browser parses
    # a <form> in table mode, closes it at once, and Send posts nothing.
    row, _, rest = body.partition("<template>")
    assert "hx-swap-oob" not in row and rest.rstrip().endswith("</template>")
    assert '<form method="post" action="' in rest
    assert "<strong>2</strong> ready to send" in body
    assert "Send 2 valid VINs to Volteras" in body


def test_a_row_still_invalid_is_not_saved_and_the_form_says_why_by_field(client, manager, draft):
    entry = line(draft, 3)
    client.force_login(manager)
    response = client.post(
        edit_url(entry), values(entry, vin=make_vin(3), make="Tractorco"), HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="entry-{entry.pk}" class="fixing"')
    assert "would still be invalid, so it was not saved" in body
    # The make's problem sits next to the make field, which takes the focus.
    make_errors = body.split(f'id="fix-{entry.pk}-make-errors"')[1].split("</ul>")[0]
    assert "&#x27;Tractorco&#x27; is not a make Volteras can connect" in make_errors
    make_input = body.split(f'id="fix-{entry.pk}-make"')[1].split(">")[0]
    assert 'aria-invalid="true"' in make_input and "autofocus" in make_input
    entry.refresh_from_db()
    assert entry.vin == "WBA12" and entry.status == VinStatus.INVALID
    assert not VinEvent.objects.filter(entry=entry).exists()


def test_no_js_form_page_and_cancel(client, manager, draft):
    entry = line(draft, 6)
    client.force_login(manager)
    page = client.get(edit_url(entry)).content.decode()
    assert "<h1>Fix line 6 of upload" in page
    assert 'name="vin"' in page and "hx-post" not in page
    row = client.get(edit_url(entry), {"cancel": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert row.lstrip().startswith(f'<tr id="entry-{entry.pk}"') and "hx-swap-oob" not in row


def test_a_fix_repeating_a_row_of_the_upload_is_skipped_with_a_link(client, manager, draft):
    entry, first = line(draft, 3), line(draft, 2)
    client.force_login(manager)
    client.post(edit_url(entry), values(entry, vin=make_vin(1)))
    entry.refresh_from_db()
    assert entry.status == VinStatus.SKIPPED
    assert entry.problems == ["This VIN is a duplicate of line 2; only line 2 is sent."]
    assert entry.duplicate_of_id == first.pk
    page = client.get(draft.get_absolute_url()).content.decode()
    row = page.split(f'id="entry-{entry.pk}"')[1].split("</tr>")[0]
    url = reverse("entry_detail", args=[first.pk])
    assert f'<a href="{url}">Open line 2</a>' in row


def test_a_fix_to_a_vin_already_in_the_fleet_links_to_its_page(client, manager, draft, fleet):
    entry = line(draft, 3)
    connected = fleet.entries.get(vin=CONNECTED_VIN, status=VinStatus.CONNECTED)
    client.force_login(manager)
    client.post(edit_url(entry), values(entry, vin=CONNECTED_VIN))
    entry.refresh_from_db()
    assert entry.status == VinStatus.SKIPPED and entry.duplicate_of_id == connected.pk
    assert "already in this fleet (Connected)" in entry.problems[0]
    page = client.get(draft.get_absolute_url()).content.decode()
    url = reverse("entry_detail", args=[connected.pk])
    assert f'<a href="{url}">Open this VIN\'s page in the fleet</a>' in page


def test_an_upload_links_its_skipped_rows_to_what_they_repeat(draft, fleet):
    assert line(draft, 4).duplicate_of_id == line(draft, 2).pk
    connected = fleet.entries.get(vin=CONNECTED_VIN, status=VinStatus.CONNECTED)
    assert line(draft, 5).duplicate_of_id == connected.pk
    assert line(draft, 2).duplicate_of_id is None and line(draft, 3).duplicate_of_id is None


def test_moving_a_vin_away_lets_its_duplicate_be_sent(client, manager, draft):
    first, repeat = line(draft, 2), line(draft, 4)
    client.force_login(manager)
    response = client.post(edit_url(first), values(first, vin=make_vin(2)), follow=True)
    assert "1 other row checked again." in response.content.decode()
    repeat.refresh_from_db()
    assert (repeat.status, repeat.problems, repeat.duplicate_of_id) == (VinStatus.READY, [], None)
    event = VinEvent.objects.get(entry=repeat)
    assert event.detail == "Checked again after line 2 was edited: ready to send."


def test_a_fixed_row_is_sent_with_the_rest(client, manager, draft):
    entry = line(draft, 3)
    client.force_login(manager)
    client.post(edit_url(entry), values(entry, vin=make_vin(3)))
    client.post(reverse("upload_submit", args=[draft.pk]))
    entry.refresh_from_db()
    assert entry.status == VinStatus.SUBMITTING and entry.batch_id is not None


def test_access(client, users, draft):
    entry = line(draft, 3)
    url = edit_url(entry)
    assert_access(client, url, users, support=403, forbidden_says=READ_ONLY)
    for who, expected in (("support", 403), ("outsider", 404)):
        client.force_login(users[who])
        assert client.post(url, values(entry, vin=make_vin(3))).status_code == expected, who
    entry.refresh_from_db()
    assert entry.vin == "WBA12" and not VinEvent.objects.filter(entry=entry).exists()


def test_a_row_of_another_upload_is_404(client, manager, draft, fleet):
    other = make_upload(fleet, manager, state=Upload.State.DRAFT)
    foreign = add_entry(other, VinStatus.READY)
    client.force_login(manager)
    url = reverse("entry_edit", args=[draft.pk, foreign.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, values(foreign)).status_code == 404


def test_csrf_is_required(manager, draft):
    entry = line(draft, 3)
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.post(edit_url(entry), values(entry, vin=make_vin(3))).status_code == 403
    entry.refresh_from_db()
    assert entry.vin == "WBA12"


@pytest.mark.parametrize("state", [Upload.State.SUBMITTED, Upload.State.CHECKING])
def test_sent_rows_cannot_be_edited(client, manager, fleet, state):
    upload = make_upload(fleet, manager, state=state)
    entry = add_entry(upload, VinStatus.INVALID if state == "checking" else VinStatus.ERROR)
    client.force_login(manager)
    page = client.get(edit_url(entry)).content.decode()
    assert "can no longer be edited" in page and 'name="vin"' not in page
    assert f'id="edit-{entry.pk}"' not in client.get(upload.get_absolute_url()).content.decode()
    response = client.post(edit_url(entry), values(entry, vin=make_vin(3)), follow=True)
    assert "can no longer be edited" in response.content.decode()
    entry.refresh_from_db()
    assert entry.vin != make_vin(3) and not VinEvent.objects.filter(entry=entry).exists()


def test_edit_buttons_for_managers_of_a_draft_only(client, users, draft):
    entry = line(draft, 3)
    client.force_login(users["manager"])
    assert f'id="edit-{entry.pk}"' in client.get(draft.get_absolute_url()).content.decode()
    client.force_login(users["support"])
    assert f'id="edit-{entry.pk}"' not in client.get(draft.get_absolute_url()).content.decode()


def test_no_js_errors_show_on_the_form_page(client, manager, draft):
    entry = line(draft, 3)
    client.force_login(manager)
    response = client.post(edit_url(entry), values(entry, vin=make_vin(3), country_code="Narnia"))
    body = response.content.decode()
    assert response.status_code == 200 and "<h1>Fix line 3 of upload" in body
    errors = body.split(f'id="fix-{entry.pk}-country_code-errors"')[1].split("</ul>")[0]
    assert "&#x27;Narnia&#x27; is not a country code" in errors


def test_an_htmx_fix_of_a_sent_row_reloads_the_page(client, manager, draft):
    entry = line(draft, 3)
    Upload.objects.filter(pk=draft.pk).update(state=Upload.State.SUBMITTED)
    client.force_login(manager)
    for method in (client.get, client.post):
        response = method(edit_url(entry), values(entry), HTTP_HX_REQUEST="true")
        assert response["HX-Redirect"] == f"{draft.get_absolute_url()}#entry-{entry.pk}"


def test_a_new_vin_forgets_the_old_vins_eligibility(client, manager, draft):
    entry = line(draft, 2)
    draft.entries.filter(pk=entry.pk).update(eligibility="ELIGIBLE", eligibility_message="ok")
    client.force_login(manager)
    client.post(edit_url(entry), values(entry, registration_plate="AB12 XYZ"))
    entry.refresh_from_db()
    assert entry.eligibility == "ELIGIBLE"  # same VIN: still its answer
    client.post(edit_url(entry), values(entry, vin=make_vin(4)))
    entry.refresh_from_db()
    assert (entry.eligibility, entry.eligibility_message) == ("", "")


def test_the_table_s_filters_survive_a_fix(client, manager, draft):
    entry = line(draft, 3)
    client.force_login(manager)
    page = client.get(draft.get_absolute_url(), {"status": "INVALID"}).content.decode()
    assert f"{edit_url(entry)}?return_query=status%3DINVALID" in page
    form = client.get(edit_url(entry), {"return_query": "status=INVALID"}).content.decode()
    assert 'name="return_query" value="status=INVALID"' in form
    response = client.post(
        edit_url(entry), values(entry, vin=make_vin(3), return_query="status=INVALID")
    )
    assert response["Location"] == f"{draft.get_absolute_url()}?status=INVALID#entry-{entry.pk}"


def test_another_fleet_s_vin_is_never_linked(client, manager, draft, other_fleet):
    theirs = make_vin(777)
    add_entry(make_upload(other_fleet), VinStatus.CONNECTED, vin=theirs)
    upload = uploaded(draft.fleet, manager, f"{theirs}\n{theirs}")
    first, repeat = line(upload, 1), line(upload, 2)
    assert first.status == VinStatus.READY and first.duplicate_of_id is None
    assert repeat.duplicate_of_id == first.pk  # its own upload's row, not the other fleet's
    entry = line(draft, 3)
    client.force_login(manager)
    client.post(edit_url(entry), values(entry, vin=theirs))
    entry.refresh_from_db()
    assert entry.status == VinStatus.READY and entry.duplicate_of_id is None
