"""Support actions end to end: an upload of magic sandbox VINs goes through the
real submission and tasks to the running sandbox (real HTTP), then support acts
through the workspace's views, and each VIN's timeline tells who did what."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from connections.jobs import drain
from connections.models import ConnectBatch, ConsentLink, LinkStatus, Upload, VinEntry, VinStatus
from connections.support.actions import dismiss, escalate, retry
from connections.uploads.submission import submit
from tests.factories import entry_of, uploaded
from tests.flows import consent_at_sandbox, follow_return, open_short_link

ERROR_VIN = "PERR0R11000000001"
ERROR_VIN_2 = "PERR0R11000000009"
INCOMPATIBLE_VIN = "1NC0MP11400000002"
PENDING_VIN = "PR0C11AA500000003"
CONSENT_VIN = "C0NSENT1000000005"
CONNECTED_VIN = "WVGZZZE29MP012345"
ROWS = "\n".join(
    [
        f"{ERROR_VIN},Volkswagen,GB",
        f"{ERROR_VIN_2},Volkswagen,GB",
        f"{INCOMPATIBLE_VIN},Ford,US",
        f"{PENDING_VIN},Renault,FR",
        f"{CONSENT_VIN},Volkswagen,GB",
        f"{CONNECTED_VIN},Volkswagen,DE",
    ]
)


def settle(fleet, manager, capture) -> Upload:
    """The magic VINs submitted, and every task run until nothing is left."""
    upload = uploaded(fleet, manager, ROWS)
    with capture(execute=True):
        assert submit(upload, manager) == 1
    drain()
    return upload


@pytest.fixture
def settled(fleet, manager, volteras_no_retries, django_capture_on_commit_callbacks) -> Upload:
    return settle(fleet, manager, django_capture_on_commit_callbacks)


def act(client, capture, action: str, entries: list[VinEntry], **fields) -> str:
    """POST an action as the logged-in user, run the work it queued, and return
    the page it redirects to (with its messages)."""
    data = {"action": action, "entries": [e.pk for e in entries], **fields}
    with capture(execute=True):
        response = client.post(reverse("support_action"), data)
    assert response.status_code == 302
    drain()
    return client.get(response["Location"]).content.decode()


def test_the_upload_settled_as_the_sandbox_says(settled):
    got = {e.vin: (e.status, e.error_code) for e in settled.entries.all()}
    assert got[ERROR_VIN] == (VinStatus.ERROR, "OEM_VEHICLE_UPDATE_REQUIRED")
    assert got[INCOMPATIBLE_VIN][0] == VinStatus.INCOMPATIBLE
    assert got[PENDING_VIN][0] == VinStatus.PENDING
    assert got[CONSENT_VIN][0] == VinStatus.CONNECTION_REQUIRED
    assert got[CONNECTED_VIN][0] == VinStatus.CONNECTED


def test_support_finds_failed_vins_with_reason_and_next_step(client, support, settled):
    client.force_login(support)
    body = client.get(reverse("support_home")).content.decode()
    for vin in (ERROR_VIN, INCOMPATIBLE_VIN, PENDING_VIN, CONSENT_VIN):
        assert vin in body
    assert CONNECTED_VIN not in body
    x = entry_of(settled, ERROR_VIN).explanation
    assert escape(x.title) in body and escape(x.next_step) in body


def test_retry_sends_a_new_batch_and_records_it(
    client, support, settled, django_capture_on_commit_callbacks
):
    error = entry_of(settled, ERROR_VIN)
    batches = ConnectBatch.objects.filter(upload=settled).count()
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "retry", [error])
    assert "1 VIN sent again." in page
    assert ConnectBatch.objects.filter(upload=settled).count() == batches + 1
    error.refresh_from_db()
    new_batch = ConnectBatch.objects.filter(upload=settled).order_by("-number").first()
    assert error.batch == new_batch
    assert new_batch.group_id and new_batch.state == ConnectBatch.State.DONE
    # The sandbox answers this VIN the same way every time.
    assert (error.status, error.error_code) == (VinStatus.ERROR, "OEM_VEHICLE_UPDATE_REQUIRED")
    retry = error.events.get(detail__startswith="Retry requested")
    assert retry.actor == support and retry.source == "manual"
    later = error.events.filter(at__gte=retry.at, source="poll")
    assert later.exists()
    timeline = client.get(reverse("entry_detail", args=[error.pk])).content.decode()
    assert "Retry requested" in timeline and "by support" in timeline


def test_retry_is_refused_with_the_reason_where_it_cannot_help(
    client, support, settled, django_capture_on_commit_callbacks
):
    incompatible, pending = entry_of(settled, INCOMPATIBLE_VIN), entry_of(settled, PENDING_VIN)
    batches = ConnectBatch.objects.count()
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "retry", [incompatible, pending])
    assert "2 VINs were not sent again" in page
    assert escape(incompatible.retry_refusal()) in page
    assert escape(pending.retry_refusal()) in page
    assert ConnectBatch.objects.count() == batches
    assert not incompatible.events.filter(source="manual", actor=support).exists()


def test_retry_during_an_incident_needs_retry_anyway(
    client, support, settled, settings, django_capture_on_commit_callbacks
):
    settings.INCIDENT_MIN_VINS = 2
    errors = [entry_of(settled, ERROR_VIN), entry_of(settled, ERROR_VIN_2)]
    batches = ConnectBatch.objects.count()
    client.force_login(support)
    home = client.get(reverse("support_home")).content.decode()
    assert "Probable manufacturer-side incident" in home
    page = act(client, django_capture_on_commit_callbacks, "retry", errors)
    assert "manufacturer-side incident" in page
    assert ConnectBatch.objects.count() == batches
    page = act(client, django_capture_on_commit_callbacks, "retry", errors, force="on")
    assert "2 VINs sent again." in page
    # Both go out together: one new batch for the upload, one connect call.
    assert ConnectBatch.objects.count() == batches + 1


def test_escalate_with_note_and_request_ids(
    client, support, fleet, manager, volteras_no_retries, django_capture_on_commit_callbacks
):
    # Volteras turns the first connect call away (429): its answer carries the
    # requestId that support will hand over; the second call goes through.
    volteras_no_retries.control(
        faults=[
            {"kind": "rate_limit", "path_prefix": "/v1/vehicles/connect", "method": "POST"}
            | {"count": 1, "retry_after": 1}
        ]
    )
    settled = settle(fleet, manager, django_capture_on_commit_callbacks)
    error = entry_of(settled, ERROR_VIN)
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "escalate", [error])
    assert "Nothing was done" in page and "the note is required" in page
    assert not VinEntry.objects.get(pk=error.pk).escalated

    note = "Update done by the driver on Monday, still failing."
    page = act(client, django_capture_on_commit_callbacks, "escalate", [error], note=note)
    assert "1 VIN escalated to Volteras." in page
    error.refresh_from_db()
    assert error.escalated
    event = error.events.get(data__action="escalate")
    assert event.actor == support and event.data["note"] == note
    known = {
        *error.events.exclude(request_id="")
        .exclude(pk=event.pk)
        .values_list("request_id", flat=True),
        error.batch.last_request_id,
    } - {""}
    assert len(known) == 1, "the refused first call left its requestId"
    assert set(event.data["request_ids"]) == known
    assert event.data["group_id"] == error.batch.group_id
    for reference in (*known, error.batch.group_id, error.vehicle_id):
        assert reference in event.detail
    timeline = client.get(reverse("entry_detail", args=[error.pk])).content.decode()
    assert escape(note) in timeline and "escalated to Volteras" in timeline

    again = act(client, django_capture_on_commit_callbacks, "escalate", [error], note="more")
    assert "Already escalated to Volteras" in again
    assert error.events.filter(data__action="escalate").count() == 1


def test_dismiss_with_reason(client, support, settled, django_capture_on_commit_callbacks):
    pending, connected = entry_of(settled, PENDING_VIN), entry_of(settled, CONNECTED_VIN)
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "dismiss", [pending])
    assert "the reason is required" in page
    reason = "Vehicle sold; the fleet asked us to stop."
    page = act(
        client, django_capture_on_commit_callbacks, "dismiss", [pending, connected], reason=reason
    )
    assert "1 VIN dismissed." in page
    assert "This VIN is connected: there is nothing to dismiss." in page
    pending.refresh_from_db()
    assert pending.dismissed and pending.status == VinStatus.PENDING
    event = pending.events.get(data__action="dismiss")
    assert event.actor == support and event.data["reason"] == reason
    assert f"entry-{pending.pk}" not in client.get(reverse("support_home")).content.decode()
    shown = client.get(reverse("support_home"), {"state": "dismissed"}).content.decode()
    assert f"entry-{pending.pk}" in shown
    assert not VinEntry.objects.get(pk=connected.pk).dismissed


def test_consent_link_sent_then_reissued(
    client, support, settled, django_capture_on_commit_callbacks
):
    waiting, error = entry_of(settled, CONSENT_VIN), entry_of(settled, ERROR_VIN)
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "consent", [waiting, error])
    assert "1 VIN got a consent link." in page
    assert "Only a VIN waiting for its owner" in page
    first = ConsentLink.objects.get(vin_entry=waiting)
    assert first.vin == CONSENT_VIN and first.created_by == support
    assert first.authentication_url.startswith("http")
    assert not ConsentLink.objects.filter(vin_entry=error).exists()
    sent = waiting.events.get(data__consent_link=first.pk)
    assert sent.actor == support

    page = act(client, django_capture_on_commit_callbacks, "consent", [waiting])
    assert "1 VIN got a consent link." in page
    first.refresh_from_db()
    second = ConsentLink.objects.filter(vin_entry=waiting).exclude(pk=first.pk).get()
    assert first.status == LinkStatus.REISSUED and first.replaced_by == second
    assert waiting.events.filter(data__consent_link=second.pk, actor=support).exists()
    detail = client.get(reverse("entry_detail", args=[waiting.pk])).content.decode()
    assert second.get_absolute_url() in detail and first.get_absolute_url() in detail


def test_entry_page_shows_volteras_current_view(
    client, manager, support, settled, volteras_no_retries
):
    connected = entry_of(settled, CONNECTED_VIN)
    assert connected.vehicle_id
    client.force_login(manager)
    body = client.get(reverse("entry_detail", args=[connected.pk])).content.decode()
    section = body[body.index('id="volteras-view"') : body.index('id="webhook-deliveries"')]
    assert "CONNECTED" in section and CONNECTED_VIN in section
    assert settled.get_absolute_url() in body and settled.fleet.get_absolute_url() in body


def test_entry_page_says_clearly_when_volteras_cannot_answer(
    client, support, settled, settings, volteras_no_retries
):
    connected = entry_of(settled, CONNECTED_VIN)
    VinEntry.objects.filter(pk=connected.pk).update(vehicle_id="no-such-vehicle")
    client.force_login(support)
    body = client.get(reverse("entry_detail", args=[connected.pk])).content.decode()
    assert "Volteras does not know vehicle no-such-vehicle" in body

    VinEntry.objects.filter(pk=connected.pk).update(vehicle_id=connected.vehicle_id)
    volteras_no_retries.control(
        faults=[{"kind": "error", "path_prefix": "/v1/vehicles/", "method": "GET"}]
    )
    body = client.get(reverse("entry_detail", args=[connected.pk])).content.decode()
    assert "Volteras could not be asked about this vehicle just now" in body
    # The portal's own record is still there.
    assert connected.vehicle_id in body


# Every retry path obeys the same rules (the VIN page's and the upload table's
# plain Retry button post to `entry_retry`, which goes through `support.retry`).


def plain_retry(client, capture, entry: VinEntry) -> str:
    with capture(execute=True):
        response = client.post(reverse("entry_retry", args=[entry.upload_id, entry.pk]))
    assert response.status_code == 302
    drain()
    return client.get(response["Location"]).content.decode()


def test_plain_retry_is_paused_by_an_incident(
    client, manager, settled, settings, django_capture_on_commit_callbacks
):
    settings.INCIDENT_MIN_VINS = 2
    error = entry_of(settled, ERROR_VIN)
    batches = ConnectBatch.objects.count()
    client.force_login(manager)
    page = plain_retry(client, django_capture_on_commit_callbacks, error)
    assert "was not retried" in page and "manufacturer-side incident" in page
    assert ConnectBatch.objects.count() == batches
    assert not error.events.filter(detail__startswith="Retry requested").exists()


def test_plain_retry_refuses_a_superseded_row(
    client, manager, settled, django_capture_on_commit_callbacks
):
    error = entry_of(settled, ERROR_VIN)
    VinEntry.objects.filter(pk=error.pk).update(superseded=True)
    batches = ConnectBatch.objects.count()
    client.force_login(manager)
    page = plain_retry(client, django_capture_on_commit_callbacks, error)
    assert "A later upload of this VIN replaced this row" in page
    assert ConnectBatch.objects.count() == batches


def test_plain_retry_reopens_a_dismissed_vin(
    client, manager, support, settled, django_capture_on_commit_callbacks
):
    error = entry_of(settled, ERROR_VIN)
    client.force_login(support)
    act(client, django_capture_on_commit_callbacks, "dismiss", [error], reason="Sold")
    assert VinEntry.objects.get(pk=error.pk).dismissed
    client.force_login(manager)
    page = plain_retry(client, django_capture_on_commit_callbacks, error)
    assert f"{ERROR_VIN} is being sent again." in page
    error.refresh_from_db()
    assert not error.dismissed
    assert error.events.filter(detail__startswith="Retry requested", actor=manager).exists()


def test_an_escalated_vin_that_fails_again_can_be_escalated_again(
    client, support, settled, django_capture_on_commit_callbacks
):
    error = entry_of(settled, ERROR_VIN)
    client.force_login(support)
    act(client, django_capture_on_commit_callbacks, "escalate", [error], note="first")
    assert VinEntry.objects.get(pk=error.pk).escalated
    act(client, django_capture_on_commit_callbacks, "retry", [error])
    error.refresh_from_db()
    # The sandbox fails it again, the same way: a new failure, open again.
    assert (error.status, error.escalated) == (VinStatus.ERROR, False)
    page = act(client, django_capture_on_commit_callbacks, "escalate", [error], note="second")
    assert "1 VIN escalated to Volteras." in page
    assert error.events.filter(data__action="escalate").count() == 2


NOT_BY_VIN = "N0UPL0AD100000007"


def test_a_make_that_cannot_be_connected_by_vin_gets_a_consent_link(
    client, manager, support, fleet, volteras_no_retries, django_capture_on_commit_callbacks
):
    upload = uploaded(fleet, manager, f"{NOT_BY_VIN},Volkswagen,GB")
    with django_capture_on_commit_callbacks(execute=True):
        submit(upload, manager)
    drain()
    waiting = upload.entries.get()
    assert (waiting.status, waiting.error_code) == (VinStatus.ERROR, "VIN_UPLOAD_NOT_SUPPORTED")
    assert waiting.consent_link_helps and waiting.retry_refusal()
    # The upload table offers the consent link its next step names, not a retry.
    client.force_login(manager)
    body = client.get(upload.get_absolute_url()).content.decode()
    assert f"Create a consent link for {NOT_BY_VIN}" in body and f"Retry {NOT_BY_VIN}" not in body
    # ...and the bulk actions count it, so its tick box has a form to go to.
    assert "1 VIN needs the owner's consent" in body
    assert 'id="consent-pick"' in body
    client.post(reverse("upload_consent_links", args=[upload.pk]), {"entry": waiting.pk})
    first = ConsentLink.objects.get(vin_entry=waiting)
    assert first.vin == NOT_BY_VIN and first.options["vin"] == NOT_BY_VIN
    assert first.authentication_url.startswith("http")
    # Support can send (here: reissue) one too.
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "consent", [waiting])
    assert "1 VIN got a consent link." in page
    first.refresh_from_db()
    assert first.status == LinkStatus.REISSUED and first.replaced_by.vin_entry == waiting
    # The owner completes it: the vehicle connects, as the next step promised.
    auth_url = open_short_link(client, first.replaced_by)
    page = follow_return(client, consent_at_sandbox(auth_url, approve=True))
    assert "your vehicle is connected" in page.content.decode()
    drain()  # the account's vehicles are read by a worker
    waiting.refresh_from_db()
    assert waiting.status == VinStatus.CONNECTED and waiting.vehicle_id


def test_a_vin_whose_row_changed_is_not_reported_as_retried(
    support, settled, django_capture_on_commit_callbacks
):
    """Loaded as ERROR, but already sent again by someone else (a second
    click): the outcome says so, and its flags stay as they are."""
    error = entry_of(settled, ERROR_VIN)
    stale_copy = VinEntry.objects.select_related("upload", "fleet").get(pk=error.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert len(retry([error], support).done) == 1
    VinEntry.objects.filter(pk=error.pk).update(escalated=True)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = retry([stale_copy], support)
    assert outcome.done == []
    assert [entry.pk for entry, _ in outcome.refused] == [error.pk]
    assert "still being connected" in outcome.refused[0][1]
    assert VinEntry.objects.get(pk=error.pk).escalated


def test_consent_links_stop_at_a_refusal_for_the_whole_organisation(
    client, support, fleet, manager, volteras_no_retries, django_capture_on_commit_callbacks
):
    upload = uploaded(fleet, manager, f"{CONSENT_VIN},Volkswagen,GB\nC0NSENT1000000013,Ford,GB")
    with django_capture_on_commit_callbacks(execute=True):
        submit(upload, manager)
    drain()
    first, second = upload.entries.order_by("line_number")
    volteras_no_retries.control(
        faults=[{"kind": "rate_limit", "path_prefix": "/v1/accounts:connect", "count": 5}]
    )
    client.force_login(support)
    page = act(client, django_capture_on_commit_callbacks, "consent", [first, second])
    assert "Not tried:" in page
    assert not ConsentLink.objects.exists()
    # One call was refused; the second VIN was not even tried.
    assert volteras_no_retries.state()["faults"][0]["count"] == 4


def test_a_dismissed_vin_reopens_when_volteras_reports_a_new_failure(
    support, settled, django_capture_on_commit_callbacks
):
    error = entry_of(settled, ERROR_VIN)
    dismiss([error], support, reason="owner sold the car")
    escalate([error], support, note="asked Volteras")
    error.refresh_from_db()
    assert error.dismissed and error.escalated
    # No retry in between: a new failure arrives by itself (a later poll).
    assert error.observe(VinStatus.ERROR, "poll", error_codes=["OEM_UNKNOWN_ERROR"])
    error.refresh_from_db()
    assert not error.dismissed and not error.escalated
    assert error.events.last().data["reopened"] == ["dismissed", "escalated"]
