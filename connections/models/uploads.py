"""An upload of VINs to a fleet, and its version, which moves with every change to its entries."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.urls import reverse


class Upload(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Awaiting confirmation"
        CHECKING = "checking", "Checking eligibility"
        SUBMITTED = "submitted", "Submitted"

    fleet = models.ForeignKey("connections.Fleet", on_delete=models.CASCADE, related_name="uploads")
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
    eligibility = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["fleet", "-created_at"])]

    def __str__(self) -> str:
        return f"Upload {self.pk} to {self.fleet}"

    def get_absolute_url(self) -> str:
        return reverse("upload_detail", args=[self.pk])

    def bump(self) -> None:
        """Move the version on: called only by the transitions of the upload's
        entries (`VinEntry.observe` and `VinEntryQuerySet`), of the upload
        itself, and of an entry's consent links (`consent.links.create_link`,
        `ConsentLink.move` through `bump_entry_upload`)."""
        Upload.objects.filter(pk=self.pk).update(version=F("version") + 1)

    @staticmethod
    def bump_entry_upload(entry_id: int) -> None:
        """Move on the version of entry `entry_id`'s upload: its row shows the
        entry's consent link (made, opened, completed...), and an open table
        looks again only when the version moves."""
        Upload.objects.filter(entries__pk=entry_id).update(version=F("version") + 1)

    def delete_draft(self) -> int | None:
        """Delete this upload and its rows if it is still a draft (never sent,
        not being checked): the number of rows deleted, else None. Locks the
        upload first, so a submit or an eligibility check racing it either
        wins (and nothing is deleted) or finds the upload gone."""
        with transaction.atomic():
            locked = (
                Upload.objects.select_for_update()
                .filter(pk=self.pk, state=Upload.State.DRAFT)
                .first()
            )
            if locked is None:
                return None
            rows = locked.entries.count()
            locked.delete()
        return rows
