"""The contract's failure states the sandbox produces on purpose (sandbox/README.md):
a connect group that ends FAILED, and the eligibility answers FAILED and
INELIGIBLE_PENDING_FAILURE_REASON, handled by the portal end to end and shown
on the upload's page."""

import pytest

from connections.jobs import drain
from connections.models import ConnectBatch, Upload, VinStatus
from connections.uploads.submission import submit
from connections.uploads.tasks import start_eligibility_check
from tests.factories import magic_vin, make_vin, uploaded

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failed_group_shows_each_vin_failed_and_retryable(client, manager, fleet, volteras):
    failing = magic_vin("FA1LGRP1", "A")
    upload = uploaded(fleet, manager, f"VIN,Make,Country\n{failing},Volkswagen,GB")
    submit(upload, manager)
    drain(include_future=True)
    batch = ConnectBatch.objects.get(upload=upload)
    assert (batch.state, batch.group_status) == (ConnectBatch.State.DONE, "FAILED")
    entry = upload.entries.get()
    assert entry.status == VinStatus.ERROR
    assert entry.can_retry is True
    assert entry.vehicle_id == ""
    assert entry.retry_refusal() is None  # sending it again is the way forward

    client.force_login(manager)
    page = client.get(upload.get_absolute_url()).content.decode()
    assert failing in page
    assert ">Error<" in page
    assert "<strong>1</strong> of 1 VIN has a final result" in page


def test_eligibility_answers_that_could_not_decide_are_shown(
    client, manager, fleet, volteras, django_capture_on_commit_callbacks
):
    undecided = magic_vin("1NELPND1", "B")
    failed = magic_vin("EFA1LED1", "C")
    upload = uploaded(
        fleet,
        manager,
        f"VIN,Make,Country\n{undecided},Volkswagen,GB\n{failed},Volkswagen,GB\n"
        f"{make_vin(61)},Ford,GB",
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert start_eligibility_check(upload)
    drain(include_future=True)
    upload.refresh_from_db()
    assert upload.state == Upload.State.DRAFT
    answers = dict(upload.entries.values_list("vin", "eligibility"))
    assert answers[undecided] == "INELIGIBLE_PENDING_FAILURE_REASON"
    assert answers[failed] == "FAILED"
    assert answers[make_vin(61)] == "ELIGIBLE"

    client.force_login(manager)
    page = client.get(upload.get_absolute_url()).content.decode()
    assert "Not eligible (reason to follow)" in page
    assert "Check failed" in page
    # Advice only: every valid VIN can still be sent.
    assert "Send 3 valid VINs to Volteras" in page
