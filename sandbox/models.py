"""The sandbox's own state: what a Volteras organisation would hold.

Time-based state (a group's progress, a VIN moving through PROCESSING and
PENDING) is not stored as a status but derived from timestamps fixed when the
work was submitted, so a read at any moment answers consistently without a
background writer. Only things that must happen unprompted (webhooks) are
driven by the clock thread.
"""

import secrets
import uuid
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone


def new_id() -> str:
    return str(uuid.uuid4())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class ApiToken(models.Model):
    access_token = models.CharField(max_length=64, unique=True, default=new_secret)
    refresh_token = models.CharField(max_length=64, unique=True, default=new_secret)
    client_id = models.CharField(max_length=200)
    expires_at = models.DateTimeField()
    refresh_used = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"token for {self.client_id}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class Account(models.Model):
    id = models.CharField(max_length=36, primary_key=True, default=new_id)
    username = models.TextField()
    make = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.make} account {self.username}"


class Vehicle(models.Model):
    """A VIN the organisation has added, whatever became of it.

    `outcome` is what the connection attempt ends in; the status seen at a
    given moment comes from `status_at`, which also honours `visible_at`
    (still being processed), `connect_at` (a pending vehicle connects) and
    `disconnected_at`.
    """

    CONNECTED = "CONNECTED"
    PENDING = "PENDING"
    CONNECTION_REQUIRED = "CONNECTION_REQUIRED"
    INCOMPATIBLE = "INCOMPATIBLE"
    PROCESSING = "PROCESSING"
    DISCONNECTED = "DISCONNECTED"

    pk_seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=36, unique=True, default=new_id)
    vin = models.CharField(max_length=17, db_index=True)
    make = models.CharField(max_length=40)
    # Free text in the contract (no maxLength): stored as sent, whatever its length.
    model = models.TextField(blank=True)
    model_year = models.IntegerField(null=True, blank=True)
    registration_plate = models.TextField(blank=True)
    registration_date = models.DateField(null=True, blank=True)
    country_code = models.TextField(blank=True)
    tags = models.JSONField(default=list)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=24)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    action_category = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    visible_at = models.DateTimeField(default=timezone.now)
    connect_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk_seq"]

    def __str__(self) -> str:
        return f"{self.vin} ({self.outcome})"

    def status_at(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if self.disconnected_at and now >= self.disconnected_at:
            return self.DISCONNECTED
        if now < self.visible_at:
            return self.PROCESSING
        if self.outcome == self.CONNECTED or (self.connect_at and now >= self.connect_at):
            return self.CONNECTED
        return self.outcome

    def is_active(self) -> bool:
        """Counts against the vehicle limit and blocks a second add of its VIN."""
        return self.disconnected_at is None and self.outcome != self.INCOMPATIBLE


class ConnectGroup(models.Model):
    """One `POST /v1/vehicles/connect` call; `speed` is frozen at submission."""

    id = models.CharField(max_length=36, primary_key=True, default=new_id)
    created_at = models.DateTimeField(default=timezone.now)
    speed = models.FloatField()
    # Ends FAILED instead of COMPLETED (a `FA1LGRP1...` VIN was in it).
    failed = models.BooleanField(default=False)

    # Seconds (times speed) after submission.
    PROCESSING_AFTER = 0.5
    VIN_PENDING_AFTER = 1.0
    COMPLETED_AFTER = 2.0

    def __str__(self) -> str:
        return f"connect group {self.id}"

    def at(self, seconds: float) -> datetime:
        return self.created_at + timedelta(seconds=seconds * self.speed)

    def status_at(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if now >= self.at(self.COMPLETED_AFTER):
            return "FAILED" if self.failed else "COMPLETED"
        if now >= self.at(self.PROCESSING_AFTER):
            return "PROCESSING"
        return "CREATED"


class VehicleInput(models.Model):
    """One VIN of a connect group and the outcome decided for it at submission."""

    pk_seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=36, unique=True, default=new_id)
    group = models.ForeignKey(ConnectGroup, on_delete=models.CASCADE, related_name="inputs")
    # As submitted, valid or not (any string, in the contract).
    vin = models.TextField()
    make = models.CharField(max_length=40)
    country_code = models.TextField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    outcome = models.CharField(max_length=24)
    errors = models.JSONField(default=list)
    message = models.TextField()
    can_retry = models.BooleanField(null=True)
    was_already_connected = models.BooleanField(default=False)
    vehicle = models.ForeignKey(Vehicle, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["pk_seq"]

    def __str__(self) -> str:
        return f"{self.vin} in {self.group_id}"


class EligibilityCheck(models.Model):
    id = models.CharField(max_length=36, primary_key=True, default=new_id)
    created_at = models.DateTimeField(default=timezone.now)
    speed = models.FloatField()
    results = models.JSONField(default=list)

    COMPLETED_AFTER = 1.0

    def __str__(self) -> str:
        return f"eligibility check {self.id}"

    def is_complete(self, now: datetime | None = None) -> bool:
        done = self.created_at + timedelta(seconds=self.COMPLETED_AFTER * self.speed)
        return (now or timezone.now()) >= done


class ConsentLink(models.Model):
    token = models.CharField(max_length=64, primary_key=True, default=new_secret)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=20, blank=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return f"consent link {self.token[:8]}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class WebhookDelivery(models.Model):
    """One Svix message and its delivery attempts (the log page shows these)."""

    SCHEDULED = "scheduled"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"

    pk_seq = models.BigAutoField(primary_key=True)
    msg_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=40)
    vehicle_id = models.CharField(max_length=36)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(db_index=True, null=True)
    state = models.CharField(max_length=12, default=SCHEDULED)
    attempts = models.JSONField(default=list)

    class Meta:
        ordering = ["pk_seq"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.msg_id}"
