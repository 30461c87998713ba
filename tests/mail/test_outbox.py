"""The outbox: a message is queued once per key, delivered once by the worker,
retried with backoff after a temporary failure, failed after a permanent one."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from connections import jobs
from connections.mail import outbox
from connections.mail.compose import Rendered
from connections.mail.tasks import post, redrive_mail
from connections.models import MailMessage

HELLO = Rendered("Hello", "Hello in text\n", "<p>Hello in HTML</p>", "en")


def test_one_message_per_key_and_delivered_once(db):
    first, created = post("test:1", "test", "jane@example.com", HELLO, reply_to="boss@example.com")
    again, created_again = post("test:1", "test", "jane@example.com", HELLO)
    assert created and not created_again and again.pk == first.pk
    jobs.drain()
    jobs.drain()
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["jane@example.com"] and sent.reply_to == ["boss@example.com"]
    assert sent.body == "Hello in text\n"
    assert sent.alternatives[0][0] == "<p>Hello in HTML</p>"
    assert sent.extra_headers["Message-ID"] == first.headers["Message-ID"]
    first.refresh_from_db()
    assert first.state == MailMessage.State.SENT and first.attempts == 1 and first.sent_at


def test_a_claimed_message_is_not_claimed_again(db):
    message, _ = outbox.queue("test:claim", "test", "a@example.com", HELLO)
    claimed, _ = MailMessage.claim(message.pk)
    assert claimed is not None
    assert MailMessage.claim(message.pk)[0] is None
    assert outbox.deliver(message.pk) == "not due"


def test_temporary_failure_is_retried_with_backoff(db, monkeypatch):
    calls = []

    def refuse(self, *args, **kwargs):
        calls.append(1)
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    message, _ = outbox.queue("test:retry", "test", "a@example.com", HELLO)
    assert outbox.deliver(message.pk) == "retry"
    message.refresh_from_db()
    assert message.state == MailMessage.State.QUEUED and message.attempts == 1
    wait = message.next_attempt_at - timezone.now()
    assert timedelta(seconds=20) < wait < timedelta(seconds=40)
    assert "Connection unexpectedly closed" in message.last_error
    assert outbox.deliver(message.pk) == "not due"
    monkeypatch.undo()
    with time_machine.travel(message.next_attempt_at + timedelta(seconds=1)):
        assert redrive_mail() == 1
        assert outbox.deliver(message.pk) == "sent"
    assert len(mail.outbox) == 1


def test_permanent_failure_and_too_many_attempts_fail(db, monkeypatch, settings):
    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"No such user")})

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    message, _ = outbox.queue("test:permanent", "test", "a@example.com", HELLO)
    assert outbox.deliver(message.pk) == "failed"
    message.refresh_from_db()
    assert message.state == MailMessage.State.FAILED and "No such user" in message.last_error

    def busy(self, *args, **kwargs):
        raise smtplib.SMTPResponseException(451, b"Try later")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", busy)
    settings.MAIL_MAX_ATTEMPTS = 2
    other, _ = outbox.queue("test:busy", "test", "b@example.com", HELLO)
    assert outbox.deliver(other.pk) == "retry"
    MailMessage.objects.filter(pk=other.pk).update(next_attempt_at=timezone.now())
    assert outbox.deliver(other.pk) == "failed"
    assert message.retry()


def test_a_worker_dying_mid_send_does_not_send_twice(db):
    message, _ = outbox.queue("test:dead", "test", "a@example.com", HELLO)
    MailMessage.claim(message.pk)  # and the worker dies here
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        redrive_mail()
        jobs.drain()
    message.refresh_from_db()
    assert message.state == MailMessage.State.FAILED and "may or may not" in message.last_error
    assert mail.outbox == []


@pytest.mark.parametrize("debug", [True, False])
def test_the_admins_mail_page(client, users, settings, debug):
    settings.DEBUG = debug
    message, _ = post("test:page", "test", "jane@example.com", HELLO)
    for name in ("manager", "support"):
        client.force_login(users[name])
        assert client.get(reverse("mail_outbox")).status_code == 404
    client.force_login(users["admin"])
    response = client.get(reverse("mail_outbox"))
    assert response.status_code == (200 if debug else 404)
    if debug:
        assert "jane@example.com" in response.content.decode()
        detail = client.get(reverse("mail_outbox_detail", args=[message.pk]))
        assert "Hello in text" in detail.content.decode()
