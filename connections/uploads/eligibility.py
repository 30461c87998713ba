"""The optional eligibility pre-check of a draft upload's VINs.

Advisory only: it tells the manager which VINs Volteras expects to be able to
connect before anything is sent. Checks go out 500 VINs at a time; their
results are read until no VIN is still being checked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from connections import volteras
from connections.models import Upload, VinEntry, VinStatus

logger = logging.getLogger(__name__)

CHUNK = volteras.MAX_ELIGIBILITY_VINS
STILL_CHECKING = {"PENDING", "SUBMITTED"}
POLL_SECONDS = 2.0
# The check's time bound: about a minute and a half of reading results. It never
# holds anything back (Send stays available), so it need not wait longer.
MAX_POLLS = 45
# A check whose next step is this late lost its task (or its worker): the
# sweep queues the step again.
REDRIVE_GRACE = timedelta(seconds=30)
# A check still running this long after it started will not finish: the upload
# goes back to draft so Submit is never blocked by it.
GIVE_UP_AFTER = timedelta(minutes=15)
NOT_NEEDED = "Sending does not need it: send now, or check again later."
LABELS = {
    "ELIGIBLE": "Eligible",
    "INELIGIBLE": "Not eligible",
    "INELIGIBLE_PENDING_FAILURE_REASON": "Not eligible (reason to follow)",
    "NOT_SUPPORTED": "Check not supported for this make",
    "VALIDATION_ERROR": "Rejected by the check",
    "FAILED": "Check failed",
    "PENDING": "Being checked",
    "SUBMITTED": "Being checked",
}


def start(upload: Upload) -> bool:
    """Move a draft upload to CHECKING; False if not a draft. The caller
    queues the check (`uploads.tasks.start_eligibility_check`)."""
    with transaction.atomic():
        now = timezone.now().isoformat()
        moved = Upload.objects.filter(pk=upload.pk, state=Upload.State.DRAFT).update(
            state=Upload.State.CHECKING,
            eligibility={"checks": [], "polls": 0, "error": "", "started_at": now, "next_at": now},
        )
        if moved:
            upload.entries.filter(status=VinStatus.READY).set_eligibility("PENDING")
    return bool(moved)


def _finish(upload_id: int, error: str = "", note: str = "") -> None:
    """End the check: `error` when it failed, `note` when it ran out of time."""
    upload = Upload.objects.get(pk=upload_id)
    state = dict(upload.eligibility)
    state["error"] = error
    state["note"] = note
    with transaction.atomic():
        if error or note:
            upload.entries.filter(eligibility__in=STILL_CHECKING).set_eligibility("")
        Upload.objects.filter(pk=upload_id, state=Upload.State.CHECKING).update(
            state=Upload.State.DRAFT, eligibility=state
        )
        upload.bump()


def run(upload_id: int) -> str:
    """One step of the check: send (once), then read results. "waiting" means
    some VINs are still being checked: run it again at `next_at`."""
    upload = Upload.objects.filter(pk=upload_id, state=Upload.State.CHECKING).first()
    if upload is None:
        return "not checking"
    client = volteras.get_client()
    state = dict(upload.eligibility)
    entries = upload.entries.filter(status=VinStatus.READY).order_by("line_number")
    try:
        if not state.get("checks"):
            vins = list(entries.values_list("vin", "make", "country_code"))
            checks = []
            for start_at in range(0, len(vins), CHUNK):
                chunk = vins[start_at : start_at + CHUNK]
                check = client.check_eligibility(
                    [
                        volteras.EligibilityInput(vin, country_code=country or None, make=make)
                        for vin, make, country in chunk
                    ]
                )
                checks.append(check.id)
            state["checks"] = checks
            Upload.objects.filter(pk=upload_id).update(eligibility=state)
        results = [r for check_id in state["checks"] for r in client.eligibility_results(check_id)]
    except volteras.VolterasError as exc:
        logger.warning("eligibility check of upload %s failed: %s", upload_id, exc)
        _finish(upload_id, f"The eligibility check could not run ({exc.message}). {NOT_NEEDED}")
        return "failed"

    by_vin = {r.vin.upper(): r for r in results}
    waiting = False
    changed = []
    for entry in entries.only("pk", "vin", "eligibility", "eligibility_message"):
        result = by_vin.get(entry.vin)
        if result is None:
            waiting = True
            continue
        status = str(result.status)
        waiting = waiting or status in STILL_CHECKING
        message = (result.error_message or "")[:300]
        if (entry.eligibility, entry.eligibility_message) != (status, message):
            entry.eligibility, entry.eligibility_message = status, message
            changed.append(entry)
    VinEntry.objects.record_eligibility(changed)
    polls = state.get("polls", 0) + 1
    if waiting and polls < MAX_POLLS:
        run_after = timezone.now() + timedelta(seconds=POLL_SECONDS)
        state["polls"] = polls
        state["next_at"] = run_after.isoformat()
        Upload.objects.filter(pk=upload_id).update(eligibility=state)
        return "waiting"
    if waiting:
        _out_of_time(upload)
        return "done"
    _finish(upload_id)
    return "done"


def _out_of_time(upload: Upload) -> None:
    still = upload.entries.filter(eligibility__in=STILL_CHECKING).count()
    _finish(
        upload.pk,
        note=f"Volteras had not answered for {still} VIN{'s' if still != 1 else ''} after "
        f"{round(MAX_POLLS * POLL_SECONDS)} s; {'they' if still != 1 else 'it'} can be "
        "sent all the same (the check is only advice).",
    )


def _moment(state: dict, key: str) -> datetime | None:
    try:
        return datetime.fromisoformat(state[key])
    except (KeyError, TypeError, ValueError):
        return None


def progress(upload: Upload) -> tuple[int, int]:
    """(checked, to check) among the upload's ready VINs, for the progress shown."""
    ready = upload.entries.filter(status=VinStatus.READY)
    return ready.exclude(eligibility__in=[*STILL_CHECKING, ""]).count(), ready.count()


def overdue(limit: int = 500) -> tuple[list[int], int]:
    """The checks whose next step is overdue (its task or worker was lost),
    to queue again; the ones that ran too long are ended, with a message, so
    the upload can be submitted. Returns the ids to queue and how many were ended."""
    now = timezone.now()
    queue, ended = [], 0
    checking = Upload.objects.filter(state=Upload.State.CHECKING).only("pk", "eligibility")
    for upload in checking[:limit]:
        state = dict(upload.eligibility or {})
        started = _moment(state, "started_at")
        if started is None or now - started > GIVE_UP_AFTER:
            _finish(
                upload.pk,
                note="The eligibility check did not finish in time; sending does not need it.",
            )
            ended += 1
            continue
        due = _moment(state, "next_at") or started
        if due > now - REDRIVE_GRACE:
            continue
        # Not re-driven again before the grace passes once more. A step that
        # was only late, not lost, may then run twice: harmless, each reads
        # the same results again.
        state["next_at"] = now.isoformat()
        if Upload.objects.filter(pk=upload.pk, state=Upload.State.CHECKING).update(
            eligibility=state
        ):
            queue.append(upload.pk)
    return queue, ended
