"""The support workspace's knowledge: which VINs need a look across every
fleet, which are stuck, which failures look like a manufacturer-side incident,
and the actions support takes on them (each recorded in the VIN's timeline
with who and when, each refused with the reason where it makes no sense).

Everything that lists VINs stays a queryset (filtered, counted and grouped in
SQL), so the pages stay fast on hundreds of thousands of rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from . import consent, submission
from .explanations import EXPLANATIONS, STATUS_EXPLANATIONS, Explanation, explain
from .makes import make_label, normalise_make
from .models import (
    SUPERSEDED_REFUSAL,
    ActionCategory,
    Source,
    Upload,
    VinEntry,
    VinEvent,
    VinStatus,
)
from .volteras import ValidationError, VolterasError

# Every state in which a VIN is not (or no longer) connected. Rows that were
# never meant to be sent (drafts, skipped duplicates) are not support's business.
WORKSPACE_STATUSES: tuple[str, ...] = (
    VinStatus.ERROR,
    VinStatus.CONNECTION_REQUIRED,
    VinStatus.INCOMPATIBLE,
    VinStatus.DISCONNECTED,
    VinStatus.SUBMITTING,
    VinStatus.PROCESSING,
    VinStatus.PENDING,
    VinStatus.INVALID,
)
STUCK_STATUSES: tuple[str, ...] = (VinStatus.PROCESSING, VinStatus.PENDING)


def workspace_entries() -> QuerySet[VinEntry]:
    """Every current (not superseded) VIN of every fleet that is not connected."""
    return VinEntry.objects.filter(status__in=WORKSPACE_STATUSES, superseded=False)


# Who must act.


def who_must_act_q(category: str) -> Q:
    """VINs whose next step is for `category` to take: `VinEntry.who_acts_category`
    as one SQL condition (Volteras' own `actionCategory` when it gave one, else
    our explanation of the VIN's error code or of its state)."""
    q = Q(action_category=category)
    ours = ~Q(action_category__in=ActionCategory.values)
    if category == ActionCategory.CUSTOMER_ACTION:
        q |= ours & Q(status=VinStatus.INVALID)
    ours &= ~Q(status=VinStatus.INVALID)
    codes = [code for code, x in EXPLANATIONS.items() if x.who_acts == category]
    statuses = [status for status, x in STATUS_EXPLANATIONS.items() if x.who_acts == category]
    q |= ours & Q(error_code__in=codes)
    q |= ours & Q(error_code="", status__in=statuses)
    if explain("").who_acts == category:
        # Codes we have not written up get the generic explanation.
        q |= ours & ~Q(error_code="") & ~Q(error_code__in=list(EXPLANATIONS))
    return q


# Stuck detection.


@dataclass(frozen=True)
class StuckThresholds:
    default: timedelta
    by_make: dict[str, timedelta]

    def for_make(self, make: str) -> timedelta:
        return self.by_make.get(make, self.default)

    def describe(self) -> str:
        """ "48 h for any make, BMW 72 h" (how the page states them)."""
        parts = [f"{_hours(self.default)} h for any make"]
        parts += [f"{make_label(m)} {_hours(limit)} h" for m, limit in sorted(self.by_make.items())]
        return ", ".join(parts)


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def stuck_thresholds() -> StuckThresholds:
    """SUPPORT_STUCK_HOURS, overridden per make by SUPPORT_STUCK_HOURS_BY_MAKE
    (its keys read as people spell makes: "Mercedes-Benz" means MERCEDES BENZ)."""
    by_make = {
        normalise_make(name) or name: timedelta(hours=hours)
        for name, hours in settings.SUPPORT_STUCK_HOURS_BY_MAKE.items()
    }
    return StuckThresholds(timedelta(hours=settings.SUPPORT_STUCK_HOURS), by_make)


# Since when a VIN has been on its way: its (last) submission, so moving from
# PROCESSING to PENDING does not restart the clock (rows sent before
# `submitted_at` existed fall back to their last status change).
IN_PROGRESS_SINCE = Coalesce("submitted_at", "status_changed_at")


def stuck_q(now: datetime | None = None, thresholds: StuckThresholds | None = None) -> Q:
    """In PROCESSING or PENDING for longer than its make's threshold, as one SQL condition."""
    now = now or timezone.now()
    thresholds = thresholds or stuck_thresholds()
    q = Q(LessThan(IN_PROGRESS_SINCE, now - thresholds.default))
    if thresholds.by_make:
        q &= ~Q(make__in=list(thresholds.by_make))
    for make, limit in thresholds.by_make.items():
        q |= Q(make=make) & Q(LessThan(IN_PROGRESS_SINCE, now - limit))
    return Q(status__in=STUCK_STATUSES) & q


def is_stuck(
    entry: VinEntry, now: datetime | None = None, thresholds: StuckThresholds | None = None
) -> bool:
    """`stuck_q` for one VIN already loaded."""
    if entry.status not in STUCK_STATUSES:
        return False
    now = now or timezone.now()
    thresholds = thresholds or stuck_thresholds()
    return now - entry.in_progress_since > thresholds.for_make(entry.make)


def stuck_entries(entries: QuerySet[VinEntry] | None = None) -> QuerySet[VinEntry]:
    """Stuck VINs, the longest-waiting first."""
    entries = workspace_entries() if entries is None else entries
    return entries.filter(stuck_q()).order_by(IN_PROGRESS_SINCE.asc(), "pk")


# Incident grouping.


@dataclass(frozen=True)
class Incident:
    """Many VINs of one make failing with one error code within the window:
    most likely the manufacturer's side, so retrying single VINs won't help."""

    make: str
    error_code: str
    vins: int
    fleets: int
    first_at: datetime
    last_at: datetime

    @property
    def make_label(self) -> str:
        return make_label(self.make) if self.make else "Unknown make"

    @property
    def explanation(self) -> Explanation:
        return explain(self.error_code)

    def describe(self) -> str:
        return (
            f"{self.error_code} on {self.vins} {self.make_label} VINs since "
            f"{self.first_at:%d %b %H:%M} UTC"
        )


def incident_window() -> timedelta:
    return timedelta(hours=settings.INCIDENT_WINDOW_HOURS)


def incidents(now: datetime | None = None) -> list[Incident]:
    """Probable manufacturer-side incidents: at least INCIDENT_MIN_VINS VINs of
    one make that moved to one error code within the last INCIDENT_WINDOW_HOURS.
    Dismissed VINs still count: dismissing a VIN does not fix the manufacturer."""
    now = now or timezone.now()
    rows = (
        workspace_entries()
        .filter(status_changed_at__gte=now - incident_window())
        .exclude(error_code="")
        .values("make", "error_code")
        .annotate(
            vins=Count("pk"),
            fleets=Count("fleet", distinct=True),
            first_at=Min("status_changed_at"),
            last_at=Max("status_changed_at"),
        )
        .filter(vins__gte=settings.INCIDENT_MIN_VINS)
        .order_by("-vins", "make", "error_code")
    )
    return [Incident(**row) for row in rows]


# Counts for the charts and the filter choices.


def counts_by(entries: QuerySet[VinEntry], field_name: str) -> list[tuple[str, int]]:
    """(value, count) for one column, the most frequent first, in one GROUP BY."""
    rows = entries.values_list(field_name).annotate(n=Count("pk")).order_by("-n", field_name)
    return [(value, n) for value, n in rows]


# Actions.


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
            queued = set(submission.retry_entries(upload, group, user, reason))
            # Sending a VIN again reopens it, whatever was decided about it before.
            VinEntry.objects.filter(Q(dismissed=True) | Q(escalated=True), pk__in=queued).update(
                dismissed=False, escalated=False
            )
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
            if latest is not None and consent.can_reissue(latest):
                consent.reissue(latest, user)
            else:
                run = consent.create_vin_links_batch(entry.upload, [entry], user, limit=0)
                if run.failures or run.stopped:
                    outcome.refuse(entry, run.failures.get(entry.vin) or run.stopped)
                    if run.stopped:
                        # Refused for the whole organisation (limits, credentials,
                        # outage): it would repeat for every other VIN.
                        stop_reason = f"Not tried: {run.stopped}"
                    continue
        except VolterasError as exc:
            message = consent.refusal_message(exc)
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
            _event(
                entry,
                now,
                user,
                detail,
                request_id=found[-1] if found else "",
                action="escalate",
                note=note,
                request_ids=found,
                group_id=group_id,
                vehicle_id=entry.vehicle_id,
            )
        )
    _apply(outcome.done, events, escalated=True)
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
        _event(e, now, user, f"Dismissed: {reason}", action="dismiss", reason=reason)
        for e in outcome.done
    ]
    _apply(outcome.done, events, dismissed=True)
    return outcome


def _event(entry: VinEntry, at: datetime, user, detail: str, request_id: str = "", **data):
    return VinEvent(
        entry=entry,
        at=at,
        source=Source.MANUAL,
        status_from=entry.status,
        status_to=entry.status,
        detail=detail,
        request_id=request_id,
        actor=user,
        data=data,
    )


def _apply(entries: Sequence[VinEntry], events: list[VinEvent], **flags: bool) -> None:
    if not entries:
        return
    with transaction.atomic():
        VinEntry.objects.filter(pk__in=[e.pk for e in entries]).update(
            updated_at=timezone.now(), **flags
        )
        VinEvent.objects.bulk_create(events)
        for upload_id in {e.upload_id for e in entries}:
            Upload(pk=upload_id).bump()
    for entry in entries:
        for name, value in flags.items():
            setattr(entry, name, value)


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
