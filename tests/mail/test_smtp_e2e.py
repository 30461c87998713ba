"""End to end through a real SMTP server: `make run`'s aiosmtpd sink on a free
port, the worker delivering through Django's SMTP backend, the message kept as .eml."""

from __future__ import annotations

import email
from email import policy

from connections import jobs
from connections.mail import sink
from connections.mail.compose import Rendered
from connections.mail.tasks import post
from connections.models import MailMessage
from tests.fixtures_sandbox import free_port


def test_a_message_reaches_the_local_smtp_server(db, settings, tmp_path):
    port = free_port()
    server = sink.start(tmp_path, "127.0.0.1", port)
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        rendered = Rendered("Grüße", "Hallo Jane\n", "<p>Hallo Jane</p>", "de")
        message, _ = post("e2e:1", "test", "jane@example.com", rendered, reply_to="b@example.com")
        jobs.drain()
    finally:
        server.stop()
    message.refresh_from_db()
    assert message.state == MailMessage.State.SENT, message.last_error
    [kept] = sink.kept(tmp_path)
    parsed = email.message_from_bytes(kept.read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Grüße" and parsed["To"] == "jane@example.com"
    assert parsed["Reply-To"] == "b@example.com"
    assert parsed["Message-ID"] == message.headers["Message-ID"]
    assert parsed.get_body(("plain",)).get_content().strip() == "Hallo Jane"
    assert "<p>Hallo Jane</p>" in parsed.get_body(("html",)).get_content()
