"""The VIN page helps: it updates itself while the VIN is on its way, every
next step it names is a button, and its timeline speaks the user's language."""

from __future__ import annotations

from django.urls import reverse

from connections.models import Source, VinStatus
from connections.web.access import WATCH_SECONDS
from tests.fleet.test_fleet_vehicles import add_entries
from tests.live import poll
from tests.permissions import assert_access


def test_the_page_polls_while_in_progress_and_answers_204_when_unchanged(client, fleet, manager):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000002", VinStatus.SUBMITTING, "")])
    entry = upload.entries.get()
    url = reverse("entry_detail", args=[entry.pk])
    client.force_login(manager)
    page = client.get(url)
    version = page.context["live"].version
    assert 'hx-trigger="every 3s"' in page.content.decode()
    assert poll(client, url, "vin-live", v=version).status_code == 204
    entry.observe(VinStatus.PROCESSING, Source.POLL)
    changed = poll(client, url, "vin-live", v=version)
    body = changed.content.decode()
    assert changed.status_code == 200 and "<h1" not in body
    assert 'data-live-state="Processing"' in body and 'hx-trigger="every 3s"' in body
    version = changed.context["live"].version
    entry.observe(VinStatus.PENDING, Source.POLL)
    pending = poll(client, url, "vin-live", v=version)
    # Pending can take days: the fast poll stops, a slow watcher takes over.
    assert pending.status_code == 286
    assert "Volteras is waiting for the vehicle to wake up" in pending.content.decode()
    assert f'hx-trigger="every {WATCH_SECONDS}s"' in pending.content.decode()


def test_a_final_vin_is_watched_slowly_and_a_late_disconnect_shows(client, fleet, manager):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000012", VinStatus.CONNECTED, "")])
    entry = upload.entries.get()
    url = reverse("entry_detail", args=[entry.pk])
    client.force_login(manager)
    page = client.get(url)
    assert f'hx-trigger="every {WATCH_SECONDS}s"' in page.content.decode()
    version = page.context["live"].version
    assert poll(client, url, "vin-live", v=version).status_code == 204
    entry.observe(VinStatus.DISCONNECTED, Source.WEBHOOK)
    late = poll(client, url, "vin-live", v=version)
    assert late.status_code == 286
    assert 'data-live-state="Disconnected"' in late.content.decode()


def test_nothing_polls_when_nothing_can_change(client, fleet, manager, outsider):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000022", VinStatus.ERROR, "")])
    entry = upload.entries.get()
    upload.entries.supersede()
    url = reverse("entry_detail", args=[entry.pk])
    client.force_login(manager)
    assert "data-live-poller" not in client.get(url).content.decode()
    assert poll(client, url, "vin-live", v="0").status_code == 286
    client.force_login(outsider)
    assert poll(client, url, "vin-live", v="0").status_code == 404


def test_timeline_reads_plainly_with_the_raw_detail_folded(client, fleet, manager):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000003", VinStatus.SUBMITTING, "")])
    entry = upload.entries.get()
    entry.observe(VinStatus.PROCESSING, Source.POLL, request_id="req-123")
    entry.observe(VinStatus.CONNECTED, Source.CONSENT)
    client.force_login(manager)
    body = client.get(reverse("entry_detail", args=[entry.pk])).content.decode()
    assert "<strong>Owner completed consent: the vehicle is connected</strong>" in body
    assert "<summary>Technical detail</summary>" in body
    assert "requestId req-123" in body
    assert "<strong>SUBMITTING → PROCESSING</strong>" not in body


def test_consent_link_is_a_button_where_it_is_the_next_step(client, fleet, users):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000004", VinStatus.CONNECTION_REQUIRED, "")])
    entry = upload.entries.get()
    client.force_login(users["manager"])
    body = client.get(reverse("entry_detail", args=[entry.pk])).content.decode()
    assert reverse("entry_act", args=[entry.pk]) in body
    assert "Create a consent link for the owner" in body
    # Unknown action: back to the page; outsiders never learn the VIN exists.
    assert_access(
        client,
        reverse("entry_act", args=[entry.pk]),
        users,
        method="post",
        data={"action": "nothing"},
        member=302,
        support=302,
        admin=302,
    )


def test_contact_support_escalates_with_the_note(client, fleet, manager):
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000005", VinStatus.ERROR, "UNKNOWN_THING")])
    entry = upload.entries.get()
    client.force_login(manager)
    body = client.get(reverse("entry_detail", args=[entry.pk])).content.decode()
    assert "Contact support about this VIN" in body
    client.post(reverse("entry_act", args=[entry.pk]), {"action": "escalate", "note": "odd"})
    entry.refresh_from_db()
    assert entry.escalated
    assert "Escalated to Volteras: odd" in entry.events.last().detail


def test_send_stays_available_while_eligibility_is_checked(client, fleet, manager):
    from connections.models import Upload
    from connections.uploads.eligibility import start
    from connections.uploads.reading import read_upload
    from connections.uploads.submission import create_upload

    upload = create_upload(fleet, manager, read_upload("WVWZZZ1JZ3W000006,Volkswagen,GB"))
    assert start(upload)
    client.force_login(manager)
    body = client.get(upload.get_absolute_url()).content.decode()
    assert "Eligibility check: 0 of 1 VIN checked" in body
    assert '<button type="submit" class="primary">Send 1 valid VIN to Volteras' in body
    client.post(reverse("upload_submit", args=[upload.pk]))
    upload.refresh_from_db()
    assert upload.state == Upload.State.SUBMITTED
    body = client.get(upload.get_absolute_url()).content.decode()
    assert "Eligibility check" not in body


def test_what_volteras_says_is_asked_again_only_when_the_vin_moved(
    client, fleet, manager, monkeypatch
):
    """The page's Volteras section is in its live part: a poll asks Volteras
    again when the VIN's record moved (here it got its vehicle id), and sends a
    placeholder, asking nothing, while the browser's copy is current. The
    Volteras client is replaced at the edge: the sandbox knows no such vehicle."""
    from connections.uploads import vin_page
    from connections.volteras import NotFound
    from tests.live import keys_of

    asked: list[str] = []

    class Client:
        def get_vehicle(self, vehicle_id: str):
            asked.append(vehicle_id)
            raise NotFound("no such vehicle", status=404)

    monkeypatch.setattr(vin_page, "get_client", Client)
    upload = add_entries(fleet, [("WVWZZZ1JZ3W000032", VinStatus.PROCESSING, "")])
    entry = upload.entries.get()
    url = reverse("entry_detail", args=[entry.pk])
    client.force_login(manager)
    page = client.get(url).content.decode()
    assert "has not given this VIN a vehicle id yet" in page and asked == []
    version, keys = client.get(url).context["live"].version, keys_of(page)

    entry.observe(VinStatus.CONNECTED, Source.POLL, vehicle_id="veh_0042")
    changed = poll(client, url, "vin-live", keys, v=version)
    body = changed.content.decode()
    assert asked == ["veh_0042"]
    assert "Volteras does not know vehicle veh_0042" in body and "Asked at" in body
    assert '<dd class="mono">veh_0042</dd>' in body  # the Vehicle card too

    # A change that leaves the VIN's record as it was (a timeline note): no question.
    version, keys = changed.context["live"].version, keys_of(body)
    entry.record(Source.MANUAL, "A note.")
    quiet = poll(client, url, "vin-live", keys, v=version).content.decode()
    assert asked == ["veh_0042"]
    assert '<section id="volteras-view" data-key=' in quiet and "data-live-keep" in quiet
