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

from connections.jobs import drain, sweep
from connections.models import ConnectBatch, ConsentLink, Upload, VinEntry, VinStatus
from connections.models.sending import LEASE
from connections.sending.poll import recheck_waiting_entries
from connections.sending.results import RECHECK_FIRST
from connections.sending.send import MAX_SEND_ATTEMPTS
from connections.sending.tasks import send_batch
from connections.uploads import submission
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload
from connections.uploads.views import SLOW_POLL_SECONDS
from tests.factories import make_vin, uploaded

ROOT = Path(__file__).resolve().parents[2]


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


# Every line of docs/demo-vins.csv (line 1 is the header): what the export shows once the
# worker is done. Columns: line, vin, make, country_code, registration_plate, status,
# error_codes, action_category, can_retry, a phrase of the message.
# fmt: off
DEMO_EXPECTED = [
    # Valid VINs of every make family, with the make written as people write it.
    (2, "WVGZZZE29MP012345", "VOLKSWAGEN", "DE", "B-FP 1021", "CONNECTED", "", "", "", "Connected"),
    (3, "XP7YGCEK8PB104417", "TESLA", "DE", "M-EV 4417", "CONNECTED", "", "", "", "Connected"),
    (4, "WBY71AW010FM20581", "BMW", "GB", "LD71 XKE", "CONNECTED", "", "", "", "Connected"),
    (5, "WMW21DH080TH93001", "MINI", "GB", "LB22 MNE", "CONNECTED", "", "", "", "Connected"),
    (6, "W1N2437011J338810", "MERCEDES BENZ", "NL", "G-123-BX", "CONNECTED", "", "", "",
     "Connected"),
    (7, "VF1AG000366123456", "RENAULT", "FR", "GH-458-KL", "CONNECTED", "", "", "", "Connected"),
    (8, "VR3UHZKX0MT019837", "PEUGEOT", "FR", "FT-903-AZ", "CONNECTED", "", "", "", "Connected"),
    (9, "KNACC81G9M5012345", "KIA", "NL", "R-554-TS", "CONNECTED", "", "", "", "Connected"),
    (10, "KMHK381GXLU104529", "HYUNDAI", "DE", "HH-KE 529", "CONNECTED", "", "", "", "Connected"),
    (11, "TMBJC7NY2NF003912", "SKODA", "CZ", "7AB 3912", "CONNECTED", "", "", "", "Connected"),
    (12, "YV1XZEDV2N2745510", "VOLVO", "SE", "ABC 123", "CONNECTED", "", "", "", "Connected"),
    (13, "LPSED3KA7NL051284", "POLESTAR", "NO", "EV 51284", "CONNECTED", "", "", "", "Connected"),
    (14, "SJNFAAZE4U6042718", "NISSAN", "GB", "NX16 LFE", "CONNECTED", "", "", "", "Connected"),
    # No country: the fleet's default (GB).
    (15, "JTMABAB5XPA023318", "TOYOTA", "GB", "LP23 BZX", "CONNECTED", "", "", "", "Connected"),
    # No make: inferred from the VIN (WAU is Audi).
    (16, "WAUZZZGE1NB014470", "AUDI", "DE", "S-AE 470", "CONNECTED", "", "", "", "Connected"),
    (17, "3FMTK3SU5MMA12345", "FORD", "US", "7ABC123", "CONNECTED", "", "", "", "Connected"),
    # Volteras' magic prefixes.
    (18, "PERR0R11000000001", "VOLKSWAGEN", "GB", "", "ERROR", "OEM_VEHICLE_UPDATE_REQUIRED",
     "CUSTOMER_ACTION", "true", "software update"),
    (19, "1NC0MP11400000002", "FORD", "US", "", "INCOMPATIBLE", "OEM_VEHICLE_NOT_COMPATIBLE",
     "CONTACT_SUPPORT", "false", "cannot be connected"),
    (20, "PR0C11AA500000003", "RENAULT", "FR", "", "PENDING", "", "", "", "Waiting"),
    (21, "ALERT511800000004", "TESLA", "DE", "", "CONNECTED", "", "", "", "manufacturer alerts"),
    # A North American VIN with a wrong check digit, never sent.
    (22, "1FA6P8TH4J5100001", "FORD", "US", "8XYZ001", "INVALID", "", "", "", "check digit"),
    # The letter O, which VINs never use, never sent.
    (23, "WVWZZZ1KZ8WO12345", "VOLKSWAGEN", "DE", "HB-VW 12", "INVALID", "", "", "", "letter O"),
    # A duplicate of line 2: the first is kept, this one never sent.
    (24, "WVGZZZE29MP012345", "VOLKSWAGEN", "DE", "B-FP 1021", "SKIPPED", "", "", "",
     "duplicate of line 2"),
    # Audi written on a BMW VIN: a warning, sent as Audi.
    (25, "WBY11CF000CH47110", "AUDI", "GB", "LV20 AUD", "CONNECTED", "", "", "", "Connected"),
    # Kia outside Europe, and a make Volteras does not connect: never sent.
    (26, "KNDCC3LG4P5123456", "KIA", "US", "9KIA456", "INVALID", "", "", "", "Europe only"),
    (27, "UU1HSDAD95B123456", "Dacia", "FR", "AB-123-CD", "INVALID", "", "", "",
     "'Dacia' is not a make"),
    # The sandbox's own prefixes: the owner must consent; pending, then connected.
    (28, "C0NSENT1XAB000001", "VOLKSWAGEN", "GB", "LV21 CNS", "CONNECTION_REQUIRED", "", "",
     "false", "consent flow"),
    (29, "C0NSENT11AB000002", "VOLKSWAGEN", "GB", "LV21 CNT", "CONNECTION_REQUIRED", "", "",
     "false", "consent flow"),
    (30, "PEND1NG16AB000003", "RENAULT", "FR", "", "CONNECTED", "", "", "", "Connected"),
    # Lower case with dashes and a space, make in lower case: normalised and sent.
    (31, "WF0FXXGC9FKD12345", "FORD", "DE", "K-FD 345", "CONNECTED", "", "", "", "Connected"),
]
# fmt: on
FOREVER_PENDING_LINE = 20
# The export speaks the contract's statuses: a skipped row was never sent.
EXPORTED_AS = {"SKIPPED": "INVALID"}


def export_rows(client, upload) -> list[dict[str, str]]:
    response = client.get(reverse("upload_export", args=[upload.pk]))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def poll(client, upload):
    return client.get(
        reverse("upload_rows", args=[upload.pk]), {"v": 0}, headers={"HX-Request": "true"}
    )


@pytest.mark.parametrize("forever_pending", ["kept", "removed"])
@pytest.mark.django_db(transaction=False)
def test_demo_csv_reaches_final_states(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks, time_machine,
    forever_pending,
):  # fmt: skip
    """Every line of the demo CSV, from the preview to its final status, the summary and
    the export. PR0C11 stays PENDING forever (Volteras' rule), so the table only stops
    polling (286) in the run where the manager removed that line before sending."""
    client.force_login(manager)
    data = (ROOT / "docs" / "demo-vins.csv").read_bytes()
    assert len(data.decode("utf-8").splitlines()) == 1 + len(DEMO_EXPECTED)
    client.post(
        reverse("upload_new", args=[fleet.slug]),
        {"file": SimpleUploadedFile("demo-vins.csv", data, "text/csv")},
    )
    upload = Upload.objects.get()
    expected = list(DEMO_EXPECTED)
    if forever_pending == "removed":
        entry = upload.entries.get(line_number=FOREVER_PENDING_LINE)
        client.post(reverse("entry_remove", args=[upload.pk, entry.pk]))
        expected = [row for row in expected if row[0] != FOREVER_PENDING_LINE]
    never_sent = {"INVALID", "SKIPPED"}
    ready = upload.entries.filter(status=VinStatus.READY).count()
    assert ready == sum(1 for row in expected if row[5] not in never_sent)
    # The PEND1NG1 VIN waits for connect-pending (else the sandbox connects it at once).
    volteras.control(pending_seconds=3600)
    submit(client, upload, django_capture_on_commit_callbacks)

    waiting = upload.entries.get(vin="PEND1NG16AB000003")
    assert waiting.status == VinStatus.PENDING
    assert poll(client, upload).status_code == 200
    volteras.connect_pending()
    time_machine.move_to(timezone.now() + RECHECK_FIRST * 2)
    recheck_waiting_entries()

    # Each line's final state, error codes and who must act.
    entries = {e.line_number: e for e in upload.entries.all()}
    assert sorted(entries) == [row[0] for row in expected]
    for line, vin, make, country, plate, status, codes, action, _retry, _msg in expected:
        entry = entries[line]
        got = (entry.vin, entry.make, entry.country_code, entry.registration_plate, entry.status,
               ";".join(entry.error_codes), entry.action_category)  # fmt: skip
        assert got == (vin, make, country, plate, status, codes, action), f"line {line}"
        assert bool(entry.vehicle_id) == (status == "CONNECTED"), f"line {line}"
    assert entries[16].make_inferred
    assert entries[25].validity == VinEntry.Validity.WARNING
    assert {line for line, e in entries.items() if e.validity == VinEntry.Validity.WARNING} == {25}

    # One connect call per 100 VINs: this upload fits in one.
    assert ConnectBatch.objects.filter(upload=upload).count() == 1
    connected = entries[2]
    sources = list(connected.events.values_list("source", flat=True))
    assert sources[:2] == ["submission", "submission"]
    assert "poll" in sources
    pending = list(entries[30].events.values_list("status_to", "source"))
    assert pending[-1] == ("CONNECTED", "poll")

    # The summary counts, as the page shows them.
    page = client.get(upload.get_absolute_url())
    summary = page.context["summary"]
    counts = {str(status): n for status, n, _css in summary["counts"]}
    want = {"CONNECTED": 20, "CONNECTION_REQUIRED": 2, "INCOMPATIBLE": 1, "ERROR": 1,
            "INVALID": 4, "SKIPPED": 1, "PENDING": 1}  # fmt: skip
    if forever_pending == "removed":
        del want["PENDING"]
    assert counts == want
    assert summary["total"] == len(expected)
    assert summary["final"] == len(expected) - want.get("PENDING", 0)
    assert "OEM_VEHICLE_UPDATE_REQUIRED" in page.content.decode()

    # The whole export, row by row, in file order.
    rows = export_rows(client, upload)
    assert len(rows) == len(expected)
    for row, (line, vin, make, country, plate, status, codes, action, retry, msg) in zip(
        rows, expected, strict=True
    ):
        entry = entries[line]
        assert {k: v for k, v in row.items() if k not in {"message", "updated_at"}} == {
            "vin": vin,
            "make": make,
            "country_code": country,
            "registration_plate": plate,
            "status": EXPORTED_AS.get(status, status),
            "error_codes": codes,
            "action_category": action,
            "can_retry": retry,
            "vehicle_id": entry.vehicle_id,
        }, f"line {line}"
        assert msg in row["message"], f"line {line}: {row['message']!r}"
        assert row["updated_at"] == entry.updated_at.isoformat()

    # The live table: still polling (slowly) while PR0C11 waits, 286 once all is final.
    settled = poll(client, upload)
    if forever_pending == "kept":
        assert settled.status_code == 200
        assert f'every {SLOW_POLL_SECONDS}s" data-hidden-every="60"' in settled.content.decode()
    else:
        assert settled.status_code == 286


# The sandbox's other prefixes and the failures the portal only warns about: pasted VIN,
# make, country; what each ends as (status, error code, action category, can_retry).
# fmt: off
EVERY_OTHER_OUTCOME = [
    ("0FFL1NE1000000001", "VW,DE", "ERROR", "OEM_VEHICLE_OFFLINE", "CUSTOMER_ACTION", True),
    ("REM0TE11000000002", "VW,DE", "ERROR", "OEM_VEHICLE_REMOTE_ACCESS_DISABLED",
     "CUSTOMER_ACTION", True),
    ("SHAR1NG1000000003", "VW,DE", "ERROR", "OEM_VEHICLE_DATA_SHARING_DISABLED",
     "CUSTOMER_ACTION", True),
    ("FC0NSNT1000000004", "VW,DE", "ERROR", "FLEET_CONSENT_MISSING", "CUSTOMER_ACTION", True),
    ("DR1VER11000000005", "VW,DE", "ERROR", "OEM_AUTH_DRIVER_IS_NOT_PRIMARY_USER",
     "CUSTOMER_ACTION", True),
    ("N0TF0UND000000006", "VW,DE", "ERROR", "OEM_DEVICE_NOT_FOUND", "CONTACT_SUPPORT", False),
    ("N0PERM11000000007", "VW,DE", "ERROR", "NOT_PERMITTED", "CONTACT_SUPPORT", False),
    ("N0CHECK1000000008", "VW,DE", "ERROR", "VIN_CHECK_NOT_SUPPORTED", "CONTACT_SUPPORT", False),
    ("N0UPL0AD000000009", "VW,DE", "ERROR", "VIN_UPLOAD_NOT_SUPPORTED", "CONTACT_SUPPORT", False),
    ("BLACK11S000000010", "VW,DE", "ERROR", "VIN_BLACKLISTED", "UNDER_REVIEW", False),
    ("SUBJ0000000000011", "VW,DE", "ERROR", "SUBJECTS_NOT_ASSIGNABLE", "CONTACT_SUPPORT", True),
    # A European VIN with a wrong check digit: only a warning here, Volteras refuses it.
    ("WVGZZZE20MP012345", "VW,DE", "ERROR", "INVALID_VIN", "CUSTOMER_ACTION", False),
    # BMW in Japan: a warning here, the wrong region for Volteras.
    ("WBA11AW080FM20582", "BMW,JP", "ERROR", "OEM_INCORRECT_REGION", "CUSTOMER_ACTION", False),
]
# fmt: on


def test_every_other_sandbox_outcome(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    text = "\n".join(f"{vin},{rest}" for vin, rest, *_ in EVERY_OTHER_OUTCOME)
    upload = uploaded(fleet, manager, text)
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.READY}
    warned = upload.entries.filter(validity=VinEntry.Validity.WARNING)
    assert {"WVGZZZE20MP012345", "WBA11AW080FM20582"} <= set(warned.values_list("vin", flat=True))
    submit(client, upload, django_capture_on_commit_callbacks)
    got = {
        e.vin: (e.status, ";".join(e.error_codes), e.action_category, e.can_retry)
        for e in upload.entries.all()
    }
    assert got == {vin: tuple(rest) for vin, _input, *rest in EVERY_OTHER_OUTCOME}
    exported = {row["vin"]: row for row in export_rows(client, upload)}
    for vin, _input, status, code, action, retry in EVERY_OTHER_OUTCOME:
        row = exported[vin]
        assert (row["status"], row["error_codes"], row["action_category"], row["can_retry"]) == (
            status, code, action, str(retry).lower()
        )  # fmt: skip
    assert poll(client, upload).status_code == 286


def test_n_vins_cost_ceil_n_over_100_connect_calls(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    n = 230
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in range(n))))
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
    upload = uploaded(fleet, manager, "\n".join(f"{v},Ford,US" for v in vins))
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
    upload = uploaded(fleet, manager, make_vin(5))
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
    upload = uploaded(fleet, manager, "PERR0R11000000007,Volkswagen,GB\n1NC0MP11400000006,Ford,US")
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
    upload = uploaded(fleet, manager, "PEND1NG1000000008,Ford,US")
    volteras.control(pending_seconds=3600)
    submit(client, upload, django_capture_on_commit_callbacks)
    entry = upload.entries.get()
    assert entry.status == VinStatus.PENDING
    assert entry.next_check_at is not None
    volteras.connect_pending()
    assert recheck_waiting_entries() == 0  # not due yet
    time_machine.move_to(timezone.now() + RECHECK_FIRST * 2)
    assert recheck_waiting_entries() == 1
    entry.refresh_from_db()
    assert entry.status == VinStatus.CONNECTED


def test_eligibility_check_before_connecting(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = uploaded(fleet, manager, f"{make_vin(2)},Ford,US\n1NC0MP11400000005,Ford,US")
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
    upload = uploaded(fleet, manager, make_vin(11))
    submission.submit(upload, manager)
    batch = ConnectBatch.objects.get(upload=upload)
    volteras.control(faults=[{"kind": "latency", "ms": 300, "path_prefix": "/v1/vehicles/connect"}])
    posts_before = volteras.log().count('"POST /v1/vehicles/connect HTTP/1.1" 202')
    outcomes = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            outcomes.append(send_batch.call(batch.pk))
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
    upload = create_upload(
        fleet, manager, read_upload("\n".join(make_vin(20 + i) for i in range(3)))
    )
    submission.submit(upload, manager)
    batch = ConnectBatch.objects.get(upload=upload)
    # The dead worker's claim: state SUBMITTING, a lease, and it did POST.
    claimed, _owner = ConnectBatch.claim(
        batch.pk, [ConnectBatch.State.QUEUED], state=ConnectBatch.State.SUBMITTING
    )
    assert claimed is not None
    from connections import volteras as api

    api.get_client().connect_vehicles(
        [api.VehicleInput(vin=e.vin, make="FORD", country_code="US") for e in upload.entries.all()]
    )
    assert send_batch.call(batch.pk) == "not due"  # the lease still holds
    time_machine.move_to(timezone.now() + LEASE + LEASE)
    sweep()
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.AMBIGUOUS
    drain()
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTED}


def test_consent_links_from_the_upload_table(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = uploaded(
        fleet,
        manager,
        "C0NSENT1000000001,Volkswagen,GB\nC0NSENT1000000002,Volkswagen,GB",
    )
    submit(client, upload, django_capture_on_commit_callbacks)
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTION_REQUIRED}
    page = client.get(upload.get_absolute_url()).content.decode()
    assert "Create consent links for every VIN needing" in page
    assert "2 VINs need the owner's consent" in page
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


def test_consent_links_for_the_ticked_vins(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    """Checkboxes on the CONNECTION_REQUIRED rows feed one form (no JavaScript needed):
    links for exactly the ticked VINs; nothing ticked is refused, not taken as all."""
    client.force_login(manager)
    vins = [f"C0NSENT1000000{n:03d}" for n in (11, 12, 13)]
    upload = uploaded(fleet, manager, "\n".join(f"{v},Volkswagen,GB" for v in vins))
    submit(client, upload, django_capture_on_commit_callbacks)
    one, two, three = upload.entries.order_by("line_number")
    page = client.get(upload.get_absolute_url()).content.decode()
    url = reverse("upload_consent_links", args=[upload.pk])
    assert f'<form method="post" action="{url}" id="consent-pick">' in page
    for entry in (one, two, three):
        assert (
            f'<label class="pick" for="pick-{entry.pk}"><input type="checkbox" '
            f'id="pick-{entry.pk}" name="entry" value="{entry.pk}" form="consent-pick"'
        ) in page
        assert f'Select<span class="visually-hidden"> {entry.vin} for a consent link' in page

    refused = client.post(url, {"selected": "1"}, follow=True)
    assert "Tick the VINs that need a consent link" in refused.content.decode()
    assert not ConsentLink.objects.exists()

    client.post(url, {"selected": "1", "entry": [one.pk, three.pk]})
    assert [e.consent_links.count() for e in (one, two, three)] == [1, 0, 1]
    # A VIN with a usable link has nothing left to tick.
    page = client.get(upload.get_absolute_url()).content.decode()
    assert f'id="pick-{one.pk}"' not in page
    assert f'id="pick-{two.pk}"' in page


def test_refused_batch_shows_each_vin_failed(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    volteras.control(vehicle_limit=1)
    first = uploaded(fleet, manager, f"{make_vin(29)},Ford,US")
    submit(client, first, django_capture_on_commit_callbacks)
    assert first.entries.get().status == VinStatus.CONNECTED
    upload = uploaded(fleet, manager, f"{make_vin(30)},Ford,US")
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
    upload = uploaded(fleet, manager, f"{make_vin(31)},Ford,US")
    volteras.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles/connect"}])
    submit(client, upload, django_capture_on_commit_callbacks)
    batch = ConnectBatch.objects.get(upload=upload)
    assert (batch.state, batch.attempts) == (
        ConnectBatch.State.FAILED,
        MAX_SEND_ATTEMPTS,
    )
    entry = upload.entries.get()
    assert entry.status == VinStatus.ERROR
    assert entry.can_retry is True
    assert "could not be reached after 8 attempts" in entry.message


def test_retry_from_the_vin_page_returns_there(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    upload = uploaded(fleet, manager, "PERR0R11000000005,VW,GB")
    submit(client, upload, django_capture_on_commit_callbacks)
    entry = upload.entries.get()
    response = client.post(reverse("entry_retry", args=[upload.pk, entry.pk]), {"back_to": "entry"})
    assert response["Location"] == reverse("entry_detail", args=[entry.pk])
