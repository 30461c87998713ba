"""The portal's domain: fleets and who may see them, uploads of VINs, and each
VIN's life from validation to its final connection state.

Every state change of a VIN goes through `VinEntry.observe()`, which decides
whether the observation moves the state, records a timeline event and bumps
the upload's version (what the live table's poll compares) together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Exists, F, Q
from django.utils import timezone
from django.utils.timesince import timesince


class Region(models.TextChoices):
    EUROPE = "EUROPE", "Europe"
    NORTH_AMERICA = "NORTH_AMERICA", "North America"


class FleetQuerySet(models.QuerySet["Fleet"]):
    def visible_to(self, user) -> FleetQuerySet:
        """The one place that decides which fleets a user may see (the live table's
        poll repeats it in SQL, `Upload.version_seen_by`; a test keeps them equal)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        # One query, no join to deduplicate: support staff see every fleet,
        # managers the fleets they are members of.
        from django.contrib.auth.models import Group

        support = Group.objects.filter(name=SUPPORT_GROUP, user=user)
        member_of = Membership.objects.filter(user=user).values("fleet_id")
        return self.filter(Q(Exists(support)) | Q(pk__in=member_of))

    def managed_by(self, user) -> FleetQuerySet:
        """The one place that decides which fleets a user may change: uploads,
        fleet consent links, connected accounts. Members and admins only;
        support staff read every fleet but change them only through the
        troubleshooting actions (retry, per-VIN consent links, escalate, dismiss)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(pk__in=Membership.objects.filter(user=user).values("fleet_id"))

    def managed_ids(self, user) -> frozenset[int]:
        """`managed_by(user)` as ids, read once per request's user object (pages
        ask it for every button they may offer)."""
        cached = getattr(user, "_managed_fleet_ids", None)
        if cached is None:
            cached = frozenset(self.managed_by(user).values_list("pk", flat=True))
            user._managed_fleet_ids = cached
        return cached


def user_is_support(user) -> bool:
    """Support staff and admins read every fleet and use troubleshooting tools."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_support", None)
    if cached is None:
        cached = user.groups.filter(name=SUPPORT_GROUP).exists()
        user._is_support = cached
    return cached


SUPPORT_GROUP = "Support"
SUPERSEDED_REFUSAL = "A later upload of this VIN replaced this row: act on the newer one."


class Fleet(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    default_country_code = models.CharField(
        max_length=2, default="GB", help_text="ISO 3166-1 alpha-2, used when a row has none."
    )
    default_region = models.CharField(max_length=20, choices=Region.choices, default=Region.EUROPE)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FleetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("fleet_detail", args=[self.slug])

    def headline_counts(self) -> dict[str, int]:
        entries = VinEntry.objects.filter(fleet=self, superseded=False)
        counts = entries.aggregate(
            connected=models.Count("pk", filter=Q(status=VinStatus.CONNECTED)),
            in_progress=models.Count("pk", filter=Q(status__in=VinStatus.in_progress())),
            needs_action=models.Count(
                "pk", filter=Q(status__in=VinStatus.needs_action(), dismissed=False)
            ),
        )
        counts["active_links"] = self.active_consent_link_count()
        return counts

    def live_version(self) -> str:
        """What the fleet page's poll compares: changes whenever a headline count may.

        Every change to a VIN entry bumps its upload's version (and uploads are only
        added or removed), so the uploads' count and version sum move with the VIN
        counts; active links expire with time, so their count is read as it is. Two
        small queries instead of counting every VIN of the fleet.
        """
        uploads = Upload.objects.filter(fleet=self).aggregate(
            n=models.Count("pk"), v=models.Sum("version")
        )
        return f"{uploads['n']}.{uploads['v'] or 0}.{self.active_consent_link_count()}"

    def active_consent_link_count(self) -> int:
        from django.apps import apps

        try:
            ConsentLink = apps.get_model("connections", "ConsentLink")
        except LookupError:
            return 0
        return ConsentLink.objects.filter(fleet=self).active().count()


class Membership(models.Model):
    class Role(models.TextChoices):
        MANAGER = "manager", "Fleet manager"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MANAGER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "fleet"], name="membership_unique_user_fleet")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.fleet} ({self.get_role_display()})"


class VinStatus(models.TextChoices):
    # Before submission (never sent to Volteras).
    READY = "READY", "Ready"
    INVALID = "INVALID", "Invalid"
    SKIPPED = "SKIPPED", "Skipped"
    # Confirmed, not yet accepted by Volteras.
    SUBMITTING = "SUBMITTING", "Submitting"
    # The contract's per-VIN statuses.
    PROCESSING = "PROCESSING", "Processing"
    PENDING = "PENDING", "Pending"
    CONNECTED = "CONNECTED", "Connected"
    CONNECTION_REQUIRED = "CONNECTION_REQUIRED", "Connection required"
    INCOMPATIBLE = "INCOMPATIBLE", "Incompatible"
    ERROR = "ERROR", "Error"
    # Connected, then disconnected.
    DISCONNECTED = "DISCONNECTED", "Disconnected"

    @classmethod
    def final(cls) -> set[str]:
        return {
            cls.CONNECTED,
            cls.CONNECTION_REQUIRED,
            cls.INCOMPATIBLE,
            cls.ERROR,
            cls.DISCONNECTED,
            cls.INVALID,
            cls.SKIPPED,
        }

    @classmethod
    def in_progress(cls) -> set[str]:
        return {cls.SUBMITTING, cls.PROCESSING, cls.PENDING}

    @classmethod
    def needs_action(cls) -> set[str]:
        return {cls.CONNECTION_REQUIRED, cls.ERROR, cls.INCOMPATIBLE, cls.DISCONNECTED}

    @classmethod
    def slow_moving(cls) -> set[str]:
        """States that may last days: the live table stops fast polling on them."""
        return {cls.PENDING}

    @classmethod
    def from_api(cls, value: str) -> str:
        """Volteras' status, kept as is when unknown (stored, shown, never crashed on)."""
        return value if value in cls.values else cls.ERROR


STATUS_BADGES = {
    VinStatus.CONNECTED: "ok",
    VinStatus.SUBMITTING: "progress",
    VinStatus.PROCESSING: "progress",
    VinStatus.PENDING: "progress",
    VinStatus.CONNECTION_REQUIRED: "warn",
    VinStatus.ERROR: "bad",
    VinStatus.INCOMPATIBLE: "bad",
    VinStatus.INVALID: "bad",
}


STATUS_LABELS: dict[str, str] = dict(VinStatus.choices)


class ActionCategory(models.TextChoices):
    CUSTOMER_ACTION = "CUSTOMER_ACTION", "Customer action"
    CONTACT_SUPPORT = "CONTACT_SUPPORT", "Contact support"
    UNDER_REVIEW = "UNDER_REVIEW", "Under review"


class Source(models.TextChoices):
    VALIDATION = "validation", "Validation"
    SUBMISSION = "submission", "Submission"
    POLL = "poll", "Poll"
    WEBHOOK = "webhook", "Webhook"
    RECONCILIATION = "reconciliation", "Found by reconciliation"
    CONSENT = "consent", "Owner completed a consent link"
    MANUAL = "manual", "Manual"


class Upload(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Awaiting confirmation"
        CHECKING = "checking", "Checking eligibility"
        SUBMITTED = "submitted", "Submitted"

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    source_name = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Bumped in the same transaction as any change to its entries: the live
    # table's poll compares it and answers without rendering when unchanged.
    version = models.PositiveBigIntegerField(default=0)
    include_existing = models.BooleanField(
        default=False, help_text="Send VINs already connected or in progress in this fleet."
    )
    eligibility_id = models.CharField(max_length=64, blank=True)
    eligibility = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["fleet", "-created_at"])]

    def __str__(self) -> str:
        return f"Upload {self.pk} to {self.fleet}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("upload_detail", args=[self.pk])

    def bump(self) -> None:
        Upload.objects.filter(pk=self.pk).update(version=F("version") + 1)

    @staticmethod
    def version_seen_by(user, upload_id: int) -> int | None:
        """The version of upload `upload_id` if it belongs to a fleet `user` may see,
        else None: what every open live table asks every 2 s.

        `Fleet.objects.visible_to` as hand-written statements, because composing
        that queryset costs the ORM several times what the query costs the database
        (about 0.8 ms against 0.1), on the request every watcher repeats. The
        common watcher, a member of the fleet, costs one statement; support staff
        a second. A test holds this to visible_to's answer for every role."""
        if not user.is_authenticated or not user.is_active:
            return None
        if user.is_superuser:
            return _first_value(VERSION_SQL, [upload_id])
        version = _first_value(MEMBER_VERSION_SQL, [upload_id, user.pk])
        if version is None:
            version = _first_value(SUPPORT_VERSION_SQL, [upload_id, user.pk, SUPPORT_GROUP])
        return version

    def status_counts(self) -> dict[str, int]:
        rows = self.entries.values_list("status").annotate(n=models.Count("pk")).order_by()
        return dict(rows)


# `Upload.version_seen_by`: an upload's version, for anyone (superusers), for
# a member of its fleet, or for a member of the Support group (`visible_to`).
VERSION_SQL = "SELECT u.version FROM connections_upload u WHERE u.id = %s"
MEMBER_VERSION_SQL = (
    "SELECT u.version FROM connections_upload u JOIN connections_membership m"
    " ON m.fleet_id = u.fleet_id WHERE u.id = %s AND m.user_id = %s"
)
SUPPORT_VERSION_SQL = (
    "SELECT u.version FROM connections_upload u WHERE u.id = %s"
    " AND EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id"
    " WHERE ug.user_id = %s AND g.name = %s)"
)


def _first_value(sql: str, params: list[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


class VinEntry(models.Model):
    class Validity(models.TextChoices):
        VALID = "valid", "Valid"
        WARNING = "warning", "Valid with a warning"
        INVALID = "invalid", "Invalid"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="entries")
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="entries")
    line_number = models.PositiveIntegerField()
    raw_vin = models.CharField(max_length=64, blank=True)
    vin = models.CharField(max_length=64, db_index=True)
    make = models.CharField(max_length=40, blank=True)
    make_inferred = models.BooleanField(default=False)
    country_code = models.CharField(max_length=2, blank=True)
    region = models.CharField(max_length=20, choices=Region.choices, blank=True)
    registration_plate = models.CharField(max_length=32, blank=True)
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
    # Replaced by a later upload of the same VIN in this fleet.
    superseded = models.BooleanField(default=False)
    dismissed = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # When this VIN was last queued to be sent (confirmed or retried): what
    # staleness counts from, since PROCESSING -> PENDING is no progress.
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["line_number"]
        verbose_name_plural = "VIN entries"
        indexes = [
            models.Index(fields=["upload", "line_number"]),
            models.Index(fields=["upload", "status"]),
            models.Index(fields=["fleet", "vin"]),
            models.Index(fields=["status", "next_check_at"]),
            models.Index(fields=["upload", "error_code"]),
            # The support workspace sorts every fleet's VINs by age and groups
            # recent failures into incidents: both read this range.
            models.Index(fields=["status_changed_at"], name="vinentry_status_changed"),
        ]

    def __str__(self) -> str:
        return self.vin or f"line {self.line_number}"

    @property
    def make_label(self) -> str:
        from .makes import make_label

        return make_label(self.make) if self.make else ""

    @property
    def who_acts_category(self) -> str:
        """Who must act on this VIN now (a `WhoActs` value, "" when nobody needs to
        yet): Volteras' own word when it gave one, else our explanation's. The
        support workspace's filter (`support.who_must_act_q`) is the same rule in SQL."""
        if self.action_category in ActionCategory.values:
            return self.action_category
        if self.status == VinStatus.INVALID:
            return ActionCategory.CUSTOMER_ACTION
        explanation = self.explanation
        return explanation.who_acts if explanation else ""

    @property
    def who_acts(self) -> str:
        from .explanations import WHO_ACTS_LABELS

        return WHO_ACTS_LABELS.get(self.who_acts_category, "")

    @property
    def badge(self) -> str:
        return STATUS_BADGES.get(self.status, "off")

    @property
    def status_label(self) -> str:
        """`get_status_display()` from a dict made once: Django's rebuilds the
        choices on every call, a hundred times per live table render."""
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def explanation(self):
        """Our explanation of the VIN's error code, or of its state when that has a
        next step without a code (waiting for the owner's consent)."""
        from .explanations import STATUS_EXPLANATIONS, explain

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

    @staticmethod
    def consent_link_q() -> Q:
        """`consent_link_helps` as one SQL condition."""
        from .explanations import EXPLANATIONS

        codes = [code for code, x in EXPLANATIONS.items() if x.consent_link]
        waiting = Q(status=VinStatus.CONNECTION_REQUIRED)
        return Q(superseded=False) & (waiting | Q(status=VinStatus.ERROR, error_code__in=codes))

    @property
    def is_final(self) -> bool:
        return self.status in VinStatus.final()

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
        if self.status == VinStatus.CONNECTION_REQUIRED:
            return "The owner must complete a consent flow first: send them a consent link."
        if self.status == VinStatus.INCOMPATIBLE:
            return "Volteras cannot connect this vehicle: sending it again cannot help."
        if self.status in VinStatus.in_progress():
            from .support import is_stuck

            if is_stuck(self):
                return (
                    f"This VIN has been {self.get_status_display().lower()} for "
                    f"{timesince(self.in_progress_since)}, longer than a VIN of its make should "
                    "take, so it looks stuck; sending it again would not move it. Escalate it "
                    "to Volteras (its requestIds go with it); the portal keeps rechecking its "
                    "result meanwhile."
                )
            return "This VIN is still being connected; wait for its result."
        if self.status == VinStatus.CONNECTED:
            return "This VIN is already connected."
        if self.status == VinStatus.READY:
            return "This VIN has not been sent yet: it goes out when its upload is confirmed."
        return "This VIN was never sent: fix it and upload it again."

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
            current = (
                VinEntry.objects.select_for_update()
                .filter(pk=self.pk)
                .values(*self.OBSERVED_FIELDS)
                .first()
            )
            if current is None:
                return False
            for name, value in current.items():
                setattr(self, name, value)
            if observed_at is not None and observed_at < self.status_changed_at:
                return False
            if (
                self.status == VinStatus.DISCONNECTED
                and status in VinStatus.in_progress()
                and source == Source.POLL
            ):
                return False
            changed = (
                status != self.status
                or error_codes != self.error_codes
                or (vehicle_id and vehicle_id != self.vehicle_id)
                or (message and message != self.message)
            )
            if not changed:
                return False
            previous = self.status
            now = timezone.now()
            if status != previous or error_codes != self.error_codes:
                # A new state or a new failure reopens the VIN: a dismissal or an
                # escalation was about the old one, and would otherwise stick forever.
                reopened = [flag for flag in ("dismissed", "escalated") if getattr(self, flag)]
                if reopened:
                    self.dismissed = self.escalated = False
                    data = {**(data or {}), "reopened": reopened}
            if status != previous:
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
            self.save(update_fields=[*self.OBSERVED_FIELDS, "updated_at"])
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

    # What an observation reads and writes; nothing else of a possibly stale
    # copy is written back.
    OBSERVED_FIELDS = (
        "status",
        "status_changed_at",
        "error_codes",
        "error_code",
        "message",
        "action_category",
        "can_retry",
        "vehicle_id",
        "next_check_at",
        "dismissed",
        "escalated",
    )

    def record(self, source: str, detail: str, *, actor=None, request_id: str = "", **data):
        """A timeline event that does not change the state (an action, a note)."""
        return VinEvent.objects.create(
            entry=self,
            source=source,
            status_from=self.status,
            status_to=self.status,
            detail=detail,
            actor=actor,
            request_id=request_id,
            data=data,
        )


class VinEvent(models.Model):
    entry = models.ForeignKey(VinEntry, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=20, choices=Source.choices)
    status_from = models.CharField(max_length=24, blank=True)
    status_to = models.CharField(max_length=24, blank=True)
    error_codes = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["entry", "at"])]

    def __str__(self) -> str:
        return f"{self.entry} {self.status_from}→{self.status_to} ({self.source})"


class ConnectBatch(models.Model):
    """Up to 100 VINs sent in one `POST /v1/vehicles/connect`: the durable
    record of that work, claimed with a lease so two workers never send it."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting"
        # The POST may or may not have reached Volteras: reconcile, then resend.
        AMBIGUOUS = "ambiguous", "Outcome unknown"
        POLLING = "polling", "Polling"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    group_id = models.CharField(max_length=64, blank=True, db_index=True)
    group_status = models.CharField(max_length=20, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    polls = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    last_request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["upload", "number"]
        verbose_name_plural = "connect batches"
        constraints = [
            models.UniqueConstraint(fields=["upload", "number"], name="batch_unique_number")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"Batch {self.number} of upload {self.upload_id}"

    @property
    def is_open(self) -> bool:
        return self.state not in {self.State.DONE, self.State.FAILED}


class Vehicle(models.Model):
    """Volteras' view of a vehicle, as last read from `GET /v1/vehicles/{id}`."""

    volteras_id = models.CharField(max_length=64, unique=True)
    vin = models.CharField(max_length=64, blank=True, db_index=True)
    make = models.CharField(max_length=40, blank=True)
    connection_status = models.CharField(max_length=40, blank=True)
    connection_error_code = models.CharField(max_length=64, blank=True)
    account_id = models.CharField(max_length=64, blank=True, db_index=True)
    disconnected = models.BooleanField(default=False)
    raw = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["vin"]

    def __str__(self) -> str:
        return self.vin or self.volteras_id


class WorkerHeartbeat(models.Model):
    worker_id = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.worker_id

    @classmethod
    def beat(cls, worker_id: str, hostname: str = "") -> None:
        cls.objects.update_or_create(
            worker_id=worker_id, defaults={"hostname": hostname, "seen_at": timezone.now()}
        )

    @classmethod
    def latest_age(cls) -> timedelta | None:
        latest = cls.objects.aggregate(m=models.Max("seen_at"))["m"]
        return None if latest is None else timezone.now() - latest


class ApiToken(models.Model):
    """The Volteras access token, shared by every portal process and worker so
    ten workers do not each fetch their own. One row per API base URL."""

    api_url = models.CharField(max_length=255, unique=True)
    access_token = models.TextField(blank=True)
    refresh_token = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # While set and in the future, one process is fetching a new token; the
    # others wait for it instead of each asking Volteras for their own.
    renewing_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.api_url


from .models_consent import ConnectedAccount, ConsentLink, ConsentLinkEvent, LinkStatus  # noqa: E402,F401
from .models_summary import UploadSummary  # noqa: E402,F401
from .models_webhooks import ReconciliationRun, RefusedDelivery, UnmatchedVehicle, WebhookEvent  # noqa: E402,F401
