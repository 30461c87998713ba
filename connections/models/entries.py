"""A VIN's life: `VinEntry` and its timeline.

Every change of a VIN's state, timeline or upload version goes through here:
`VinEntry.observe()` for one observation, `VinEntry.record()` for an event that
changes nothing, `VinEntryQuerySet` for bulk moves; each records the event and
bumps the upload's version (what live polls compare) in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.timesince import timesince

from connections.countries import Region
from connections.explanations import (
    CONTRACT_CATEGORIES,
    STATUS_EXPLANATIONS,
    WHO_ACTS_LABELS,
    WhoActs,
    explain,
)
from connections.makes import make_label
from connections.models.moves import VinEntryQuerySet
from connections.models.statuses import (
    CUSTOMER_LABELS,
    DRIVER_CODES,
    NEVER_SENT_REFUSAL,
    OBSERVED_FIELDS,
    RETRY_REFUSALS,
    STATUS_BADGES,
    STATUS_LABELS,
    STUCK_STATUSES,
    SUPERSEDED_REFUSAL,
    Source,
    VinEvent,
    VinStatus,
    attention_field,
    search_key_field,
)
from connections.stuck import StuckThresholds, stuck_thresholds
from connections.vin import Validity


class VinEntry(models.Model):
    Validity = Validity

    upload = models.ForeignKey(
        "connections.Upload", on_delete=models.CASCADE, related_name="entries"
    )
    fleet = models.ForeignKey("connections.Fleet", on_delete=models.CASCADE, related_name="entries")
    line_number = models.PositiveIntegerField()
    raw_vin = models.CharField(max_length=64, blank=True)
    vin = models.CharField(max_length=64, db_index=True)
    make = models.CharField(max_length=40, blank=True)
    make_inferred = models.BooleanField(default=False)
    country_code = models.CharField(max_length=2, blank=True)
    region = models.CharField(max_length=20, choices=Region.choices, blank=True)
    registration_plate = models.CharField(max_length=32, blank=True)
    # The owner's or driver's address from the upload file: per-VIN consent links go there.
    owner_email = models.EmailField(max_length=254, blank=True)
    model = models.CharField(max_length=80, blank=True)
    model_year = models.PositiveSmallIntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)

    validity = models.CharField(max_length=10, choices=Validity.choices)
    problems = models.JSONField(default=list, blank=True)

    status = models.CharField(max_length=24, choices=VinStatus.choices, db_index=True)
    error_codes = models.JSONField(default=list, blank=True)
    # The first of error_codes, for filtering and counting on any database.
    error_code = models.CharField(max_length=64, blank=True, db_index=True)
    message = models.TextField(blank=True)
    action_category = models.CharField(max_length=24, blank=True)
    can_retry = models.BooleanField(null=True)
    vehicle_id = models.CharField(max_length=64, blank=True, db_index=True)
    vehicle_input_id = models.CharField(max_length=64, blank=True)
    was_already_connected = models.BooleanField(null=True)
    # The answer of the optional eligibility pre-check, before submission.
    eligibility = models.CharField(max_length=40, blank=True)
    eligibility_message = models.CharField(max_length=300, blank=True)
    batch = models.ForeignKey(
        "ConnectBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="entries"
    )
    attempts = models.PositiveIntegerField(default=0)
    # When a VIN still in progress after its group completed is checked again.
    next_check_at = models.DateTimeField(null=True, blank=True)
    checks = models.PositiveIntegerField(default=0)
    # What a skipped row repeats: a row of its upload, or the fleet's row of its VIN.
    duplicate_of = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Replaced by a later upload of the same VIN in this fleet.
    superseded = models.BooleanField(default=False)
    dismissed = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # When this VIN was last queued to be sent (confirmed or retried): what
    # staleness counts from, since PROCESSING -> PENDING is no progress.
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    attention = attention_field()
    search_key = search_key_field()

    objects = VinEntryQuerySet.as_manager()

    class Meta:
        ordering = ["line_number"]
        verbose_name = "VIN entry"
        verbose_name_plural = "VIN entries"
        indexes = [
            models.Index(fields=["upload", "line_number"]),
            models.Index(fields=["upload", "status"]),
            models.Index(fields=["fleet", "vin"]),
            models.Index(fields=["status", "next_check_at"]),
            models.Index(fields=["upload", "error_code"]),
            # Support's sort by age and its incidents of recent failures read this range.
            models.Index(fields=["status_changed_at"], name="vinentry_status_changed"),
            # The fleet's vehicle list: what needs the manager first, and every sort.
            models.Index(
                fields=["fleet", "superseded", "attention", "-status_changed_at", "-id"],
                name="vinentry_fleet_attention",
            ),
            models.Index(fields=["fleet", "make", "id"], name="vinentry_fleet_make"),
            models.Index(fields=["fleet", "registration_plate", "id"], name="vinentry_fleet_plate"),
            models.Index(
                fields=["fleet", "status_changed_at", "id"], name="vinentry_fleet_changed"
            ),
            models.Index(fields=["fleet", "status", "id"], name="vinentry_fleet_status"),
            models.Index(
                fields=["fleet", "status", "attention", "-status_changed_at", "-id"],
                name="vinentry_fleet_status_needs",
            ),
        ]

    def __str__(self) -> str:
        return self.vin or f"line {self.line_number}"

    @property
    def make_label(self) -> str:
        return make_label(self.make) if self.make else ""

    @property
    def who_acts_category(self) -> str:
        """Who must act on this VIN now (a `WhoActs` value, "" when nobody needs to
        yet): Volteras' own word when it gave one, else our explanation's. The
        support workspace's filter (`support.who_must_act_q`) is the same rule in SQL."""
        if self.action_category in CONTRACT_CATEGORIES:
            return self.action_category
        if self.status == VinStatus.INVALID:
            return WhoActs.CUSTOMER_ACTION
        explanation = self.explanation
        return explanation.who_acts if explanation else ""

    @property
    def who_acts(self) -> str:
        category = self.who_acts_category
        if category == WhoActs.CUSTOMER_ACTION and self.status != VinStatus.INVALID:
            driver = self.consent_link_helps or self.error_code in DRIVER_CODES
            return CUSTOMER_LABELS["driver" if driver else "manager"]
        return WHO_ACTS_LABELS.get(category, "")

    @property
    def badge(self) -> str:
        return STATUS_BADGES.get(self.status, "off")

    @property
    def status_label(self) -> str:
        """`get_status_display()` from a dict made once (Django's rebuilds it per call)."""
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def explanation(self):
        """Our explanation of its error code, or of a state with a next step but no code."""
        if self.error_code:
            return explain(self.error_code)
        return STATUS_EXPLANATIONS.get(self.status)

    @property
    def consent_link_helps(self) -> bool:
        """Whether a single-VIN consent link is this VIN's way forward."""
        if self.superseded:
            return False
        if self.status == VinStatus.CONNECTION_REQUIRED:
            return True
        explanation = self.explanation
        return self.status == VinStatus.ERROR and bool(explanation and explanation.consent_link)

    @property
    def is_stale(self) -> bool:
        return self.status in VinStatus.in_progress() and self.age > timedelta(
            days=settings.STALE_AFTER_DAYS
        )

    @property
    def in_progress_since(self) -> datetime:
        """When this VIN was (last) sent; its last status change if never sent."""
        return self.submitted_at or self.status_changed_at

    @property
    def age(self) -> timedelta:
        """How long since this VIN was sent (its last status change if never sent)."""
        return timezone.now() - self.in_progress_since

    def is_stuck(
        self, now: datetime | None = None, thresholds: StuckThresholds | None = None
    ) -> bool:
        """In PROCESSING or PENDING for longer than its make's threshold
        (`support.stuck.stuck_q` is the same rule in SQL)."""
        if self.status not in STUCK_STATUSES:
            return False
        now = now or timezone.now()
        thresholds = thresholds or stuck_thresholds()
        return now - self.in_progress_since > thresholds.for_make(self.make)

    def retry_refusal(self) -> str | None:
        """Why this VIN cannot be sent again now, or None when a retry makes sense.

        Every retry path goes through `support.retry`, which applies these rules
        and the one that looks beyond this VIN (a probable manufacturer-side
        incident holds retries back)."""
        if self.superseded:
            return SUPERSEDED_REFUSAL
        if self.status == VinStatus.DISCONNECTED:
            return None
        if self.status == VinStatus.ERROR:
            if self.can_retry is False:
                return (
                    "Volteras says sending this VIN again cannot help until the cause is "
                    "fixed: follow the next step shown for its error."
                )
            explanation = self.explanation
            # Volteras did not say; our own knowledge of the code decides.
            if self.can_retry is None and explanation and not explanation.retry_helps:
                return f"Sending this VIN again cannot help: {explanation.next_step}"
            return None
        if self.status in VinStatus.in_progress() and self.is_stuck():
            return (
                f"This VIN has been {self.get_status_display().lower()} for "
                f"{timesince(self.in_progress_since)}, longer than a VIN of its make should "
                "take, so it looks stuck; sending it again would not move it. Escalate it "
                "to Volteras (its requestIds go with it); the portal keeps rechecking its "
                "result meanwhile."
            )
        return RETRY_REFUSALS.get(self.status, NEVER_SENT_REFUSAL)

    def observe(
        self,
        status: str,
        source: str,
        *,
        error_codes: list[str] | None = None,
        message: str = "",
        action_category: str = "",
        can_retry: bool | None = None,
        vehicle_id: str = "",
        request_id: str = "",
        detail: str = "",
        actor=None,
        data: dict[str, Any] | None = None,
        bump: bool = True,
        observed_at: datetime | None = None,
    ) -> bool:
        """Apply one observation of this VIN's state; return whether it moved.

        An observation that says nothing new writes nothing. A disconnected
        vehicle stays disconnected until the API itself says it is connected
        again (a late poll of an old attempt cannot resurrect it).

        The row is re-read under a lock first, so a copy loaded before someone
        else's observation (a poll started before a webhook) decides on the
        current state and writes back only the fields observed. `observed_at`
        is when the observation was read from Volteras (default: now); one
        read before the entry's last status change is dropped, so the state
        never goes backwards in time.
        """
        error_codes = list(error_codes or [])
        with transaction.atomic():
            if not self._relock() or not self._is_news(
                status, source, error_codes, vehicle_id, message, observed_at
            ):
                return False
            previous = self.status
            now = timezone.now()
            reopened = self._take(
                status, error_codes, message, action_category, can_retry, vehicle_id, now
            )
            if reopened:
                data = {**(data or {}), "reopened": reopened}
            self.save(update_fields=[*OBSERVED_FIELDS, "updated_at"])
            VinEvent.objects.create(
                entry=self,
                at=now,
                source=source,
                status_from=previous,
                status_to=status,
                error_codes=error_codes,
                detail=detail or message,
                request_id=request_id,
                actor=actor,
                data=data or {},
            )
            if bump:
                self.upload.bump()
        return True

    def _take(
        self,
        status: str,
        error_codes: list[str],
        message: str,
        action_category: str,
        can_retry: bool | None,
        vehicle_id: str,
        now: datetime,
    ) -> list[str]:
        """Set the observed fields; returns the flags the change cleared."""
        reopened = []
        if status != self.status or error_codes != self.error_codes:
            # A new state or a new failure reopens the VIN: a dismissal or an
            # escalation was about the old one, and would otherwise stick forever.
            reopened = [flag for flag in ("dismissed", "escalated") if getattr(self, flag)]
            self.dismissed = self.escalated = False
        if status != self.status:
            self.status_changed_at = now
        self.status = status
        self.error_codes = error_codes
        self.error_code = error_codes[0][:64] if error_codes else ""
        self.message = message
        self.action_category = action_category
        self.can_retry = can_retry
        if vehicle_id:
            self.vehicle_id = vehicle_id
        if status in VinStatus.final():
            self.next_check_at = None
        return reopened

    def _relock(self) -> bool:
        """Re-read the observed fields under a row lock (inside a transaction);
        False when the row is gone."""
        current = (
            VinEntry.objects.select_for_update().filter(pk=self.pk).values(*OBSERVED_FIELDS).first()
        )
        if current is None:
            return False
        for name, value in current.items():
            setattr(self, name, value)
        return True

    def _is_news(
        self,
        status: str,
        source: str,
        error_codes: list[str],
        vehicle_id: str,
        message: str,
        observed_at: datetime | None,
    ) -> bool:
        """Whether an observation moves this (freshly locked) entry at all."""
        if observed_at is not None and observed_at < self.status_changed_at:
            return False
        if (
            self.status == VinStatus.DISCONNECTED
            and status in VinStatus.in_progress()
            and source == Source.POLL
        ):
            return False
        return bool(
            status != self.status
            or error_codes != self.error_codes
            or (vehicle_id and vehicle_id != self.vehicle_id)
            or (message and message != self.message)
        )

    def event(
        self, source: str, detail: str, *, at=None, actor=None, request_id: str = "", **data
    ) -> VinEvent:
        """A timeline event that does not change the state (an action, a note),
        not yet saved: `record()` saves one, `VinEntryQuerySet.flag` many."""
        return VinEvent(
            entry=self,
            at=at or timezone.now(),
            source=source,
            status_from=self.status,
            status_to=self.status,
            detail=detail,
            actor=actor,
            request_id=request_id,
            data=data,
        )

    def record(self, source: str, detail: str, *, actor=None, request_id: str = "", **data):
        """Record a timeline event that does not change the state."""
        event = self.event(source, detail, actor=actor, request_id=request_id, **data)
        event.save()
        return event
