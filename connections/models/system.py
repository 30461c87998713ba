"""The portal's own bookkeeping: worker heartbeats and the shared API token."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


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
