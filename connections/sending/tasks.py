"""The sending steps as background tasks, and the sweepers that keep them moving.

A step (`send.send_batch`, `poll.poll_batch`) leaves its batch with the next
step's state and time (`next_attempt_at`) and says what it did; here that next
step is enqueued. A batch whose task was lost is found by `redrive_batches`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from connections.models import ConnectBatch
from connections.sending import poll, send

# Outcomes after which the step released the batch with its next step due at
# `next_attempt_at` ("lease lost", "not due", "superseded": another worker has it).
RESCHEDULED = frozenset({"sent", "ambiguous", "retry", "error", "polling"})
OPEN_STATES = (
    ConnectBatch.State.QUEUED,
    ConnectBatch.State.AMBIGUOUS,
    ConnectBatch.State.SUBMITTING,
    ConnectBatch.State.POLLING,
)


@task()
def send_batch(batch_id: int) -> str:
    outcome = send.send_batch(batch_id)
    if outcome in RESCHEDULED:
        schedule_next_step(batch_id)
    return outcome


@task()
def poll_batch(batch_id: int) -> str:
    outcome = poll.poll_batch(batch_id)
    if outcome in RESCHEDULED:
        schedule_next_step(batch_id)
    return outcome


def schedule_next_step(batch_id: int) -> None:
    """Enqueue the batch's next step for its `next_attempt_at`."""
    batch = ConnectBatch.objects.filter(pk=batch_id).values("state", "next_attempt_at").first()
    if batch is None or batch["state"] not in OPEN_STATES:
        return
    step = poll_batch if batch["state"] == ConnectBatch.State.POLLING else send_batch
    step.using(run_after=batch["next_attempt_at"]).enqueue(batch_id)


def enqueue_sends(batches: Iterable[ConnectBatch]) -> None:
    for batch in batches:
        send_batch.enqueue(batch.pk)


def redrive_batches(grace: timedelta = timedelta(seconds=30)) -> int:
    """Enqueue every batch whose step is overdue: its task was lost, or its
    worker died holding the lease. The claim makes extra triggers harmless."""
    now = timezone.now()
    overdue = ConnectBatch.objects.filter(
        state__in=OPEN_STATES, next_attempt_at__lte=now - grace
    ).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    count = 0
    for pk, state in overdue.values_list("pk", "state")[:1000]:
        if state == ConnectBatch.State.SUBMITTING:
            # Its worker died mid-send: the POST may have landed. Resending is
            # safe (duplicates come back as VEHICLE_ALREADY_ADDED_*).
            # Only while the lease is still lapsed: a holder that renewed it
            # meanwhile is alive and sending.
            ConnectBatch.objects.filter(pk=pk, state=state).filter(
                Q(lease_until__isnull=True) | Q(lease_until__lt=now)
            ).update(state=ConnectBatch.State.AMBIGUOUS)
        step = poll_batch if state == ConnectBatch.State.POLLING else send_batch
        step.enqueue(pk)
        # Not re-driven again before the grace passes once more.
        ConnectBatch.objects.filter(pk=pk).update(next_attempt_at=now)
        count += 1
    return count


def recheck_waiting_entries() -> int:
    """VINs still waiting after their group completed, read again when due."""
    return poll.recheck_waiting_entries()
