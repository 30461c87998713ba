"""A VIN's statuses, where an observation of one came from, and its timeline (`VinEvent`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Cast, Concat, Replace, Upper
from django.utils import timezone

from connections.explanations import explain

SUPERSEDED_REFUSAL = "A later upload of this VIN replaced this row: act on the newer one."


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

    # Each set made once (`_GROUPS`, below): every row of every live table asks.
    @classmethod
    def final(cls) -> frozenset[str]:
        return _GROUPS["final"]

    @classmethod
    def in_progress(cls) -> frozenset[str]:
        return _GROUPS["in_progress"]

    @classmethod
    def needs_action(cls) -> frozenset[str]:
        return _GROUPS["needs_action"]

    @classmethod
    def slow_moving(cls) -> frozenset[str]:
        """States that may last days: the live table stops fast polling on them."""
        return _GROUPS["slow_moving"]

    @classmethod
    def from_api(cls, value: str) -> str:
        """Volteras' status, kept as is when unknown (stored, shown, never crashed on)."""
        return value if value in cls.values else cls.ERROR


_GROUPS = {
    "final": frozenset(
        {
            VinStatus.CONNECTED,
            VinStatus.CONNECTION_REQUIRED,
            VinStatus.INCOMPATIBLE,
            VinStatus.ERROR,
            VinStatus.DISCONNECTED,
            VinStatus.INVALID,
            VinStatus.SKIPPED,
        }
    ),
    "in_progress": frozenset({VinStatus.SUBMITTING, VinStatus.PROCESSING, VinStatus.PENDING}),
    "needs_action": frozenset(
        {
            VinStatus.CONNECTION_REQUIRED,
            VinStatus.ERROR,
            VinStatus.INCOMPATIBLE,
            VinStatus.DISCONNECTED,
        }
    ),
    "slow_moving": frozenset({VinStatus.PENDING}),
}

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


class Attention(models.IntegerChoices):
    """Where a VIN stands for its fleet's manager, in the order the fleet's vehicle
    list shows them by default: what needs them first. Stored on every entry
    (`VinEntry.attention`, computed by the database from the status)."""

    NEEDS_YOU = 0, "Needs you"
    IN_PROGRESS = 1, "In progress"
    CONNECTED = 2, "Connected"
    SET_ASIDE = 3, "Dismissed"
    NEVER_SENT = 9, "Not sent"


def attention_field() -> models.GeneratedField:
    """`VinEntry.attention`, computed and stored by the database: `Attention` of
    an entry as one SQL expression, the headline counts' rule
    (`Fleet.headline_counts`), so each tile links to exactly its rows."""
    needs_action = sorted(VinStatus.needs_action())
    rank = models.Case(
        models.When(status__in=needs_action, dismissed=False, then=models.Value(0)),
        models.When(status__in=sorted(VinStatus.in_progress()), then=models.Value(1)),
        models.When(status=VinStatus.CONNECTED, then=models.Value(2)),
        models.When(status__in=needs_action, then=models.Value(3)),
        default=models.Value(9),
    )
    return models.GeneratedField(
        expression=rank, output_field=models.SmallIntegerField(), db_persist=True
    )


# Between the parts of `search_key`: a search box's one line never holds it,
# so a search never matches across two parts.
SEARCH_KEY_SEPARATOR = "\n"


def plate_key() -> Replace:
    """A plate as searches compare it: upper-case, without spaces or dashes."""
    return Replace(Replace(Upper("registration_plate"), Value(" ")), Value("-"))


def search_key_field() -> models.GeneratedField:
    """`VinEntry.search_key`: what the fleet list's search box compares, as one
    column the database computes and stores, with one trigram index (migration
    0021): the VIN, the plate without spaces or dashes, and the tags' JSON,
    upper-cased (`search_needles` upper-cases a search the same way)."""
    tags = Upper(Cast("tags", models.TextField()))
    gap = Value(SEARCH_KEY_SEPARATOR)
    key = Concat("vin", gap, plate_key(), gap, tags, output_field=models.TextField())
    return models.GeneratedField(expression=key, output_field=models.TextField(), db_persist=True)


def search_needles(text: str) -> set[str]:
    """What a search for `text` looks for in `search_key`: the text as typed
    (for tags), and without spaces or dashes (for VINs and plates, which are
    written both ways), upper-cased."""
    typed = text.strip().upper()
    return {typed, typed.replace(" ", "").replace("-", "")} - {""}


class Source(models.TextChoices):
    VALIDATION = "validation", "Validation"
    SUBMISSION = "submission", "Submission"
    POLL = "poll", "Poll"
    WEBHOOK = "webhook", "Webhook"
    RECONCILIATION = "reconciliation", "Found by reconciliation"
    CONSENT = "consent", "Owner completed a consent link"
    MANUAL = "manual", "Manual"


# The states a VIN can get stuck in (sent, and waiting on Volteras or the vehicle).
STUCK_STATUSES: tuple[str, ...] = (VinStatus.PROCESSING, VinStatus.PENDING)


class VinEvent(models.Model):
    entry = models.ForeignKey(
        "connections.VinEntry", on_delete=models.CASCADE, related_name="events"
    )
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
        verbose_name = "VIN event"

    def __str__(self) -> str:
        return f"{self.entry} {self.status_from}→{self.status_to} ({self.source})"

    @property
    def headline(self) -> str:
        """What happened, in the fleet manager's words (the raw states, codes and
        ids are the technical detail the VIN page folds away)."""
        if self.status_from == self.status_to:
            return self.detail
        if self.status_to == VinStatus.SUBMITTING:
            again = self.status_from not in {"", VinStatus.READY}
            return "Sent to Volteras again" if again else "Sent to Volteras"
        if self.status_to == VinStatus.CONNECTED and self.source == Source.CONSENT:
            return "Owner completed consent: the vehicle is connected"
        if self.status_to == VinStatus.ERROR:
            code = self.error_codes[0] if self.error_codes else ""
            return f"Could not connect: {explain(code).title.rstrip('.')}"
        return HEADLINES.get(self.status_to, STATUS_LABELS.get(self.status_to, self.status_to))


# "Customer action" said who: the codes whose fix is in the driver's hands (their
# car, their manufacturer account), and everything else the fleet manager does.
DRIVER_CODES = frozenset(
    {
        "OEM_VEHICLE_OFFLINE",
        "OEM_VEHICLE_REMOTE_ACCESS_DISABLED",
        "OEM_VEHICLE_DATA_SHARING_DISABLED",
        "OEM_AUTH_DRIVER_IS_NOT_PRIMARY_USER",
        "OEM_VEHICLE_UPDATE_REQUIRED",
    }
)
CUSTOMER_LABELS = {
    "driver": "Customer action: the vehicle's driver",
    "manager": "Customer action: you, the fleet manager",
}


HEADLINES: dict[str, str] = {
    VinStatus.PROCESSING: "Volteras accepted the VIN and is connecting it",
    VinStatus.PENDING: "Volteras is waiting for the vehicle to wake up",
    VinStatus.CONNECTED: "Connected",
    VinStatus.CONNECTION_REQUIRED: "Waiting for the owner's consent",
    VinStatus.INCOMPATIBLE: "Volteras cannot connect this vehicle",
    VinStatus.DISCONNECTED: "Disconnected",
}


# Why a VIN in each state cannot be sent again (`VinEntry.retry_refusal`).
RETRY_REFUSALS: dict[str, str] = {
    VinStatus.CONNECTION_REQUIRED: (
        "The owner must complete a consent flow first: send them a consent link."
    ),
    VinStatus.INCOMPATIBLE: "Volteras cannot connect this vehicle: sending it again cannot help.",
    VinStatus.SUBMITTING: "This VIN is still being connected; wait for its result.",
    VinStatus.PROCESSING: "This VIN is still being connected; wait for its result.",
    VinStatus.PENDING: "This VIN is still being connected; wait for its result.",
    VinStatus.CONNECTED: "This VIN is already connected.",
    VinStatus.READY: "This VIN has not been sent yet: it goes out when its upload is confirmed.",
}


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


NEVER_SENT_REFUSAL = "This VIN was never sent: fix it and upload it again."
