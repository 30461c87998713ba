"""The outbox: queue a message once (`queue`), deliver it once (`deliver`).

`queue` stores the rendered message under a unique key and has the worker
deliver it after the transaction commits; the same key queued twice is one
message. `deliver` claims the row, hands it to the SMTP server through Django's
e-mail framework, and records what happened: sent; retried with backoff after
a temporary failure (a refused connection, a 4xx); failed after a permanent one
(a 5xx, a refused address) or too many attempts. A row whose worker died while
sending is not sent again (it may have gone out): it is marked failed, with a
retry button for a person who checks.
"""

from __future__ import annotations

import logging
import smtplib
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.utils import timezone

from connections.backoff import jittered
from connections.mail.compose import Rendered
from connections.models import MailMessage

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
# A queued row whose task has not run for this long is enqueued again by the sweep.
REENQUEUE_AFTER_SECONDS = 60
# Messages about a consent link are dropped once the link cannot be used any more.
LINK_KINDS = frozenset({"consent_link", "consent_reminder"})


def queue(
    key: str,
    kind: str,
    to: str,
    rendered: Rendered,
    *,
    reply_to: str = "",
    headers: dict[str, str] | None = None,
    consent_link=None,
    user=None,
    created_by=None,
) -> tuple[MailMessage, bool]:
    """Store a message for the worker to deliver; (the row, whether it is new).
    The same key a second time returns the first row and queues nothing."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or None
    fields = {
        "kind": kind,
        "to": to,
        "reply_to": reply_to,
        "subject": rendered.subject[:300],
        "text": rendered.text,
        "html": rendered.html,
        "language": rendered.language,
        "headers": {"Message-ID": make_msgid(domain=domain), **(headers or {})},
        "consent_link": consent_link,
        "user": user,
        "created_by": created_by,
    }
    try:
        with transaction.atomic():
            message, created = MailMessage.objects.get_or_create(key=key, defaults=fields)
    except IntegrityError:
        # Another process queued the same key between our read and write.
        return MailMessage.objects.get(key=key), False
    return message, created


def due_ids(limit: int = 200) -> list[int]:
    """Queued messages due now whose task was never enqueued or seems lost."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=REENQUEUE_AFTER_SECONDS)
    return list(
        MailMessage.objects.filter(state=MailMessage.State.QUEUED, next_attempt_at__lte=now)
        .exclude(enqueued_at__gt=stale)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def fail_abandoned() -> int:
    """Messages whose worker died mid-send: they may have gone out, so they are
    not resent by themselves (a person may retry them)."""
    return MailMessage.objects.filter(
        state=MailMessage.State.SENDING, lease_until__lt=timezone.now()
    ).update(
        state=MailMessage.State.FAILED,
        lease_owner="",
        lease_until=None,
        last_error="The worker stopped while handing the message to the mail server; "
        "it may or may not have been sent. Retry if the recipient did not get it.",
    )


def _email(message: MailMessage) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        reply_to=[message.reply_to] if message.reply_to else None,
        headers=dict(message.headers),
        connection=get_connection(fail_silently=False),
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    return email


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and 500 <= code < 600


def deliver(message_id: int) -> str:
    """One delivery attempt; says what happened."""
    message, owner = MailMessage.claim(message_id)
    if message is None:
        return "not due"
    link = message.consent_link
    if message.kind in LINK_KINDS and link is not None and not link.is_usable:
        message.release(owner, MailMessage.State.CANCELLED, last_error="The link is closed.")
        return "cancelled"
    try:
        _email(message).send()
    except (smtplib.SMTPException, OSError) as exc:
        return _record_failure(message, owner, exc)
    now = timezone.now()
    if not message.release(owner, MailMessage.State.SENT, sent_at=now, last_error=""):
        return "lease lost"
    if link is not None:
        link.note(f"E-mail sent to {message.to}: {message.subject}", mail=message.pk)
    return "sent"


def _record_failure(message: MailMessage, owner: str, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if _permanent(exc) or message.attempts >= settings.MAIL_MAX_ATTEMPTS:
        message.release(owner, MailMessage.State.FAILED, last_error=error)
        if message.consent_link is not None:
            message.consent_link.note(f"E-mail to {message.to} failed: {error}", mail=message.pk)
        logger.warning("mail %s to %s failed for good: %s", message.pk, message.to, error)
        return "failed"
    wait = jittered(message.attempts, FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS)
    message.release(
        owner,
        MailMessage.State.QUEUED,
        last_error=error,
        next_attempt_at=timezone.now() + wait,
        enqueued_at=None,
    )
    logger.info("mail %s to %s will be retried: %s", message.pk, message.to, error)
    return "retry"
