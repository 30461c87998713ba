"""Following a sent batch: its group is polled until it completes, then VINs
still waiting are read again on a slow schedule; webhooks are the fast path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from connections import volteras
from connections.backoff import jittered
from connections.models import ConnectBatch, Source, VinEntry, VinStatus
from connections.models.sending import LEASE
from connections.sending.lease import LeaseKeeper
from connections.sending.results import RECHECK_FIRST, apply_results

logger = logging.getLogger(__name__)


POLL_FIRST = 2.0
POLL_MAX = 60.0


# A group still open (or unreadable) after this many polls (about 3 hours at
# the 60 s cap) is left to the slow recheck instead of being polled forever.
MAX_POLLS = 200


RECHECK_MAX = timedelta(hours=6)


def poll_batch(batch_id: int) -> str:
    """Read the group's status and its results; reschedule until it completes."""
    batch, owner = ConnectBatch.claim(batch_id, [ConnectBatch.State.POLLING])
    if batch is None:
        return "not due"
    client = volteras.get_client()
    polls = batch.polls + 1
    read_at = timezone.now()
    try:
        with LeaseKeeper(batch.pk, owner):
            group = client.get_connect_group(batch.group_id)
            results = list(client.connect_results(batch.group_id))
    except volteras.NotFound as exc:
        _group_lost(batch, owner, polls, exc)
        return "group lost"
    except volteras.VolterasError as exc:
        if polls >= MAX_POLLS:
            _leave_to_recheck(batch, owner, polls, f"could not be read ({exc.message})", exc)
            return "left to recheck"
        delay = jittered(polls, POLL_FIRST, POLL_MAX)
        batch.release(
            owner,
            polls=polls,
            **ConnectBatch.failure(exc),
            next_attempt_at=timezone.now() + delay,
        )
        return "error"
    finished = str(group.status) in {"COMPLETED", "FAILED"}
    apply_results(
        batch,
        results,
        Source.POLL,
        group_finished=finished,
        observed_at=read_at,
        request_id=group.request_id,
    )
    if finished:
        batch.release(
            owner,
            state=ConnectBatch.State.DONE,
            group_status=str(group.status),
            polls=polls,
            last_error="",
            completed_at=timezone.now(),
        )
        return str(group.status)
    if polls >= MAX_POLLS:
        _leave_to_recheck(batch, owner, polls, f"was still {group.status}", None)
        return "left to recheck"
    delay = jittered(polls, POLL_FIRST, POLL_MAX)
    batch.release(
        owner,
        group_status=str(group.status),
        polls=polls,
        last_error="",
        next_attempt_at=timezone.now() + delay,
    )
    return "polling"


def _group_lost(batch: ConnectBatch, owner: str, polls: int, exc: volteras.VolterasError) -> None:
    """Volteras answers 404 for the group: its results can never be read. The
    batch is over and its unfinished VINs are shown as failed, retryable (a
    resend of a VIN Volteras does have answers VEHICLE_ALREADY_ADDED_*)."""
    with transaction.atomic():
        if not batch.release(
            owner,
            state=ConnectBatch.State.FAILED,
            polls=polls,
            **ConnectBatch.failure(exc),
            completed_at=timezone.now(),
        ):
            return
        _unknown_group_failed(batch, VinStatus.in_progress(), exc)


def _leave_to_recheck(
    batch: ConnectBatch, owner: str, polls: int, why: str, exc: volteras.VolterasError | None
) -> None:
    """Stop polling a group that does not finish: its VINs still in progress
    are read again on the slow recheck schedule (minutes, then hours)."""
    now = timezone.now()
    with transaction.atomic():
        if not batch.release(
            owner,
            state=ConnectBatch.State.DONE,
            polls=polls,
            **ConnectBatch.failure(exc),
            completed_at=now,
        ):
            return
        waiting = batch.entries.filter(status__in=[VinStatus.PROCESSING, VinStatus.PENDING])
        for entry in waiting:
            entry.record(
                Source.POLL,
                f"Group {batch.group_id} {why} after {polls} polls; this VIN is checked "
                "again on a slower schedule",
            )
        waiting.schedule_recheck(now + RECHECK_FIRST)
        batch.upload.bump()


def recheck_waiting_entries(limit: int = 5000) -> int:
    """VINs still PROCESSING or PENDING after their group completed are read
    again on a slow backoff (minutes, then hours): webhooks are the fast path."""
    now = timezone.now()
    due = list(
        VinEntry.objects.filter(
            status__in=[VinStatus.PROCESSING, VinStatus.PENDING],
            next_check_at__lte=now,
            batch__state=ConnectBatch.State.DONE,
        )
        .exclude(batch__group_id="")
        .values_list("pk", "batch_id", "checks")[:limit]
    )
    if not due:
        return 0
    client = volteras.get_client()
    by_batch: dict[int, list[tuple[int, int]]] = {}
    for pk, batch_id, checks in due:
        by_batch.setdefault(batch_id, []).append((pk, checks))
    moved = 0
    for batch_id, items in by_batch.items():
        # Claim: push the next check out first, so another worker's sweep skips them.
        ids = [pk for pk, _ in items]
        claimed = VinEntry.objects.filter(pk__in=ids).claim_rechecks(now, now + LEASE)
        if not claimed:
            continue
        batch = ConnectBatch.objects.select_related("upload").get(pk=batch_id)
        read_at = timezone.now()
        try:
            results = list(client.connect_results(batch.group_id))
        except volteras.NotFound as exc:
            _group_lost_on_recheck(batch, exc)
            continue
        except volteras.VolterasError as exc:
            # The checks back off as if read: an outage is not hammered.
            logger.warning("recheck of group %s failed: %s", batch.group_id, exc)
        else:
            moved += apply_results(
                batch, results, Source.POLL, group_finished=False, observed_at=read_at
            )
        for pk, checks in items:
            delay = min(RECHECK_MAX, RECHECK_FIRST * (2**checks))
            VinEntry.objects.filter(
                pk=pk, status__in=[VinStatus.PROCESSING, VinStatus.PENDING]
            ).update(next_check_at=now + delay, checks=checks + 1)
    return moved


def _group_lost_on_recheck(batch: ConnectBatch, exc: volteras.VolterasError) -> None:
    with transaction.atomic():
        ConnectBatch.objects.filter(pk=batch.pk).update(**ConnectBatch.failure(exc))
        _unknown_group_failed(batch, [VinStatus.PROCESSING, VinStatus.PENDING], exc)


def _unknown_group_failed(
    batch: ConnectBatch, statuses: Iterable[str], exc: volteras.VolterasError
) -> None:
    for entry in batch.entries.filter(status__in=list(statuses)).select_related("upload"):
        entry.observe(
            VinStatus.ERROR,
            Source.POLL,
            message=f"Volteras no longer knows group {batch.group_id}, so this VIN's "
            "result cannot be read. Retry it.",
            can_retry=True,
            request_id=exc.request_id or "",
            data={"group_id": batch.group_id},
            bump=False,
        )
    batch.upload.bump()
