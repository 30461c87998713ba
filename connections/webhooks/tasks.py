"""The webhooks' background work: draining stored events, and the watch that starts a drain."""

from __future__ import annotations

import logging

from django_tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from connections.models import WebhookEvent
from connections.webhooks import process

logger = logging.getLogger(__name__)


@task()
def process_webhook_event(event_id: int) -> str:
    return process.process_event(event_id)


@task()
def process_due_webhook_events() -> int:
    done = process.process_due()
    # Out of time with work left: hand over to a fresh task.
    if WebhookEvent.objects.due().exists():
        process_due_webhook_events.enqueue()
    return done


def processed_inline() -> bool:
    """Whether tasks run as they are enqueued (a backend other than the
    database queue, e.g. `ImmediateBackend`): then no worker watches the
    events table and the receiver must start their processing itself."""
    return not isinstance(process_due_webhook_events.get_backend(), DatabaseBackend)


def _drain_waiting() -> bool:
    return DBTaskResult.objects.filter(
        status=TaskResultStatus.READY, task_path=process_due_webhook_events.module_path
    ).exists()


def redrive_webhook_events() -> int:
    """Enqueue a drain when events are due and no drain is waiting in the
    queue: new deliveries, a retry come due, or a worker that died holding a
    lease (its event is due again once the lease expires). While a drain runs,
    one more waits, so an idle second worker joins in on a burst."""
    if not WebhookEvent.objects.due().exists() or _drain_waiting():
        return 0
    process_due_webhook_events.enqueue()
    return 1


def process_again(event: WebhookEvent) -> None:
    """Support's "process again" for one event."""
    event.process_again()
    process_webhook_event.enqueue(event.pk)


def prune_refused_deliveries() -> int:
    """Forget old refused deliveries (a bounded number per sweep)."""
    return process.prune_refused_deliveries()
