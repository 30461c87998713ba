"""Delivering the outbox in the worker: a task per message, and the sweeper
that enqueues whatever is due (new, retried after backoff, or whose task was lost)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tasks import task

from connections.mail import outbox
from connections.mail.compose import Rendered
from connections.models import MailMessage


@task()
def deliver_message(message_id: int) -> str:
    return outbox.deliver(message_id)


def post(
    key: str, kind: str, to: str, rendered: Rendered, **fields: Any
) -> tuple[MailMessage, bool]:
    """Queue a message (`outbox.queue`) and have a worker deliver it; a key
    already queued returns the existing message (and False) and sends nothing more."""
    message, created = outbox.queue(key, kind, to, rendered, **fields)
    if created:
        enqueue_delivery(message)
    return message, created


def enqueue_delivery(message: MailMessage) -> None:
    """Have a worker deliver the message. The task row is written in the same
    database transaction as the message, so neither exists without the other."""
    _enqueue([message.pk])


def _enqueue(ids: list[int]) -> None:
    MailMessage.objects.filter(pk__in=ids).update(enqueued_at=timezone.now())
    for message_id in ids:
        deliver_message.enqueue(message_id)


def redrive_mail() -> int:
    """Sweeper: enqueue due messages; give up on those whose worker died mid-send."""
    failed = outbox.fail_abandoned()
    ids = outbox.due_ids()
    _enqueue(ids)
    return len(ids) + failed
