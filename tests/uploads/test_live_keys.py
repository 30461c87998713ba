"""The upload table's poll sends only what the browser lacks: every keyed part
of the region (rows, summary, head) the browser shows at the same key comes
back as a placeholder (connections/web/live.py, static/js/live.js)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db import transaction
from django.urls import reverse
from django.utils import dateformat

from connections.models import VinEntry, VinStatus
from connections.uploads.reading import read_upload
from connections.uploads.row_html import changed_label, month_names
from connections.uploads.submission import create_upload, submit
from tests.factories import make_vin, stored_link

# What live.js sends back: the id and key of every keyed element it shows.
KEYED = re.compile(r'\bid="([^"]+)" data-key="([^"]+)"')
KEPT = re.compile(r'<(\w+) id="([^"]+)" data-key="[^"]+" data-live-keep></\1>')


def poll(client, upload, keys: dict[str, str]):
    upload.refresh_from_db()
    headers = {
        "HX-Request": "true",
        "HX-Target": "live",
        "Live-Keys": " ".join(f"{k}={v}" for k, v in keys.items()),
    }
    url = reverse("upload_rows", args=[upload.pk])
    response = client.get(url, {"v": upload.version - 1}, headers=headers)
    assert response.status_code == 200
    body = response.content.decode()
    keys.update(KEYED.findall(body))
    return body


def whole(body: str) -> set[str]:
    """The ids of the keyed elements sent whole (not as a placeholder)."""
    kept = {element_id for _, element_id in KEPT.findall(body)}
    return {element_id for element_id, _ in KEYED.findall(body)} - kept


def test_a_poll_sends_whole_only_what_changed(client, manager, fleet):
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in (1, 2, 3))))
    submit(upload, manager)
    first, second, third = upload.entries.order_by("line_number")
    client.force_login(manager)
    keys: dict[str, str] = {}
    body = poll(client, upload, keys)
    rows = {f"entry-{e.pk}" for e in (first, second, third)}
    assert rows | {"live-summary", "live-head"} <= whole(body)

    # A new status: its row, and the counts of the summary, change.
    second.observe(VinStatus.PROCESSING, "poll")
    body = poll(client, upload, keys)
    assert whole(body) == {f"entry-{second.pk}", "live-summary", "live-poller"}
    assert (
        f'<tr id="entry-{first.pk}" data-key="{keys[f"entry-{first.pk}"]}" data-live-keep>' in body
    )
    assert "Processing" in body.split(f'id="entry-{second.pk}"')[1]

    # Only what a row says changes: the summary's counts did not.
    second.observe(VinStatus.PROCESSING, "poll", message="Waiting for the manufacturer.")
    body = poll(client, upload, keys)
    assert whole(body) == {f"entry-{second.pk}", "live-poller"}
    assert "Waiting for the manufacturer." in body

    # A browser that lost its keys (a reload) gets everything again.
    assert rows | {"live-summary", "live-head"} <= whole(poll(client, upload, {}))


def test_a_row_written_around_its_model_is_sent_anew(client, manager, fleet):
    """A row's key moves with every write to the row, one that bypasses the
    entry's methods too (a bulk UPDATE, as the bulk moves make), and with
    nothing else: on PostgreSQL the key carries the row's version (its xmin,
    `RowVersion`), elsewhere a digest of its values. In production each write
    commits on its own; inside the test's transaction an atomic block is a
    savepoint, which PostgreSQL gives a transaction id of its own."""
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in (1, 2, 3))))
    submit(upload, manager)
    _, second, _ = upload.entries.order_by("line_number")
    client.force_login(manager)
    keys: dict[str, str] = {}
    poll(client, upload, keys)

    with transaction.atomic():
        VinEntry.objects.filter(pk=second.pk).update(message="Moved by a bulk update.")
        upload.bump()
    body = poll(client, upload, keys)
    assert whole(body) == {f"entry-{second.pk}", "live-poller"}
    assert "Moved by a bulk update." in body.split(f'id="entry-{second.pk}"')[1]

    # A new version with no row written: every row stays as the browser has it.
    with transaction.atomic():
        upload.bump()
    assert whole(poll(client, upload, keys)) == {"live-poller"}


def test_a_row_is_sent_anew_when_its_consent_link_changes(client, manager, fleet):
    """Links are read only for the rows that have one; a link made or moved
    changes its row's key all the same."""
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in (1, 2))))
    submit(upload, manager)
    first, second = upload.entries.order_by("line_number")
    second.observe(VinStatus.CONNECTION_REQUIRED, "poll")
    client.force_login(manager)
    keys: dict[str, str] = {}
    assert "Consent link</button>" in poll(client, upload, keys)
    link = stored_link(fleet, vin_entry=second, vin=second.vin)
    first.observe(VinStatus.PROCESSING, "poll")  # moves the version on
    body = poll(client, upload, keys)
    assert f"entry-{second.pk}" in whole(body)
    url = link.get_absolute_url()
    assert url in body.split(f'id="entry-{second.pk}"')[1]
    link.delete()
    first.observe(VinStatus.PENDING, "poll")
    body = poll(client, upload, keys)
    assert f"entry-{second.pk}" in whole(body)
    assert url not in body


def test_an_open_table_shows_a_vins_link_as_it_moves(client, manager, fleet):
    """A VIN's consent link moving (here: the owner opens it) moves its upload's
    version, so an open table looks again and sends that row anew."""
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in (1, 2))))
    submit(upload, manager)
    _, second = upload.entries.order_by("line_number")
    second.observe(VinStatus.CONNECTION_REQUIRED, "poll")
    link = stored_link(fleet, vin_entry=second, vin=second.vin)
    client.force_login(manager)
    keys: dict[str, str] = {}
    assert "Active" in poll(client, upload, keys).split(f'id="entry-{second.pk}"')[1]
    upload.refresh_from_db()
    seen = upload.version

    link.count_open()
    upload.refresh_from_db()
    assert upload.version == seen + 1
    body = poll(client, upload, keys)
    assert whole(body) == {f"entry-{second.pk}", "live-poller"}
    assert "Opened" in body.split(f'id="entry-{second.pk}"')[1]


def test_a_filter_changes_the_head_and_every_row_key(client, manager, fleet):
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in (1, 2))))
    submit(upload, manager)
    client.force_login(manager)
    keys: dict[str, str] = {}
    poll(client, upload, keys)
    url = reverse("upload_detail", args=[upload.pk])
    headers = {
        "HX-Request": "true",
        "HX-Target": "live",
        "Live-Keys": " ".join(f"{k}={v}" for k, v in keys.items()),
    }
    body = client.get(url, {"sort": "-line"}, headers=headers).content.decode()
    # The sort links and each row's forms carry the query: all sent anew.
    assert "data-live-keep" not in body.split('id="live-summary"')[1]
    assert 'sort=line">Line</a>' in body


def test_changed_label_is_the_date_filter_format():
    for moment in (
        datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 9, 14, 9, 5, 7, 123456, tzinfo=UTC),
    ):
        shown = dateformat.format(moment, "j M H:i:s")
        assert changed_label(moment) == changed_label(moment, month_names()) == shown


def test_a_filter_that_matches_nothing_says_so(client, manager, fleet):
    upload = create_upload(fleet, manager, read_upload(make_vin(1)))
    submit(upload, manager)
    client.force_login(manager)
    body = client.get(upload.get_absolute_url(), {"q": "NOSUCHVIN"}).content.decode()
    assert 'id="live-empty"' in body and "No VIN matches these filters." in body
    assert '<tr id="entry-' not in body
