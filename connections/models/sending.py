"""`ConnectBatch`: the durable record of one `POST /v1/vehicles/connect`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# How long a claim holds without news from its holder. The holder renews it
# while its call to Volteras is in flight (`sending.lease.LeaseKeeper`), so a
# slow call (a connect POST can take minutes through timeouts and retries)
# never lets the lease lapse under it; only a dead worker's lease runs out.
LEASE = timedelta(seconds=settings.WORKER_LEASE_SECONDS)


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

    upload = models.ForeignKey(
        "connections.Upload", on_delete=models.CASCADE, related_name="batches"
    )
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

    @classmethod
    def claim(
        cls, batch_id: int, states: Iterable[str], **changes
    ) -> tuple[ConnectBatch | None, str]:
        """Take the batch for one step, or None when it is not due or someone
        has it: one conditional UPDATE, atomic on SQLite and PostgreSQL alike.
        Returns the batch and the lease owner's id."""
        now = timezone.now()
        owner = uuid.uuid4().hex
        claimed = (
            cls.objects.filter(pk=batch_id, state__in=list(states), next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=now + LEASE, lease_owner=owner, **changes)
        )
        if not claimed:
            return None, owner
        return cls.objects.select_related("upload").get(pk=batch_id), owner

    def release(self, owner: str, **changes) -> bool:
        """Record the step's outcome, unless the lease was lost (then another
        worker owns the batch and this result is dropped: the step is redone)."""
        updated = ConnectBatch.objects.filter(pk=self.pk, lease_owner=owner).update(
            lease_until=None, lease_owner="", **changes
        )
        return bool(updated)

    @staticmethod
    def failure(exc: Exception | None) -> dict[str, str]:
        """What a batch keeps of the error that ended its last step (none: cleared)."""
        if exc is None:
            return {"last_error": "", "last_request_id": ""}
        return {
            "last_error": str(exc)[:2000],
            "last_request_id": getattr(exc, "request_id", None) or "",
        }

    def renew_lease(self, owner: str) -> bool:
        """Extend the lease while its holder is still working; False once it is someone else's."""
        return bool(
            ConnectBatch.objects.filter(pk=self.pk, lease_owner=owner).update(
                lease_until=timezone.now() + LEASE
            )
        )
