"""The VIN connection journey end to end: portal → real HTTP → sandbox → back.

Uploads go through the real views, batches through the real tasks (run in this
process by `drain()`), and the sandbox runs as a subprocess at instant speed.
"""

import csv
import io
import threading
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone

from connections import submission, tracking
from connections.imports import read_upload
from connections.models import ConnectBatch, Upload, VinEntry, VinStatus
from connections.tasks import drain, sweep
from tests.test_uploads import make_vin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def volteras(settings, sandbox):
    settings.VOLTERAS_API_URL = sandbox.url
    settings.VOLTERAS_CLIENT_ID = sandbox.client_id
    settings.VOLTERAS_CLIENT_SECRET = sandbox.client_secret
    settings.VOLTERAS_WEBHOOK_SECRET = sandbox.webhook_secret
    return sandbox


def submit(client, upload, capture):
    with capture(execute=True):
        response = client.post(reverse("upload_submit", args=[upload.pk]))
    assert response.status_code == 302
    drain()


def statuses(upload) -> dict[str, tuple[str, str]]:
    """Each VIN's (status, first error code), from its first row in the file."""
    got: dict[str, tuple[str, str]] = {}
    for entry in VinEntry.objects.filter(upload=upload).order_by("line_number"):
        got.setdefault(entry.vin, (entry.status, entry.error_code))
    return got


@pytest.mark.django_db(transaction=False)
def test_demo_csv_reaches_final_states(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    data = (ROOT / "docs" / "demo-vins.csv").read_bytes()
    client.post(
        reverse("upload_new", args=[fleet.slug]),
        {"file": SimpleUploadedFile("demo-vins.csv", data, "text/csv")},
    )
    upload = Upload.objects.get()
    ready = upload.entries.filter(status=VinStatus.READY).count()
    submit(client, upload, django_capture_on_commit_callbacks)

    got = statuses(upload)
    assert got["PERR0R11000000001"] == ("ERROR", "OEM_VEHICLE_UPDATE_REQUIRED")
    assert got["1NC0MP11400000002"] == ("INCOMPATIBLE", "OEM_VEHICLE_NOT_COMPATIBLE")
    assert got["PR0C11AA500000003"][0] == "PENDING"
    assert got["ALERT511800000004"] == ("CONNECTED", "")
    assert got["WVGZZZE29MP012345"] == ("CONNECTED", "")
    assert got["WVWZZZ1KZ8WO12345"][0] == "INVALID"
    error = upload.entries.get(vin="PERR0R11000000001")
    assert error.action_category == "CUSTOMER_ACTION"
    assert error.can_retry is True
    connected = upload.entries.filter(vin="WVGZZZE29MP012345").order_by("line_number").first()
    assert connected.vehicle_id
    # One connect call per 100 VINs: this upload fits in one.
    assert ConnectBatch.objects.filter(upload=upload).count() == 1
    assert upload.entries.filter(status=VinStatus.SUBMITTING).count() == 0
    sent = upload.entries.exclude(status__in=["INVALID", "SKIPPED"]).count()
    assert sent == ready

    # The timeline tells the story: confirmed, accepted in a group, result by poll.
    sources = list(connected.events.values_list("source", flat=True))
    assert sources[:2] == ["submission", "submission"]
    assert "poll" in sources

    # The live table has settled: the poll answers 286 and polling stops.
    poll = client.get(
        reverse("upload_rows", args=[upload.pk]), {"v": 0}, headers={"HX-Request": "true"}
    )
    assert poll.status_code == 200 or poll.status_code == 286
    page = client.get(upload.get_absolute_url()).content.decode()
    assert "OEM_VEHICLE_UPDATE_REQUIRED" in page

    export = client.get(reverse("upload_export", args=[upload.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    by_vin: dict[str, dict] = {}
    for row in rows:
        by_vin.setdefault(row["vin"], row)
    assert by_vin["PERR0R11000000001"]["error_codes"] == "OEM_VEHICLE_UPDATE_REQUIRED"
    assert by_vin["PERR0R11000000001"]["action_category"] == "CUSTOMER_ACTION"
    assert by_vin["WVGZZZE29MP012345"]["vehicle_id"] == connected.vehicle_id
    assert len(rows) == upload.entries.count()


def test_n_vins_cost_ceil_n_over_100_connect_calls(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    n = 230
    upload = submission.create_upload(
        fleet, manager, read_upload("\n".join(make_vin(i) for i in range(n)))
    )
    submit(client, upload, django_capture_on_commit_callbacks)
    groups = set(ConnectBatch.objects.filter(upload=upload).values_list("group_id", flat=True))
    assert len(groups) == 3
    assert upload.entries.filter(status=VinStatus.CONNECTED).count() == n


def test_ambiguous_post_is_resent_and_understood(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    """The sandbox applies the POST, then drops the connection: the portal
    cannot know, resends, and maps VEHICLE_ALREADY_ADDED_* to the true state."""
    client.force_login(manager)
    vins = [make_vin(1), "PERR0R11000000009", "1NC0MP11400000008"]
    upload = submission.create_upload(
        fleet, manager, read_upload("\n".join(f"{v},Ford,US" for v in vins))
    )
    volteras.control(
        faults=[{"kind": "drop", "path_prefix": "/v1/vehicles/connect", "method": "POST",
                 "count": 1}]
    )  # fmt: skip
    submit(client, upload, django_capture_on_commit_callbacks)
    batch = ConnectBatch.objects.get(upload=upload)
    assert batch.state == ConnectBatch.State.DONE
    assert batch.attempts == 2
    got = statuses(upload)
    assert got[make_vin(1)] == ("CONNECTED", "")
    assert got["1NC0MP11400000008"][0] == "INCOMPATIBLE"
    connected = upload.entries.get(vin=make_vin(1))
    assert connected.was_already_connected
    details = " ".join(connected.events.values_list("detail", flat=True))
    assert "may or may not have the VINs" in details
    assert "VEHICLE_ALREADY_ADDED" in details


def test_outage_is_retried_and_shown(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = submission.create_upload(fleet, manager, read_upload(make_vin(5)))
    volteras.control(
        faults=[{"kind": "error", "path_prefix": "/v1/vehicles/connect", "method": "POST",
                 "count": 2}]
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("upload_submit", args=[upload.pk]))
    drain(max_rounds=1)
    batch = ConnectBatch.objects.get(upload=upload)
    assert batch.state == ConnectBatch.State.AMBIGUOUS
    assert "SERVER_ERROR" in batch.last_error
    entry = upload.entries.get()
    assert "Attempt 1 failed" in entry.events.last().detail
    drain()
    entry.refresh_from_db()
    assert entry.status == VinStatus.CONNECTED


def test_retry_of_failed_vin(client, manager, fleet, volteras, django_capture_on_commit_callbacks):
    client.force_login(manager)
    upload = submission.create_upload(
        fleet, manager, read_upload("PERR0R11000000007,Volkswagen,GB\n1NC0MP11400000006,Ford,US")
    )
    submit(client, upload, django_capture_on_commit_callbacks)
    error = upload.entries.get(vin="PERR0R11000000007")
    incompatible = upload.entries.get(vin="1NC0MP11400000006")
    refused = client.post(reverse("entry_retry", args=[upload.pk, incompatible.pk]), follow=True)
    assert "cannot help" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("entry_retry", args=[upload.pk, error.pk]))
    drain()
    error.refresh_from_db()
    assert ConnectBatch.objects.filter(upload=upload).count() == 2
    sources = list(error.events.values_list("source", flat=True))
    assert "manual" in sources
    assert error.events.filter(status_from="ERROR", status_to="SUBMITTING").exists()
    assert error.status == VinStatus.ERROR  # the sandbox's rule for PERR0R11 holds


def test_pending_vin_is_rechecked_later(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks, time_machine
):
    client.force_login(manager)
    upload = submission.create_upload(fleet, manager, read_upload("PEND1NG1000000008,Ford,US"))
    volteras.control(pending_seconds=3600)
    submit(client, upload, django_capture_on_commit_callbacks)
    entry = upload.entries.get()
    assert entry.status == VinStatus.PENDING
    assert entry.next_check_at is not None
    volteras.connect_pending()
    assert tracking.recheck_waiting_entries() == 0  # not due yet
    time_machine.move_to(timezone.now() + tracking.RECHECK_FIRST * 2)
    assert tracking.recheck_waiting_entries() == 1
    entry.refresh_from_db()
    assert entry.status == VinStatus.CONNECTED


def test_eligibility_check_before_connecting(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = submission.create_upload(
        fleet, manager, read_upload(f"{make_vin(2)},Ford,US\n1NC0MP11400000005,Ford,US")
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("upload_check_eligibility", args=[upload.pk]))
    drain()
    upload.refresh_from_db()
    assert upload.state == Upload.State.DRAFT
    answers = dict(upload.entries.values_list("vin", "eligibility"))
    assert answers[make_vin(2)] == "ELIGIBLE"
    assert answers["1NC0MP11400000005"] != "ELIGIBLE"
    assert not ConnectBatch.objects.exists()
    page = client.get(upload.get_absolute_url()).content.decode()
    assert "Eligible" in page


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_batch(manager, fleet, volteras):
    upload = submission.create_upload(fleet, manager, read_upload(make_vin(11)))
    submission.submit(upload, manager)
    batch = ConnectBatch.objects.get(upload=upload)
    volteras.control(faults=[{"kind": "latency", "ms": 300, "path_prefix": "/v1/vehicles/connect"}])
    posts_before = volteras.log().count('"POST /v1/vehicles/connect HTTP/1.1" 202')
    outcomes = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            outcomes.append(tracking.send_batch(batch.pk))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["not due", "not due", "not due", "sent"]
    posts = volteras.log().count('"POST /v1/vehicles/connect HTTP/1.1" 202') - posts_before
    assert posts == 1


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_nothing(manager, fleet, volteras, time_machine):
    """A worker claimed the batch, maybe sent it, then died: after its lease
    the sweep re-drives the batch and every VIN still reaches its result."""
    upload = submission.create_upload(
        fleet, manager, read_upload("\n".join(make_vin(20 + i) for i in range(3)))
    )
    submission.submit(upload, manager)
    batch = ConnectBatch.objects.get(upload=upload)
    # The dead worker's claim: state SUBMITTING, a lease, and it did POST.
    claimed, _owner = tracking._claim(
        batch.pk, [ConnectBatch.State.QUEUED], state=ConnectBatch.State.SUBMITTING
    )
    assert claimed is not None
    from connections import volteras as api

    api.get_client().connect_vehicles(
        [api.VehicleInput(vin=e.vin, make="FORD", country_code="US") for e in upload.entries.all()]
    )
    assert tracking.send_batch(batch.pk) == "not due"  # the lease still holds
    time_machine.move_to(timezone.now() + tracking.LEASE + tracking.LEASE)
    sweep()
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.AMBIGUOUS
    drain()
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTED}


def test_consent_links_from_the_upload_table(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = submission.create_upload(
        fleet,
        manager,
        read_upload("C0NSENT1000000001,Volkswagen,GB\nC0NSENT1000000002,Volkswagen,GB"),
    )
    submit(client, upload, django_capture_on_commit_callbacks)
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTION_REQUIRED}
    page = client.get(upload.get_absolute_url()).content.decode()
    assert "Create consent links for the 2 VINs" in page
    one = upload.entries.order_by("line_number").first()
    client.post(reverse("upload_consent_links", args=[upload.pk]), {"entry": one.pk})
    assert one.consent_links.count() == 1
    page = client.get(upload.get_absolute_url()).content.decode()
    assert one.consent_links.get().get_absolute_url() in page
    client.post(reverse("upload_consent_links", args=[upload.pk]))
    assert sum(e.consent_links.count() for e in upload.entries.all()) == 2
    csv_text = client.get(reverse("upload_consent_links_csv", args=[upload.pk])).content.decode()
    assert csv_text.splitlines()[0].lstrip("\ufeff") == "vin,registration_plate,link,expires_at"
    assert "C0NSENT1000000002" in csv_text


def test_refused_batch_shows_each_vin_failed(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    volteras.control(vehicle_limit=1)
    first = submission.create_upload(fleet, manager, read_upload(f"{make_vin(29)},Ford,US"))
    submit(client, first, django_capture_on_commit_callbacks)
    assert first.entries.get().status == VinStatus.CONNECTED
    upload = submission.create_upload(fleet, manager, read_upload(f"{make_vin(30)},Ford,US"))
    submit(client, upload, django_capture_on_commit_callbacks)
    batch = ConnectBatch.objects.get(upload=upload)
    assert batch.state == ConnectBatch.State.FAILED
    entry = upload.entries.get()
    assert (entry.status, entry.error_code, entry.can_retry) == (
        VinStatus.ERROR,
        "DEVICE_LIMIT_REACHED",
        True,
    )
    assert "Volteras refused the batch" in entry.events.last().detail


def test_lasting_outage_gives_up_with_a_retryable_error(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = submission.create_upload(fleet, manager, read_upload(f"{make_vin(31)},Ford,US"))
    volteras.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles/connect"}])
    submit(client, upload, django_capture_on_commit_callbacks)
    batch = ConnectBatch.objects.get(upload=upload)
    assert (batch.state, batch.attempts) == (
        ConnectBatch.State.FAILED,
        tracking.MAX_SEND_ATTEMPTS,
    )
    entry = upload.entries.get()
    assert entry.status == VinStatus.ERROR
    assert entry.can_retry is True
    assert "could not be reached after 8 attempts" in entry.message


def test_retry_from_the_vin_page_returns_there(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = submission.create_upload(fleet, manager, read_upload("PERR0R11000000005,VW,GB"))
    submit(client, upload, django_capture_on_commit_callbacks)
    entry = upload.entries.get()
    response = client.post(reverse("entry_retry", args=[upload.pk, entry.pk]), {"back_to": "entry"})
    assert response["Location"] == reverse("entry_detail", args=[entry.pk])
