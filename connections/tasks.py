"""Background work.

Durable state lives in rows (batches, VIN entries, webhook events), never only
in the queue: a task is a trigger that carries an id, claims its row, does one
step and schedules the next. `sweep()` runs every few seconds in each worker
and re-drives whatever is due, so a lost task or a dead worker delays work but
never loses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from .models import ConnectBatch, WorkerHeartbeat

logger = logging.getLogger(__name__)

# A task row whose worker has not beaten for this long is orphaned.
ORPHAN_AFTER = timedelta(seconds=max(60, settings.WORKER_SWEEP_SECONDS * 6))
# A task that took its worker down this many times is not tried again.
MAX_TASK_RUNS = 3

SWEEPERS: list[Callable[[], int]] = []
# Cheap checks (one indexed query when idle) a worker runs this often
# (seconds), between sweeps, so new work starts within about a second
# without the web tier enqueuing anything.
WATCH_EVERY = 0.25
WATCHERS: list[Callable[[], int]] = []


def sweeper(func: Callable[[], int]) -> Callable[[], int]:
    """Register a function the periodic sweep calls; it returns how much it re-drove."""
    SWEEPERS.append(func)
    return func


def sweep() -> dict[str, int]:
    done = {}
    for func in SWEEPERS:
        try:
            done[func.__name__] = func()
        except Exception:
            # One failing sweeper must not stop the others (or the worker).
            logger.exception("sweeper %s failed", func.__name__)
            done[func.__name__] = -1
    return done


def watcher(func: Callable[[], int]) -> Callable[[], int]:
    """Register a function a worker calls every `WATCH_EVERY` seconds; it returns
    how many tasks it enqueued."""
    WATCHERS.append(func)
    return func


def watch() -> dict[str, int]:
    done = {}
    for func in WATCHERS:
        try:
            done[func.__name__] = func()
        except Exception:
            logger.exception("watcher %s failed", func.__name__)
            done[func.__name__] = -1
    return done


@sweeper
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
                locked.exception_class_path = "connections.tasks.WorkerDied"
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


@task()
def send_batch(batch_id: int) -> str:
    from .tracking import send_batch as send

    return send(batch_id)


@task()
def poll_batch(batch_id: int) -> str:
    from .tracking import poll_batch as poll

    return poll(batch_id)


@sweeper
def redrive_batches() -> int:
    from .tracking import redrive_batches as redrive

    return redrive()


@sweeper
def heal_stranded_entries() -> int:
    from .tracking import heal_stranded_entries as heal

    return heal()


@sweeper
def redrive_eligibility_checks() -> int:
    from .eligibility import redrive

    return redrive()


@sweeper
def recheck_waiting_entries() -> int:
    from .tracking import recheck_waiting_entries as recheck

    return recheck()


def drain(max_rounds: int = 200, *, include_future: bool = True) -> int:
    """Run queued tasks in this process until none is left (tests, `make` demos).

    With `include_future`, tasks scheduled for later run now too, so a test
    walks a batch through send → poll → done without waiting on the clock.
    """
    from django_tasks_db.management.commands.db_worker import Worker

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


@task()
def check_eligibility(upload_id: int) -> str:
    from .eligibility import run

    return run(upload_id)


@task()
def sync_account_vehicles(account_ids: list[int], source: str, reason: str) -> str:
    from .consent import sync_account_vehicles as sync
    from .volteras import VolterasError

    try:
        return f"{sync(account_ids, source, reason)} vehicle(s) applied"
    except VolterasError as exc:
        # Webhooks and reconciliation bring the same news later; nothing is lost.
        logger.info("reading the vehicles of accounts %s failed: %s", account_ids, exc)
        return f"failed: {exc}"


@task()
def confirm_pending_return(link_id: int) -> str:
    from .consent import confirm_pending_return as confirm

    return confirm(link_id)


@sweeper
def confirm_pending_returns() -> int:
    from .consent import claim_pending_returns

    link_ids = claim_pending_returns()
    for link_id in link_ids:
        confirm_pending_return.enqueue(link_id)
    return len(link_ids)
