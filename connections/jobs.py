"""The worker's registry: every task module, sweeper and watcher, listed here.

Durable state lives in rows (batches, VIN entries, webhook events), never only
in the queue: a task is a trigger that carries an id, claims its row, does one
step and schedules the next. `sweep()` runs every few seconds in each worker
and re-drives whatever is due, so a lost task or a dead worker delays work but
never loses it; `watch()` runs between sweeps, so new work (a stored webhook
event) starts within about a second without the web tier enqueuing anything.

Each capability declares its tasks and sweepers in its own `tasks.py`:
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from connections.backoff import TRANSIENT_DB_ERRORS
from connections.consent import tasks as consent
from connections.mail import tasks as mail
from connections.models import ConnectBatch, WorkerHeartbeat
from connections.notifications import tasks as notifications
from connections.sending import tasks as sending
from connections.uploads import tasks as uploads
from connections.vehicles import tasks as vehicles
from connections.webhooks import tasks as webhooks

logger = logging.getLogger(__name__)

# A task row whose worker has not beaten for this long is orphaned.
ORPHAN_AFTER = timedelta(seconds=max(60, settings.WORKER_SWEEP_SECONDS * 6))
# A task that took its worker down this many times is not tried again.
MAX_TASK_RUNS = 3
# How often (seconds) a worker runs the watchers between sweeps.
WATCH_EVERY = 0.25


def recover_orphaned_tasks() -> int:
    """django-tasks-db leaves a task RUNNING forever when its worker dies; put
    it back in the queue (our tasks are safe to run twice), or fail it when it
    has already taken down workers before."""
    cutoff = timezone.now() - ORPHAN_AFTER
    alive = set(
        WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values_list("worker_id", flat=True)
    )
    recovered = 0
    for row in DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, started_at__lt=cutoff
    ).only("id", "worker_ids"):
        if row.worker_ids and row.worker_ids[-1] in alive:
            continue
        with transaction.atomic():
            locked = (
                DBTaskResult.objects.select_for_update()
                .filter(pk=row.pk, status=TaskResultStatus.RUNNING)
                .first()
            )
            if locked is None:
                continue
            if len(locked.worker_ids) >= MAX_TASK_RUNS:
                locked.status = TaskResultStatus.FAILED
                locked.finished_at = timezone.now()
                locked.exception_class_path = "connections.jobs.WorkerDied"
                locked.traceback = f"Its worker died {len(locked.worker_ids)} times."
                locked.save()
                logger.error("task %s failed: its workers died %s times", locked.pk, MAX_TASK_RUNS)
            else:
                locked.status = TaskResultStatus.READY
                locked.run_after = timezone.now()
                locked.save(update_fields=["status", "run_after"])
                logger.warning("task %s requeued: worker %s died", locked.pk, locked.worker_ids)
            recovered += 1
    return recovered


# Run every `WORKER_SWEEP_SECONDS` by every worker; each returns how much it re-drove.
SWEEPERS: list[Callable[[], int]] = [
    recover_orphaned_tasks,
    sending.redrive_batches,
    sending.recheck_waiting_entries,
    uploads.redrive_eligibility_checks,
    consent.confirm_pending_returns,
    consent.send_due_reminders,
    webhooks.redrive_webhook_events,
    webhooks.prune_refused_deliveries,
    vehicles.reconcile_when_due,
    notifications.notify_when_due,
    mail.redrive_mail,
]
# Cheap checks (one indexed query when idle), run every `WATCH_EVERY` seconds.
WATCHERS: list[Callable[[], int]] = [
    webhooks.redrive_webhook_events,
]


def _run_all(funcs: list[Callable[[], int]], what: str) -> dict[str, int]:
    done = {}
    for func in funcs:
        try:
            done[func.__name__] = func()
        except TRANSIENT_DB_ERRORS:
            # The database, not this function: the others would fail alike.
            # The caller backs off and tries them all again.
            raise
        except Exception:
            # One failing sweeper must not stop the others (or the worker).
            logger.exception("%s %s failed", what, func.__name__)
            done[func.__name__] = -1
    return done


def sweep() -> dict[str, int]:
    return _run_all(SWEEPERS, "sweeper")


def watch() -> dict[str, int]:
    return _run_all(WATCHERS, "watcher")


def drain(max_rounds: int = 200, *, include_future: bool = True) -> int:
    """Run queued tasks in this process until none is left (tests, `make` demos).

    With `include_future`, tasks scheduled for later run now too, so a test
    walks a batch through send → poll → done without waiting on the clock.
    """
    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="drain",
        excluded_queue_names=[],
    )
    ran = 0
    for _ in range(max_rounds):
        # As a worker's watch does between tasks (e.g. webhook events stored).
        watch()
        ready = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        if include_future:
            ready.update(run_after=timezone.now() - timedelta(seconds=1))
            ConnectBatch.objects.filter(next_attempt_at__gt=timezone.now()).update(
                next_attempt_at=timezone.now()
            )
        row = ready.order_by("run_after", "enqueued_at").first()
        if row is None:
            return ran
        row.claim(worker.worker_id)
        worker.run_task(row)
        ran += 1
    return ran
