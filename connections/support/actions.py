"""The actions support takes on VINs (retry, consent link, escalate, dismiss),
each recorded in the VIN's timeline with who and when, each refused with the
reason where it makes no sense.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from connections.consent import links, vin_links
from connections.models import SUPERSEDED_REFUSAL, Source, Upload, VinEntry, VinEvent, VinStatus
from connections.support.workspace import incidents
from connections.uploads import submission
from connections.volteras import ValidationError, VolterasError


@dataclass
class ActionOutcome:
    """What an action did: the VINs it acted on and, for the others, why not."""

    done: list[VinEntry] = field(default_factory=list)
    refused: list[tuple[VinEntry, str]] = field(default_factory=list)

    def refuse(self, entry: VinEntry, reason: str) -> None:
        self.refused.append((entry, reason))


def load_entries(ids: Iterable[int]) -> list[VinEntry]:
    """The entries support selected, with what the actions read, in one query."""
    return list(
        VinEntry.objects.filter(pk__in=list(ids))
        .select_related("upload", "fleet", "batch")
        .order_by("fleet__name", "upload_id", "line_number", "pk")
    )


def retry(
    entries: Sequence[VinEntry], user, *, reason: str = "", force: bool = False
) -> ActionOutcome:
    """Send retryable VINs again (new batches, per upload): every retry, from the
    workspace, the VIN page or the upload table, comes through here.

    The per-VIN rules are `VinEntry.retry_refusal`. A VIN caught in a probable
    manufacturer incident is held back unless `force` (support's "retry
    anyway"): chasing single VINs while the manufacturer is down only burns
    attempts. Sending a VIN again reopens it: dismissed and escalated clear."""
    outcome = ActionOutcome()
    ongoing = {(i.make, i.error_code): i for i in incidents()} if not force else {}
    by_upload: dict[int, list[VinEntry]] = defaultdict(list)
    for entry in entries:
        refusal = entry.retry_refusal()
        incident = ongoing.get((entry.make, entry.error_code))
        if refusal:
            outcome.refuse(entry, refusal)
        elif incident is not None:
            outcome.refuse(
                entry,
                f"Probable manufacturer-side incident ({incident.describe()}): retries are "
                "paused while it lasts. Support can tick “retry anyway” if they are sure.",
            )
        else:
            by_upload[entry.upload_id].append(entry)
    for group in by_upload.values():
        upload: Upload = group[0].upload
        with transaction.atomic():
            # Sending a VIN again reopens it (`VinEntryQuerySet.send_in`).
            queued = set(submission.retry_entries(upload, group, user, reason))
        for entry in group:
            if entry.pk in queued:
                entry.dismissed = entry.escalated = False
                outcome.done.append(entry)
            else:
                # Its row changed since it was loaded (a second click, say).
                entry.refresh_from_db()
                outcome.refuse(entry, entry.retry_refusal() or "It was not sent again.")
    return outcome


def send_consent_links(entries: Sequence[VinEntry], user) -> ActionOutcome:
    """A consent link for each VIN waiting for its owner: the last link is
    reissued (its short link forwards to the new one) when it can be, else a
    new one is created. Both record the link in the VIN's timeline."""
    outcome = ActionOutcome()
    stop_reason = ""
    for entry in entries:
        if entry.superseded:
            outcome.refuse(entry, SUPERSEDED_REFUSAL)
            continue
        if not entry.consent_link_helps:
            outcome.refuse(
                entry,
                "Only a VIN waiting for its owner's consent (Connection required, or a make "
                "that cannot be connected by VIN) gets a consent link; this one is "
                f"{entry.get_status_display().lower()}.",
            )
            continue
        if stop_reason:
            outcome.refuse(entry, stop_reason)
            continue
        latest = entry.consent_links.order_by("-created_at", "-pk").first()
        try:
            if latest is not None and links.can_reissue(latest):
                links.reissue(latest, user)
            else:
                run = vin_links.create_vin_links_batch(entry.upload, [entry], user, limit=0)
                if run.failures or run.stopped:
                    outcome.refuse(entry, run.failures.get(entry.vin) or run.stopped)
                    if run.stopped:
                        # Refused for the whole organisation (limits, credentials,
                        # outage): it would repeat for every other VIN.
                        stop_reason = f"Not tried: {run.stopped}"
                    continue
        except VolterasError as exc:
            message = links.refusal_message(exc)
            entry.record(Source.MANUAL, f"No consent link: {message}", actor=user)
            outcome.refuse(entry, message)
            # A refusal for the whole organisation (limits, credentials, outage)
            # would repeat for every other VIN: stop asking.
            if not isinstance(exc, ValidationError):
                stop_reason = f"Not tried: {message}"
            continue
        outcome.done.append(entry)
    return outcome


NEVER_SENT = {VinStatus.READY, VinStatus.SKIPPED, VinStatus.INVALID}


def request_ids(entries: Sequence[VinEntry]) -> dict[int, list[str]]:
    """Every Volteras requestId in each VIN's timeline and its batch, oldest first:
    what Volteras needs to find the calls in its logs."""
    found: dict[int, list[str]] = defaultdict(list)
    rows = (
        VinEvent.objects.filter(entry__in=[e.pk for e in entries])
        .exclude(request_id="")
        .order_by("at", "pk")
        .values_list("entry_id", "request_id")
    )
    for entry_id, request_id in rows:
        if request_id not in found[entry_id]:
            found[entry_id].append(request_id)
    for entry in entries:
        last = entry.batch.last_request_id if entry.batch else ""
        if last and last not in found[entry.pk]:
            found[entry.pk].append(last)
    return found


def escalate(entries: Sequence[VinEntry], user, note: str) -> ActionOutcome:
    """Mark VINs as escalated to Volteras, with the note and the API requestIds
    Volteras needs, recorded in each VIN's timeline."""
    outcome = ActionOutcome()
    for entry in entries:
        if entry.superseded:
            outcome.refuse(entry, SUPERSEDED_REFUSAL)
        elif entry.status in NEVER_SENT:
            outcome.refuse(
                entry,
                "This VIN was never sent to Volteras, so they have nothing to look into: "
                "fix the row and upload it again.",
            )
        elif entry.status == VinStatus.CONNECTED:
            outcome.refuse(entry, "This VIN is connected: there is nothing to escalate.")
        elif entry.escalated:
            outcome.refuse(entry, "Already escalated to Volteras: see its timeline.")
        else:
            outcome.done.append(entry)
    if not outcome.done:
        return outcome
    ids = request_ids(outcome.done)
    now = timezone.now()
    events = []
    for entry in outcome.done:
        found = ids.get(entry.pk, [])
        group_id = entry.batch.group_id if entry.batch else ""
        # What Volteras needs to find this VIN's calls in its own logs.
        refs = [f"requestIds {', '.join(found)}" if found else "no requestId on record"]
        if group_id:
            refs.append(f"connect group {group_id}")
        if entry.vehicle_id:
            refs.append(f"vehicle {entry.vehicle_id}")
        detail = f"Escalated to Volteras: {note} ({'; '.join(refs)})"
        events.append(
            entry.event(
                Source.MANUAL,
                detail,
                at=now,
                actor=user,
                request_id=found[-1] if found else "",
                action="escalate",
                note=note,
                request_ids=found,
                group_id=group_id,
                vehicle_id=entry.vehicle_id,
            )
        )
    VinEntry.objects.flag(outcome.done, events, escalated=True)
    return outcome


def dismiss(entries: Sequence[VinEntry], user, reason: str) -> ActionOutcome:
    """Take VINs out of the open list, with the reason, in each VIN's timeline."""
    outcome = ActionOutcome()
    for entry in entries:
        if entry.superseded:
            outcome.refuse(entry, SUPERSEDED_REFUSAL)
        elif entry.status == VinStatus.CONNECTED:
            outcome.refuse(entry, "This VIN is connected: there is nothing to dismiss.")
        elif entry.status == VinStatus.SUBMITTING:
            outcome.refuse(entry, "This VIN is being sent right now: wait for its result.")
        elif entry.dismissed:
            outcome.refuse(entry, "Already dismissed: see its timeline for why.")
        else:
            outcome.done.append(entry)
    now = timezone.now()
    events = [
        e.event(
            Source.MANUAL,
            f"Dismissed: {reason}",
            at=now,
            actor=user,
            action="dismiss",
            reason=reason,
        )
        for e in outcome.done
    ]
    VinEntry.objects.flag(outcome.done, events, dismissed=True)
    return outcome


@dataclass(frozen=True)
class Action:
    label: str
    # What the form must also carry: "" (nothing), "note" or "reason".
    needs: str
    run: Callable[..., ActionOutcome]
    verb: str


ACTIONS: dict[str, Action] = {
    "retry": Action("Retry", "", retry, "sent again"),
    "consent": Action("Send or reissue consent link", "", send_consent_links, "got a consent link"),
    "escalate": Action("Escalate to Volteras", "note", escalate, "escalated to Volteras"),
    "dismiss": Action("Dismiss", "reason", dismiss, "dismissed"),
}
