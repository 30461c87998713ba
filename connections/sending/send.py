"""Each `ConnectBatch` row is the durable record of one `POST /v1/vehicles/connect`
(at most 100 VINs). A worker claims a batch with a lease (a conditional UPDATE,
atomic on SQLite and PostgreSQL alike), does one step, and schedules the next:

    queued ──send──> polling ──group COMPLETED──> done
       ▲  └─ambiguous (timeout, dropped connection, 5xx)─┐
       └──────────────── resend after a pause ───────────┘

Volteras has no idempotency keys, so after an ambiguous POST the batch is sent
again: VINs the first POST did reach come back as `VEHICLE_ALREADY_ADDED_*`,
which `apply_result` maps to their true state instead of a failure.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from connections import volteras
from connections.backoff import jittered
from connections.models import ConnectBatch, Source, VinEntry, VinStatus
from connections.sending.lease import LeaseKeeper
from connections.sending.poll import POLL_FIRST

logger = logging.getLogger(__name__)


# Sends that failed for reasons on the way (network, 5xx, 429) are tried again
# this many times before the batch's VINs are shown as failed.
MAX_SEND_ATTEMPTS = 8


def _own_tags(entry: VinEntry) -> list[volteras.Tag]:
    """The row's own tags, less any `fleet` tag: the portal's fleet tag is
    what the portal (and the webhook matching) relies on, and a key sent
    twice would be ambiguous."""
    return [volteras.Tag(key=t["key"], value=t["value"]) for t in entry.tags if t["key"] != "fleet"]


def send_batch(batch_id: int) -> str:
    """POST one batch to Volteras. Safe to run twice: only the lease holder sends."""
    batch, owner = ConnectBatch.claim(
        batch_id,
        [ConnectBatch.State.QUEUED, ConnectBatch.State.AMBIGUOUS, ConnectBatch.State.SUBMITTING],
        state=ConnectBatch.State.SUBMITTING,
    )
    if batch is None:
        return "not due"
    entries = list(batch.entries.filter(status=VinStatus.SUBMITTING).order_by("line_number"))
    if not entries:
        batch.release(owner, state=ConnectBatch.State.DONE, completed_at=timezone.now())
        return "empty"
    vehicles = _vehicle_inputs(batch, entries)
    attempt = batch.attempts + 1
    try:
        # A 429 is raised, not slept on: the batch is rescheduled after its
        # Retry-After below (`_send_failed_transiently`) instead.
        with LeaseKeeper(batch.pk, owner):
            group = volteras.get_client().connect_vehicles(vehicles, wait_when_rate_limited=False)
    except (
        volteras.AmbiguousWrite,
        volteras.ServerError,
        volteras.NetworkError,
        volteras.RateLimited,
        volteras.AuthenticationError,
    ) as exc:
        return _send_failed_transiently(batch, owner, entries, attempt, exc)
    except volteras.VolterasError as exc:
        # Volteras refused the request itself (validation, not permitted,
        # device limit): sending it again unchanged cannot help.
        failed = _fail_batch(
            batch,
            owner,
            entries,
            attempt,
            exc,
            message=exc.message,
            can_retry=exc.code == "DEVICE_LIMIT_REACHED",
            detail=f"Volteras refused the batch: {exc.message}",
        )
        return "refused" if failed else "lease lost"

    return _accepted(batch, owner, entries, attempt, group)


def _vehicle_inputs(batch: ConnectBatch, entries: list[VinEntry]) -> list[volteras.VehicleInput]:
    """The batch's VINs as the connect call takes them, each tagged with its fleet."""
    tag = volteras.Tag(key="fleet", value=batch.upload.fleet.slug)
    return [
        volteras.VehicleInput(
            vin=entry.vin,
            make=entry.make,
            country_code=entry.country_code or None,
            registration_plate=entry.registration_plate or None,
            model=entry.model or None,
            model_year=entry.model_year,
            tags=(tag, *_own_tags(entry)),
        )
        for entry in entries
    ]


def _accepted(
    batch: ConnectBatch,
    owner: str,
    entries: list[VinEntry],
    attempt: int,
    group: volteras.ConnectGroup,
) -> str:
    """Volteras accepted the batch as `group`: follow it, and say so on each VIN."""
    request_id = group.request_id
    with transaction.atomic():
        polling = {
            "state": ConnectBatch.State.POLLING,
            "group_id": group.id,
            "group_status": str(group.status),
            "attempts": attempt,
            "last_error": "",
            "submitted_at": timezone.now(),
            "next_attempt_at": timezone.now() + timedelta(seconds=POLL_FIRST),
        }
        if not batch.release(owner, **polling) and not _adopt(batch, polling):
            _accepted_elsewhere(batch, entries, group.id, request_id)
            return "superseded"
        for entry in entries:
            entry.observe(
                VinStatus.PROCESSING,
                Source.SUBMISSION,
                detail=f"Accepted by Volteras in group {group.id}",
                request_id=request_id,
                data={"group_id": group.id},
                bump=False,
            )
        batch.upload.bump()
    return "sent"


def _adopt(batch: ConnectBatch, changes: dict) -> bool:
    """Our lease was taken over while Volteras accepted our POST: keep our
    group on the batch unless the batch has a group already (even when the
    worker that took over saw its own POST refused: ours was accepted). That
    worker then finds its release refused and its group recorded as a
    duplicate."""
    adopted = (
        ConnectBatch.objects.filter(pk=batch.pk, group_id="")
        .exclude(state=ConnectBatch.State.DONE)
        .update(lease_until=None, lease_owner="", completed_at=None, **changes)
    )
    if adopted:
        logger.warning(
            "batch %s: lease lost while sending; adopted group %s", batch.pk, changes["group_id"]
        )
    return bool(adopted)


def _accepted_elsewhere(
    batch: ConnectBatch, entries: list[VinEntry], group_id: str, request_id: str
) -> None:
    """Volteras accepted a second group for a batch that already follows one
    (only possible after a lease was lost): its VINs' true states come through
    the batch's group as VEHICLE_ALREADY_ADDED_*; this group is kept on each
    VIN's timeline so no accepted group goes unrecorded."""
    current = ConnectBatch.objects.values_list("group_id", flat=True).get(pk=batch.pk)
    logger.error(
        "batch %s: Volteras also accepted group %s; the batch follows group %s",
        batch.pk,
        group_id,
        current,
    )
    for entry in entries:
        entry.record(
            Source.SUBMISSION,
            f"Volteras also accepted these VINs in group {group_id} (sent again after this "
            f"batch was taken over); their state is followed through group {current}",
            request_id=request_id,
            group_id=group_id,
        )


def _fail_batch(
    batch: ConnectBatch,
    owner: str,
    entries: list[VinEntry],
    attempt: int,
    exc: volteras.VolterasError,
    *,
    message: str,
    can_retry: bool,
    detail: str = "",
) -> bool:
    """The batch is over without a group: each of its VINs is shown as failed.
    Returns False when the lease was lost first (the batch is its holder's).

    One transaction: a worker killed half-way leaves either an open batch
    (re-driven) or a failed one whose VINs say so, never VINs stuck
    SUBMITTING under a closed batch."""
    with transaction.atomic():
        released = batch.release(
            owner,
            state=ConnectBatch.State.FAILED,
            attempts=attempt,
            **ConnectBatch.failure(exc),
            completed_at=timezone.now(),
        )
        if not released:
            logger.warning("batch %s: lease lost before failing it; left to its holder", batch.pk)
            return False
        for entry in entries:
            entry.observe(
                VinStatus.ERROR,
                Source.SUBMISSION,
                error_codes=[exc.code] if exc.code else [],
                message=message,
                can_retry=can_retry,
                request_id=exc.request_id or "",
                detail=detail,
                bump=False,
            )
        batch.upload.bump()
    return True


def _send_failed_transiently(
    batch: ConnectBatch, owner: str, entries: list[VinEntry], attempt: int, exc
) -> str:
    ambiguous = isinstance(exc, (volteras.AmbiguousWrite, volteras.ServerError))
    if attempt >= MAX_SEND_ATTEMPTS:
        _fail_batch(
            batch,
            owner,
            entries,
            attempt,
            exc,
            message=(
                f"Volteras could not be reached after {attempt} attempts "
                f"({exc.message}). Retry when the service is back."
            ),
            can_retry=True,
        )
        return "gave up"
    if isinstance(exc, volteras.RateLimited) and exc.retry_after:
        delay = timedelta(seconds=exc.retry_after)
    else:
        delay = jittered(attempt, 5.0, 300.0)
    state = ConnectBatch.State.AMBIGUOUS if ambiguous else ConnectBatch.State.QUEUED
    released = batch.release(
        owner,
        state=state,
        attempts=attempt,
        **ConnectBatch.failure(exc),
        next_attempt_at=timezone.now() + delay,
    )
    if not released:
        # Another worker holds the batch now; what happens next is its call.
        return "lease lost"
    what = (
        "The answer was lost, so Volteras may or may not have the VINs; they will be sent "
        "again and duplicates recognised"
        if ambiguous
        else "Volteras could not be reached; sending again"
    )
    for entry in entries:
        entry.record(
            Source.SUBMISSION,
            f"Attempt {attempt} failed ({exc.__class__.__name__}: {exc.message}). {what} "
            f"in about {math.ceil(delay.total_seconds())} s.",
            request_id=exc.request_id or "",
        )
    batch.upload.bump()
    return "ambiguous" if ambiguous else "retry"
