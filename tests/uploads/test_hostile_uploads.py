"""Hostile and broken files (tests/data/bad_uploads/make.py) posted through the
upload page: a clear message and never a 5xx, nothing half-stored, no hang."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from connections.models import Upload, VinEntry, VinStatus
from tests.data.bad_uploads.make import CASES, SKODA, UTF8_SKODA, Case, xlsx

HANG_GUARD_SECONDS = 10


def post_file(client, fleet, name: str, data: bytes):
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(reverse("upload_new", args=[fleet.slug]), {"file": upload})


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_upload(manager_client, fleet, settings, case: Case):
    # Smaller bounds than the defaults keep the run short on a busy machine.
    settings.UPLOAD_XLSX_MAX_SECONDS = 4
    settings.UPLOAD_XLSX_MAX_SHARED_STRINGS = 50_000
    settings.UPLOAD_XLSX_MAX_CELLS = 100_000
    data = case.build()
    started = time.monotonic()
    response = post_file(manager_client, fleet, case.name, data)
    took = time.monotonic() - started
    assert response.status_code in (200, 302), response.status_code
    assert took < HANG_GUARD_SECONDS, f"{case.name} took {took:.1f} s"
    if case.refused:
        assert response.status_code == 200
        page = response.content.decode()
        assert case.refused in page, page[page.find("errorlist") - 200 :][:800]
        assert not Upload.objects.exists() and not VinEntry.objects.exists()
    else:
        assert response.status_code == 302, response.content.decode()[:2000]
        (upload,) = Upload.objects.all()
        assert upload.entries.count() == case.rows


def stored(client, fleet, name: str, data: bytes) -> list[VinEntry]:
    response = post_file(client, fleet, name, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return list(Upload.objects.get().entries.order_by("line_number"))


def test_one_windows_byte_does_not_turn_a_utf8_file_into_mojibake(manager_client, fleet):
    data = UTF8_SKODA + b"TMBJJ7NE0J0000002,Citro\xebn,C 1\n"
    skoda, citroen = stored(manager_client, fleet, "fleet.csv", data)
    assert (skoda.vin, skoda.make, skoda.registration_plate) == (SKODA, "SKODA", "ŠK 123")
    assert skoda.status == VinStatus.READY
    assert citroen.make == "CITROEN"


def test_a_line_that_is_neither_utf8_nor_windows_1252_is_invalid_and_named(manager_client, fleet):
    data = UTF8_SKODA + SKODA.encode() + b",\xc5\xa0koda,\xe9\x81\n"
    first, second = stored(manager_client, fleet, "fleet.csv", data)
    assert first.status == VinStatus.READY
    assert second.status == VinStatus.INVALID
    assert any("Line 3" in p and "cannot be read" in p for p in second.problems)


def test_a_sheet_row_far_down_is_read_without_reading_the_rows_between(manager_client, fleet):
    from tests.data.bad_uploads.make import VW2, inline, vin_sheet

    data = xlsx(vin_sheet(f'<row r="1048576">{inline("A1048576", VW2)}</row>'))
    started = time.monotonic()
    rows = stored(manager_client, fleet, "fleet.xlsx", data)
    assert time.monotonic() - started < 2
    assert [r.line_number for r in rows] == [2, 1_048_576]
