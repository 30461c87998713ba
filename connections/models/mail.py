"""`MailMessage`: the durable outbox row of one e-mail, and the managers'
notification choices.

A message is rendered when it is queued and stored whole (subject, text, HTML,
headers), so the worker only delivers it. Its `key` is unique: whoever queues
the same message again (a double click, two workers noticing one event) finds
the row already there and queues nothing. A worker claims the row with a lease
before talking to the SMTP server, like `ConnectBatch.claim`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

LEASE = timedelta(minutes=2)


class MailMessage(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not sent (no longer needed)"

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40, db_index=True)
    to = models.EmailField(max_length=254)
    reply_to = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=10, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What the message is about, when it is about a consent link (its timeline
    # records the sending) or is addressed to a portal user (a notification).
    consent_link = models.ForeignKey(
        "connections.ConsentLink",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="messages",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mail_messages",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to}"

    @classmethod
    def claim(cls, message_id: int) -> tuple[MailMessage | None, str]:
        """Take a queued, due message for one delivery attempt (one conditional
        UPDATE); None when it is not due, not queued, or someone holds it."""
        now = timezone.now()
        owner = uuid.uuid4().hex
        claimed = (
            cls.objects.filter(pk=message_id, state=cls.State.QUEUED, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(
                state=cls.State.SENDING,
                attempts=models.F("attempts") + 1,
                lease_until=now + LEASE,
                lease_owner=owner,
            )
        )
        if not claimed:
            return None, owner
        return cls.objects.select_related("consent_link").get(pk=message_id), owner

    def release(self, owner: str, state: str, **changes) -> bool:
        """Record the attempt's outcome, unless the lease was lost meanwhile."""
        updated = MailMessage.objects.filter(pk=self.pk, lease_owner=owner).update(
            state=state, lease_until=None, lease_owner="", **changes
        )
        if updated:
            self.state = state
            for name, value in changes.items():
                setattr(self, name, value)
        return bool(updated)

    def retry(self) -> bool:
        """Queue a failed message again (a person asked for it)."""
        return bool(
            MailMessage.objects.filter(pk=self.pk, state=self.State.FAILED).update(
                state=self.State.QUEUED, next_attempt_at=timezone.now(), enqueued_at=None
            )
        )


class NotificationKind(models.TextChoices):
    UPLOAD_SETTLED = "upload_settled", "An upload has settled (counts, and what needs you)"
    DIGEST = "digest", "A daily digest of the VINs that need you"
    CONSENT_COMPLETED = "consent_completed", "An owner completed a consent link"
    STUCK = "stuck", "A VIN is stuck (support)"
    INCIDENT = "incident", "A probable manufacturer incident is opened (support)"

    @classmethod
    def default_on(cls) -> set[str]:
        return {cls.UPLOAD_SETTLED, cls.CONSENT_COMPLETED, cls.INCIDENT}

    @classmethod
    def for_support(cls) -> set[str]:
        return {cls.STUCK, cls.INCIDENT}


class NotificationChoice(models.Model):
    """One user's yes or no for one kind; without a row, `NotificationKind.default_on` decides."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_choices"
    )
    kind = models.CharField(max_length=40, choices=NotificationKind.choices)
    enabled = models.BooleanField()
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notification_choice_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.kind}: {'on' if self.enabled else 'off'}"

    @classmethod
    def wanted(cls, user, kind: str) -> bool:
        choice = cls.objects.filter(user=user, kind=kind).values_list("enabled", flat=True).first()
        return kind in NotificationKind.default_on() if choice is None else choice

    @classmethod
    def choose(cls, user, kind: str, enabled: bool) -> None:
        cls.objects.update_or_create(user=user, kind=kind, defaults={"enabled": enabled})
