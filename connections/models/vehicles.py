"""Vehicles as Volteras last described them, and reconciliation runs."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
