"""Consent links sent by the portal: one address from the new-link form or the
link's page, or the owners' addresses from the upload file; the e-mail in the
link's language; the timeline; reminders before expiry that stop when the link closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from django.core import mail
from django.urls import reverse

from connections import jobs
from connections.consent import emails
from connections.consent.tasks import send_due_reminders
from connections.models import ConsentLink, LinkStatus, MailMessage
from tests.factories import owner_link

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def details(link: ConsentLink) -> list[str]:
    return list(link.events.values_list("detail", flat=True))


@time_machine.travel(NOW, tick=False)
def test_send_from_the_links_page_in_german(client, manager, fleet, users):
    manager.email, manager.first_name, manager.last_name = "max@fleet.example", "Max", "Muster"
    manager.save()
    link = owner_link(fleet, language="de", created_by=manager)
    client.force_login(manager)
    url = reverse("consent_link_send", args=[fleet.slug, link.pk])
    for _ in range(2):  # a double click sends one message
        assert client.post(url, {"email": "jane@example.com"}).status_code == 302
    jobs.drain()
    [message] = mail.outbox
    assert message.to == ["jane@example.com"]
    assert message.reply_to == ["Max Muster <max@fleet.example>"]
    assert message.subject == "Demo Fleet: Bitte verbinden Sie Ihr Fahrzeug"
    assert "Hi Jane, please connect the company car." in message.body
    assert link.short_url in message.body
    assert "20. Dezember 2026 16:30 (Europe/Berlin)" in message.body
    assert "Live-Daten: Ladestand" in message.body
    html = message.alternatives[0][0]
    assert '<html lang="de">' in html and "Mein Fahrzeug verbinden" in html
    link.refresh_from_db()
    assert link.recipient_email == "jane@example.com" and link.emailed_at == NOW
    assert details(link)[-2:] == [
        "E-mail to jane@example.com queued.",
        "E-mail sent to jane@example.com: Demo Fleet: Bitte verbinden Sie Ihr Fahrzeug",
    ]
    page = client.get(link.get_absolute_url()).content.decode()
    assert "Send by e-mail" in page and "jane@example.com" in page


def test_who_may_send(client, users, fleet, other_fleet):
    link = owner_link(fleet)
    url = reverse("consent_link_send", args=[fleet.slug, link.pk])
    for name, status in [("outsider", 404), ("support", 403), ("manager", 302), ("admin", 302)]:
        client.force_login(users[name])
        assert client.post(url, {"email": "jane@example.com"}).status_code == status, name
    client.logout()
    assert client.post(url, {"email": "jane@example.com"}).status_code == 302  # to login
    assert MailMessage.objects.count() == 1


def test_new_link_form_sends_it(client, manager, fleet, volteras):
    client.force_login(manager)
    data = {
        "label": "Jane's car",
        "recipient_note": "Ciao Jane",
        "recipient_email": "jane@example.com",
        "scopes": ["vehicle:information"],
        "device_types": ["VEHICLE"],
        "country_code": "IT",
        "region": "EUROPE",
        "locale": "it-IT",
        "expiry_amount": 48,
        "expiry_unit": "hours",
    }
    response = client.post(reverse("consent_link_new", args=[fleet.slug]), data)
    assert response.status_code == 302
    link = ConsentLink.objects.get()
    assert link.language == "it" and "locale" not in link.options  # not in the contract's enum
    jobs.drain()
    [message] = mail.outbox
    assert "Collega il mio veicolo" in message.alternatives[0][0]
    assert "(Europe/Rome)" in message.body


def test_reminders_before_expiry_at_most_twice_and_not_after_closing(db, fleet, manager):
    with time_machine.travel(NOW, tick=False):
        link = owner_link(fleet, expires_at=NOW + timedelta(days=7), created_by=manager)
        emails.send_link(link, "jane@example.com", manager)
        assert send_due_reminders() == 0
    with time_machine.travel(NOW + timedelta(days=5, hours=1), tick=False):  # 47 h left
        assert send_due_reminders() == 1
        assert send_due_reminders() == 0
    with time_machine.travel(NOW + timedelta(days=6, hours=1), tick=False):  # 23 h left
        assert send_due_reminders() == 1
        assert send_due_reminders() == 0
        jobs.drain()
    subjects = [m.subject for m in mail.outbox]
    assert subjects.count("Reminder from Demo Fleet: your vehicle link expires soon") == 2

    other = owner_link(fleet, expires_at=NOW + timedelta(days=7))
    with time_machine.travel(NOW, tick=False):
        emails.send_link(other, "joe@example.com", manager)
    other.move(LinkStatus.COMPLETED, "The owner completed the consent flow.")
    with time_machine.travel(NOW + timedelta(days=5, hours=1), tick=False):
        assert send_due_reminders() == 0


def test_a_reminder_queued_before_revocation_is_not_sent(db, fleet, manager):
    with time_machine.travel(NOW, tick=False):
        link = owner_link(fleet, expires_at=NOW + timedelta(days=7))
        emails.send_link(link, "jane@example.com", manager)
        jobs.drain()
    with time_machine.travel(NOW + timedelta(days=5, hours=1), tick=False):
        assert send_due_reminders() == 1
        link.move(LinkStatus.REVOKED, "Revoked.")
        jobs.drain()
    assert len(mail.outbox) == 1
    assert MailMessage.objects.get(kind="consent_reminder").state == MailMessage.State.CANCELLED
