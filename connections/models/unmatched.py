"""Vehicles a webhook named that match nothing any fleet knows, and reconciliation runs."""

from __future__ import annotations

from django.db import (
    models,
)
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from connections.models.consent import ConnectedAccount
from connections.models.entries import VinEntry
from connections.models.vehicles import Vehicle
from connections.models.webhooks import WebhookEvent


class UnmatchedVehicleQuerySet(models.QuerySet["UnmatchedVehicle"]):
    def now_known(self) -> UnmatchedVehicleQuerySet:
        """Rows that match something a fleet knows by now: a VIN entry of the
        vehicle id or VIN, or the consent account the vehicle was shared from."""
        by_id = VinEntry.objects.filter(vehicle_id=OuterRef("volteras_id"))
        by_vin = VinEntry.objects.filter(vin=OuterRef("vin"))
        by_account = Vehicle.objects.filter(
            volteras_id=OuterRef("volteras_id"),
            account_id__in=ConnectedAccount.objects.exclude(volteras_id="").values("volteras_id"),
        )
        return self.filter(Exists(by_id) | (Exists(by_vin) & ~Q(vin="")) | Exists(by_account))

    def still_unmatched(self) -> UnmatchedVehicleQuerySet:
        return self.exclude(pk__in=self.now_known().values("pk"))


class UnmatchedVehicle(models.Model):
    """A vehicle a webhook named that matches no VIN entry in any fleet, kept
    for support with what the API said about it. Removed once it matches."""

    volteras_id = models.CharField(max_length=64, unique=True)
    vin = models.CharField(max_length=64, blank=True, db_index=True)
    api_status = models.CharField(max_length=40, blank=True)
    api_answer = models.JSONField(default=dict, blank=True)
    not_found = models.BooleanField(default=False, help_text="The API answered 404.")
    events = models.PositiveIntegerField(default=0)
    last_event = models.ForeignKey(
        WebhookEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    objects = UnmatchedVehicleQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.vin or self.volteras_id


class ReconciliationRun(models.Model):
    """One pass comparing the portal with Volteras. `slot` (the interval
    number since the epoch) is unique, so however many workers sweep, each
    interval starts at most one run."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    slot = models.BigIntegerField(unique=True, null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    vehicles_listed = models.PositiveIntegerField(default=0)
    groups_read = models.PositiveIntegerField(default=0)
    vehicles_read = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Where the next run resumes its bounded reads (see `reconcile`).
    vehicle_cursor = models.CharField(max_length=64, blank=True)
    group_cursor = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Reconciliation {self.pk} ({self.state})"
