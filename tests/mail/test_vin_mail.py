"""Owners' addresses from the upload file: read from an e-mail column, kept on
the VIN, and used when per-VIN consent links are made; the bulk send shows its
progress and what failed, with a retry."""

from __future__ import annotations

import smtplib

import pytest
from django.core import mail
from django.urls import reverse

from connections import jobs
from connections.models import ConsentLink, MailMessage, Region, Upload, VinEntry, VinStatus
from connections.uploads.reading import read_upload
from connections.uploads.validation import validate_rows
from connections.vin import check_digit
from tests.fixtures_sandbox import point_portal_at


def make_vin(serial: int) -> str:
    vin = f"WVWZZZ1JZ0W{serial:06d}"
    return vin[:8] + check_digit(vin) + vin[9:]


VIN_1, VIN_2 = make_vin(1), make_vin(2)


@pytest.mark.parametrize("heading", ["E-mail", "Owner email", "driver e-mail", "EMAIL ADDRESS"])
def test_the_email_column_is_read_and_checked(heading):
    text = f"VIN;Make;{heading}\n{VIN_1};VW;jane@example.com\n{VIN_2};VW;not an address\n"
    rows = list(read_upload(text.encode(), filename="fleet.csv"))
    assert [row.fields["owner_email"] for row in rows] == ["jane@example.com", "not an address"]
    checked = list(
        validate_rows(rows, default_country="GB", default_region=Region.EUROPE, existing_vins={})
    )
    assert checked[0].owner_email == "jane@example.com"
    assert checked[0].entry_fields()["owner_email"] == "jane@example.com"
    assert checked[1].owner_email == ""
    assert any("not an e-mail address" in problem for problem in checked[1].problems)


@pytest.fixture
def upload(fleet, manager) -> Upload:
    upload = Upload.objects.create(fleet=fleet, created_by=manager, state=Upload.State.SUBMITTED)
    for line, (vin, email) in enumerate([(VIN_1, "jane@example.com"), (VIN_2, "")], start=1):
        VinEntry.objects.create(
            upload=upload,
            fleet=fleet,
            line_number=line,
            raw_vin=vin,
            vin=vin,
            make="VOLKSWAGEN",
            country_code="DE",
            validity=VinEntry.Validity.VALID,
            status=VinStatus.CONNECTION_REQUIRED,
            owner_email=email,
        )
    return upload


def test_per_vin_links_are_emailed_to_the_owners_with_progress_and_retry(
    client, users, upload, settings, sandbox, monkeypatch
):
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_MAX_RETRIES = 0
    client.force_login(users["support"])  # support may send per-VIN links too
    response = client.post(reverse("upload_consent_links", args=[upload.pk]), follow=True)
    assert "1 link is being e-mailed to its owner." in response.content.decode()
    assert ConsentLink.objects.count() == 2

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"jane@example.com": (550, b"Mailbox unknown")})

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    jobs.drain()
    page = client.get(reverse("upload_consent_mail", args=[upload.pk])).content.decode()
    assert "<strong>0</strong> of 1 sent" in page and "<strong>1</strong> failed" in page
    assert VIN_1 in page and "Mailbox unknown" in page
    monkeypatch.undo()

    retry = reverse("upload_consent_mail_retry", args=[upload.pk])
    assert client.post(retry).status_code == 302
    jobs.drain()
    [sent] = mail.outbox
    assert sent.to == ["jane@example.com"] and "(Europe/Berlin)" in sent.body
    page = client.get(reverse("upload_consent_mail", args=[upload.pk])).content.decode()
    assert "<strong>1</strong> of 1 sent" in page
    assert MailMessage.objects.get().state == MailMessage.State.SENT

    client.force_login(users["outsider"])
    assert client.get(reverse("upload_consent_mail", args=[upload.pk])).status_code == 404
    assert client.post(retry).status_code == 404
