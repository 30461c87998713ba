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
import random
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import volteras
from .models import ConnectBatch, Source, VinEntry, VinStatus

logger = logging.getLogger(__name__)

# How long a claim holds without news from its holder. The holder renews it
# while its call to Volteras is in flight (`LeaseKeeper`), so a slow call
# (a connect POST can take minutes through timeouts and retries) never lets
# the lease lapse under it; only a dead worker's lease runs out.
LEASE = timedelta(minutes=2)
POLL_FIRST = 2.0
POLL_MAX = 60.0
# A group still open (or unreadable) after this many polls (about 3 hours at
# the 60 s cap) is left to the slow recheck instead of being polled forever.
MAX_POLLS = 200
RECHECK_FIRST = timedelta(minutes=5)
RECHECK_MAX = timedelta(hours=6)
# Sends that failed for reasons on the way (network, 5xx, 429) are tried again
# this many times before the batch's VINs are shown as failed.
MAX_SEND_ATTEMPTS = 8

ALREADY_ADDED = {
    "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION": VinStatus.CONNECTED,
    "VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED": VinStatus.CONNECTION_REQUIRED,
    "VEHICLE_ALREADY_ADDED_INCOMPATIBLE": VinStatus.INCOMPATIBLE,
    "VEHICLE_ALREADY_ADDED_PENDING_CONNECTION": VinStatus.PENDING,
}


def _claim(batch_id: int, states: Iterable[str], **changes) -> tuple[ConnectBatch | None, str]:
    """Take the batch for one step, or None when it is not due or someone has it."""
    now = timezone.now()
    owner = uuid.uuid4().hex
    claimed = (
        ConnectBatch.objects.filter(pk=batch_id, state__in=list(states), next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, lease_owner=owner, **changes)
    )
    if not claimed:
        return None, owner
    return ConnectBatch.objects.select_related("upload").get(pk=batch_id), owner


def _release(batch: ConnectBatch, owner: str, **changes) -> bool:
    """Record the step's outcome, unless our lease was lost (then another
    worker owns the batch and our result is dropped: the step is redone)."""
    updated = ConnectBatch.objects.filter(pk=batch.pk, lease_owner=owner).update(
        lease_until=None, lease_owner="", **changes
    )
    return bool(updated)


class LeaseKeeper:
    """Renews a batch's lease every quarter lease while its holder waits on
    Volteras, from a thread of its own (with its own database connection).

    It stops when the block ends, or when the lease turns out to be someone
    else's (then the holder's release fails and `_accepted_elsewhere` keeps
    its group). A worker that dies stops renewing, so its lease still runs out.
    """

    def __init__(self, batch_id: int, owner: str) -> None:
        self.batch_id = batch_id
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-batch-{batch_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(LEASE.total_seconds() / 4):
                try:
                    kept = ConnectBatch.objects.filter(
                        pk=self.batch_id, lease_owner=self.owner
                    ).update(lease_until=timezone.now() + LEASE)
                except DatabaseError:
                    # The next beat tries again; a quarter lease leaves three.
                    logger.warning("batch %s: lease renewal failed", self.batch_id, exc_info=True)
                    continue
                if not kept:
                    return
        finally:
            connection.close()


def _own_tags(entry: VinEntry) -> list[volteras.Tag]:
    """The row's own tags, less any `fleet` tag: the portal's fleet tag is
    what the portal (and the webhook matching) relies on, and a key sent
    twice would be ambiguous."""
    return [volteras.Tag(key=t["key"], value=t["value"]) for t in entry.tags if t["key"] != "fleet"]


def _backoff(attempt: int, first: float, cap: float) -> timedelta:
    delay = min(cap, first * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


def send_batch(batch_id: int) -> str:
    """POST one batch to Volteras. Safe to run twice: only the lease holder sends."""
    batch, owner = _claim(
        batch_id,
        [ConnectBatch.State.QUEUED, ConnectBatch.State.AMBIGUOUS, ConnectBatch.State.SUBMITTING],
        state=ConnectBatch.State.SUBMITTING,
    )
    if batch is None:
        return "not due"
    entries = list(batch.entries.filter(status=VinStatus.SUBMITTING).order_by("line_number"))
    if not entries:
        _release(batch, owner, state=ConnectBatch.State.DONE, completed_at=timezone.now())
        return "empty"
    tag = volteras.Tag(key="fleet", value=batch.upload.fleet.slug)
    vehicles = [
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
        if not _release(batch, owner, **polling) and not _adopt(batch, polling):
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
    _enqueue_poll(batch.pk, POLL_FIRST)
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
        released = _release(
            batch,
            owner,
            state=ConnectBatch.State.FAILED,
            attempts=attempt,
            last_error=str(exc)[:2000],
            last_request_id=exc.request_id or "",
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
        delay = _backoff(attempt, 5.0, 300.0)
    state = ConnectBatch.State.AMBIGUOUS if ambiguous else ConnectBatch.State.QUEUED
    released = _release(
        batch,
        owner,
        state=state,
        attempts=attempt,
        last_error=str(exc)[:2000],
        last_request_id=exc.request_id or "",
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
    _enqueue_send_later(batch.pk, delay.total_seconds())
    return "ambiguous" if ambiguous else "retry"


def _enqueue_poll(batch_id: int, delay: float) -> None:
    from .tasks import poll_batch

    poll_batch.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(batch_id)


def _enqueue_send_later(batch_id: int, delay: float) -> None:
    from .tasks import send_batch

    send_batch.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(batch_id)


def poll_batch(batch_id: int) -> str:
    """Read the group's status and its results; reschedule until it completes."""
    batch, owner = _claim(batch_id, [ConnectBatch.State.POLLING])
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
        delay = _backoff(polls, POLL_FIRST, POLL_MAX)
        _release(
            batch,
            owner,
            polls=polls,
            last_error=str(exc)[:2000],
            last_request_id=exc.request_id or "",
            next_attempt_at=timezone.now() + delay,
        )
        _enqueue_poll(batch.pk, delay.total_seconds())
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
        _release(
            batch,
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
    delay = _backoff(polls, POLL_FIRST, POLL_MAX)
    _release(
        batch,
        owner,
        group_status=str(group.status),
        polls=polls,
        last_error="",
        next_attempt_at=timezone.now() + delay,
    )
    _enqueue_poll(batch.pk, delay.total_seconds())
    return "polling"


def _group_lost(batch: ConnectBatch, owner: str, polls: int, exc: volteras.VolterasError) -> None:
    """Volteras answers 404 for the group: its results can never be read. The
    batch is over and its unfinished VINs are shown as failed, retryable (a
    resend of a VIN Volteras does have answers VEHICLE_ALREADY_ADDED_*)."""
    with transaction.atomic():
        if not _release(
            batch,
            owner,
            state=ConnectBatch.State.FAILED,
            polls=polls,
            last_error=str(exc)[:2000],
            last_request_id=exc.request_id or "",
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
        if not _release(
            batch,
            owner,
            state=ConnectBatch.State.DONE,
            polls=polls,
            last_error=str(exc)[:2000] if exc else "",
            last_request_id=(exc.request_id or "") if exc else "",
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
        waiting.filter(next_check_at__isnull=True).update(next_check_at=now + RECHECK_FIRST)
        batch.upload.bump()


def apply_results(
    batch: ConnectBatch,
    results: Iterable,
    source: str,
    *,
    group_finished: bool,
    observed_at: datetime | None = None,
    request_id: str = "",
) -> int:
    """Apply a group's per-VIN results to its entries; return how many moved.

    `observed_at` is when the results were read: a VIN whose state changed
    after that (a webhook meanwhile) keeps its newer state. Each move records
    the request id of the answer it came in (`request_id`: the group's)."""
    by_vin = {
        e.vin: e
        for e in batch.entries.exclude(status__in=[VinStatus.SKIPPED, VinStatus.INVALID])
        .select_related("upload")
        .order_by("pk")
    }
    seen: set[str] = set()
    moved = 0
    now = timezone.now()
    with transaction.atomic():
        for result in results:
            entry = by_vin.get((result.vin or "").upper())
            if entry is None:
                continue
            seen.add(entry.vin)
            moved += apply_result(entry, result, source, observed_at=observed_at)
        if group_finished:
            for vin, entry in by_vin.items():
                if vin not in seen and entry.status in VinStatus.in_progress():
                    moved += entry.observe(
                        VinStatus.ERROR,
                        source,
                        message="Volteras finished the group without a result for this VIN. "
                        "Retry it.",
                        can_retry=True,
                        request_id=request_id,
                        bump=False,
                        observed_at=observed_at,
                    )
            waiting = [
                e.pk
                for e in by_vin.values()
                if e.status in {VinStatus.PROCESSING, VinStatus.PENDING}
            ]
            VinEntry.objects.filter(pk__in=waiting, next_check_at__isnull=True).update(
                next_check_at=now + RECHECK_FIRST
            )
        if moved:
            batch.upload.bump()
    return moved


def apply_result(
    entry: VinEntry, result, source: str, *, observed_at: datetime | None = None
) -> bool:
    codes = [error.code for error in result.errors if error.code]
    status = VinStatus.from_api(str(result.status))
    message = result.message or next((e.message for e in result.errors if e.message), "")
    detail = ""
    already = [code for code in codes if code in ALREADY_ADDED]
    if already:
        # A re-sent VIN (after an ambiguous POST, or uploaded again): Volteras
        # tells us its true state, which is not a failure of this attempt.
        status = ALREADY_ADDED[already[0]]
        detail = f"Volteras already had this VIN ({already[0]}): now {status.label.lower()}"
        codes = [code for code in codes if code not in ALREADY_ADDED]
        message = ""
    action = next((str(e.action_category) for e in result.errors if e.action_category), "")
    known = (entry.vehicle_input_id, entry.was_already_connected)
    entry.vehicle_input_id = result.vehicle_input_id or entry.vehicle_input_id
    entry.was_already_connected = bool(result.was_already_connected) or bool(already)
    moved = entry.observe(
        status,
        source,
        error_codes=codes,
        message=message,
        action_category=action,
        can_retry=result.can_retry,
        vehicle_id=result.vehicle_id or "",
        request_id=getattr(result, "request_id", ""),
        detail=detail,
        data={"group_id": entry.batch.group_id} if entry.batch_id else None,
        bump=False,
        observed_at=observed_at,
    )
    if (entry.vehicle_input_id, entry.was_already_connected) != known:
        VinEntry.objects.filter(pk=entry.pk).update(
            vehicle_input_id=entry.vehicle_input_id,
            was_already_connected=entry.was_already_connected,
        )
    return moved


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
        claimed = VinEntry.objects.filter(pk__in=ids, next_check_at__lte=now).update(
            next_check_at=now + LEASE
        )
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
        ConnectBatch.objects.filter(pk=batch.pk).update(
            last_error=str(exc)[:2000], last_request_id=exc.request_id or ""
        )
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


def heal_stranded_entries(limit: int = 5000) -> int:
    """VINs still SUBMITTING under a batch that is over (a worker killed between
    closing the batch and updating its VINs, in code older than the single
    transaction that now does both) would wait forever: nothing re-drives a
    closed batch. Show them as failed and retryable."""
    closed = [ConnectBatch.State.DONE, ConnectBatch.State.FAILED]
    stranded = list(
        VinEntry.objects.filter(status=VinStatus.SUBMITTING, batch__state__in=closed)
        .select_related("upload", "batch")
        .order_by("pk")[:limit]
    )
    healed = 0
    uploads = {}
    with transaction.atomic():
        for entry in stranded:
            healed += entry.observe(
                VinStatus.ERROR,
                Source.SUBMISSION,
                message="Its batch ended without an answer from Volteras for this VIN. Retry it.",
                can_retry=True,
                detail=f"Batch {entry.batch.number} was {entry.batch.get_state_display().lower()} "
                "with this VIN "
                "still waiting to be sent",
                bump=False,
            )
            uploads[entry.upload_id] = entry.upload
        for upload in uploads.values():
            upload.bump()
    return healed


def redrive_batches(grace: timedelta = timedelta(seconds=30)) -> int:
    """Enqueue every batch whose step is overdue: its task was lost, or its
    worker died holding the lease. The claim makes extra triggers harmless."""
    from .tasks import poll_batch, send_batch

    now = timezone.now()
    overdue = ConnectBatch.objects.filter(
        state__in=[
            ConnectBatch.State.QUEUED,
            ConnectBatch.State.AMBIGUOUS,
            ConnectBatch.State.SUBMITTING,
            ConnectBatch.State.POLLING,
        ],
        next_attempt_at__lte=now - grace,
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
        task = poll_batch if state == ConnectBatch.State.POLLING else send_batch
        task.enqueue(pk)
        # Not re-driven again before the grace passes once more.
        ConnectBatch.objects.filter(pk=pk).update(next_attempt_at=now)
        count += 1
    return count
