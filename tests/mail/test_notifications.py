"""Notifications for managers and support: each chooses what to receive, every
e-mail has a one-click unsubscribe, and an event is told to a recipient once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from connections import jobs
from connections.models import (
    ConsentLink,
    LinkStatus,
    MailMessage,
    NotificationChoice,
    NotificationKind,
    Upload,
    VinEntry,
    VinStatus,
)
from connections.notifications import events, tasks
from tests.factories import owner_link


@pytest.fixture
def people(users):
    for name, user in users.items():
        user.email = f"{name}@example.com"
        user.save()
    return users


def settled_upload(fleet, manager) -> Upload:
    upload = Upload.objects.create(
        fleet=fleet,
        created_by=manager,
        state=Upload.State.SUBMITTED,
        submitted_at=timezone.now(),
        source_name="fleet.csv",
    )
    for line, status in enumerate([VinStatus.CONNECTED, VinStatus.ERROR], start=1):
        VinEntry.objects.create(
            upload=upload,
            fleet=fleet,
            line_number=line,
            vin=f"WVWZZZ1JZXW00000{line}",
            validity=VinEntry.Validity.VALID,
            status=status,
        )
    return upload


def test_a_settled_upload_is_told_to_its_managers_once(people, fleet):
    upload = settled_upload(fleet, people["manager"])
    assert events.settled_uploads() == 1  # the manager; not the outsider, support or admin
    assert events.settled_uploads() == 0
    jobs.drain()
    [message] = mail.outbox
    assert message.to == ["manager@example.com"]
    assert message.subject == f"Upload {upload.pk} of Demo Fleet has settled: 1 VIN needs you"
    assert upload.get_absolute_url() in message.body
    unsubscribe = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in message.body and unsubscribe in message.alternatives[0][0]


def test_unsubscribe_with_one_click_without_login(client, people, fleet):
    settled_upload(fleet, people["manager"])
    events.settled_uploads()
    jobs.drain()
    url = mail.outbox[0].extra_headers["List-Unsubscribe"].strip("<>")
    path = url.removeprefix("http://127.0.0.1:8000")
    page = client.get(path)
    assert page.status_code == 200 and "Unsubscribe" in page.content.decode()
    assert NotificationChoice.wanted(people["manager"], NotificationKind.UPLOAD_SETTLED)
    assert client.post(path).status_code == 200  # a mail program's one-click POST, no CSRF
    assert not NotificationChoice.wanted(people["manager"], NotificationKind.UPLOAD_SETTLED)
    assert client.get(path[:-5] + "xxxx/").status_code == 404  # a forged token


def test_settings_page(client, people):
    url = reverse("notification_settings")
    client.force_login(people["manager"])
    page = client.get(url).content.decode()
    assert "A daily digest" in page and "(support)" not in page
    response = client.post(url, {"email": "new@example.com", "digest": "on"})
    assert response.status_code == 302
    manager = people["manager"]
    manager.refresh_from_db()
    assert manager.email == "new@example.com"
    assert NotificationChoice.wanted(manager, NotificationKind.DIGEST)
    assert not NotificationChoice.wanted(manager, NotificationKind.UPLOAD_SETTLED)
    client.force_login(people["support"])
    assert "A VIN is stuck (support)" in client.get(url).content.decode()
    client.logout()
    assert client.get(url).status_code == 302


def test_completed_consent_digest_and_support_notices(people, fleet, settings):
    link = owner_link(fleet)
    link.move(LinkStatus.COMPLETED, "Completed.", returned_at=timezone.now())
    assert events.completed_links() == 1
    NotificationChoice.choose(people["manager"], NotificationKind.DIGEST, True)
    settled_upload(fleet, people["manager"])
    settings.DIGEST_HOUR = 0
    assert events.daily_digest() == 1 and events.daily_digest() == 0
    NotificationChoice.choose(people["support"], NotificationKind.STUCK, True)
    stuck = VinEntry.objects.filter(status=VinStatus.CONNECTED).get()
    VinEntry.objects.filter(pk=stuck.pk).update(
        status=VinStatus.PENDING, status_changed_at=timezone.now() - timedelta(days=5)
    )
    assert events.stuck_vins() == 1 and events.stuck_vins() == 0
    jobs.drain()
    by_kind = {m.kind: m for m in MailMessage.objects.all()}
    assert by_kind["notify_consent_completed"].to == "manager@example.com"
    assert "Van 7" in by_kind["notify_consent_completed"].subject
    assert "Demo Fleet: 1" in by_kind["notify_digest"].text
    assert by_kind["notify_stuck"].to == "support@example.com"
    assert {m.state for m in MailMessage.objects.all()} == {MailMessage.State.SENT}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_one_notification(people, fleet):
    settled_upload(fleet, people["manager"])
    results, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        try:
            results.append(events.settled_uploads())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert MailMessage.objects.filter(kind="notify_upload_settled").count() == 1


def test_the_sweeper_runs_at_most_once_a_minute(people, fleet, monkeypatch):
    monkeypatch.setitem(tasks._last_run, "at", 0.0)
    settled_upload(fleet, people["manager"])
    assert tasks.notify_when_due() == 1
    assert tasks.notify_when_due() == 0
    assert ConsentLink.objects.count() == 0
