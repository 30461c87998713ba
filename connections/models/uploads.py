"""An upload of VINs to a fleet, and its version, which moves with every change to its entries."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F
from django.urls import reverse

from connections.roles import SUPPORT_GROUP


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
        entries (`VinEntry.observe` and `VinEntryQuerySet`) and of the upload itself."""
        Upload.objects.filter(pk=self.pk).update(version=F("version") + 1)

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
