"""An upload holds no write lock while its file is read, and is never left half-stored."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.db.models import Manager
from django.urls import reverse

from connections.models import Upload, VinEntry
from connections.uploads.reading import read_upload
from connections.uploads.submission import UploadNotStored, create_upload
from connections.vin import check_digit


def make_vin(serial: int) -> str:
    body = f"WVWZZZ1JZ0W{serial:06d}"
    return body[:8] + check_digit(body) + body[9:]


def vin_text(count: int) -> str:
    return "VIN,Make\n" + "".join(f"{make_vin(n)},Volkswagen\n" for n in range(1, count + 1))


@pytest.mark.django_db(transaction=True)
def test_rows_are_read_with_no_transaction_open(fleet, manager):
    seen: list[bool] = []

    def watched():
        for row in read_upload(vin_text(5)):
            seen.append(connection.in_atomic_block)
            yield row

    upload = create_upload(fleet, manager, watched())
    assert seen == [False] * 5
    assert upload.entries.count() == 5


def test_a_failed_store_keeps_nothing_and_says_so(client, fleet, manager, settings, monkeypatch):
    settings.UPLOAD_STORE_CHUNK = 2
    real = Manager.bulk_create
    calls: list[int] = []

    def flaky(self, objs, *args, **kwargs):
        calls.append(len(objs))
        if len(calls) == 2:
            raise DatabaseError("database is locked")
        return real(self, objs, *args, **kwargs)

    monkeypatch.setattr(Manager, "bulk_create", flaky)
    client.force_login(manager)
    response = client.post(reverse("upload_new", args=[fleet.slug]), {"text": vin_text(5)})
    assert response.status_code == 200
    assert "could not be saved, so nothing was kept" in response.content.decode()
    assert calls == [2, 2]
    assert not Upload.objects.exists() and not VinEntry.objects.exists()


def test_store_failure_raises_for_callers(fleet, manager, monkeypatch):
    def broken(self, objs, *args, **kwargs):
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(Manager, "bulk_create", broken)
    with pytest.raises(UploadNotStored):
        create_upload(fleet, manager, read_upload(vin_text(3)))
    assert not Upload.objects.exists()
