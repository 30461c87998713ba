"""Webhook deliveries from Volteras (through Svix) and refused deliveries.

A verified delivery is stored as a `WebhookEvent` row before it is answered:
the row, not the task queue, is what guarantees it is processed. Processing
claims the row with a lease, so a worker killed mid-step only delays it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    connections,
    models,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from connections.models.store_once import INSERT_PLANS, PER_CALL, execute_checked, sql_literal

# How long a claimed event belongs to its worker before another may take it.
EVENT_LEASE = timedelta(seconds=settings.WORKER_LEASE_SECONDS)


# Attempts at one event in all: transient failures (network, 5xx, 429) are
# retried up to this, and an event whose worker keeps dying mid-processing
# (its lease expires each time) is marked failed once it reaches it.
MAX_EVENT_ATTEMPTS = 8


# What the API's answer (`api_status`) implies a processed untyped event announced.
INFERRED_TYPE = {
    "CONNECTED": "device.connected",
    "DISCONNECTED": "device.disconnected",
    "NOT FOUND (404)": "device.disconnected",
}


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def of_kind(self, kind: str) -> WebhookEventQuerySet:
        """Events of this type, counting untyped ones whose vehicle's state implies it."""
        statuses = [status for status, implied in INFERRED_TYPE.items() if implied == kind]
        untyped = Q(event_type="", state=WebhookEvent.State.PROCESSED, api_status__in=statuses)
        return (
            self.filter(Q(event_type=kind) | untyped) if statuses else self.filter(event_type=kind)
        )

    def due(self, now=None) -> WebhookEventQuerySet:
        """Events a worker may claim now: waiting and due, or abandoned mid-processing."""
        now = now or timezone.now()
        return self.filter(
            Q(state=WebhookEvent.State.RECEIVED, next_attempt_at__lte=now)
            | Q(state=WebhookEvent.State.PROCESSING, lease_until__lt=now)
        )


class WebhookEvent(models.Model):
    class State(models.TextChoices):
        RECEIVED = "received", "Waiting to be processed"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Not acted on"

    svix_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=100, blank=True, db_index=True)
    vehicle_id = models.CharField(max_length=64, blank=True, db_index=True)
    body = models.TextField()
    # The Svix headers and where it came from; the signature itself is not kept.
    headers = models.JSONField(default=dict, blank=True)
    source_address = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    state = models.CharField(max_length=12, choices=State.choices, default=State.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)

    # What processing learnt from `GET /v1/vehicles/{id}`.
    vin = models.CharField(max_length=64, blank=True, db_index=True)
    api_status = models.CharField(max_length=40, blank=True)
    entries_matched = models.PositiveIntegerField(default=0)
    entries_changed = models.PositiveIntegerField(default=0)
    # The vehicle matched nothing any fleet knows (and so is on the unmatched list).
    unmatched = models.BooleanField(default=False)

    duplicates = models.PositiveIntegerField(default=0)
    last_duplicate_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-pk"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["vehicle_id", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.svix_id}"

    def get_absolute_url(self) -> str:
        return reverse("webhook_event", args=[self.pk])

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def pretty_body(self) -> str:
        payload = self.payload
        if payload is None:
            return self.body
        return json.dumps(payload, indent=2, sort_keys=True)

    @property
    def kind(self) -> str:
        """The event type, or for an untyped body (the contract's) the one
        the vehicle's state read from the API implies; "" until processed."""
        if self.event_type or self.state != self.State.PROCESSED:
            return self.event_type
        return INFERRED_TYPE.get(self.api_status, "")

    @property
    def kind_is_inferred(self) -> bool:
        return not self.event_type and bool(self.kind)

    @property
    def is_unmatched(self) -> bool:
        return self.state == self.State.PROCESSED and self.unmatched

    @classmethod
    def store_once(cls, **fields: Any) -> int | None:
        """Insert the event, or count a redelivery of a stored svix-id; the new
        row's id, or None for a redelivery.

        One statement either way (`INSERT ... ON CONFLICT DO UPDATE ...
        RETURNING`, spoken by PostgreSQL and SQLite 3.35+), committed on its
        own in autocommit: no transaction, savepoint or second query on the
        receiver's hot path. The SQL is built once per process, with the
        constant defaults of the fields not given (0, '', NULL, false) written
        in: only the given values are prepared and sent per call.
        """
        # The wrapper itself, looked up once: each use of the `connection`
        # proxy is a lookup of its own.
        db = connections[DEFAULT_DB_ALIAS]
        sql, plan = cls._insert_plan(db, frozenset(fields))
        values = []
        for field, default in plan:
            if field.attname in fields:
                values.append(field.get_db_prep_save(fields[field.attname], db))
            elif default is PER_CALL:
                values.append(field.get_db_prep_save(field.get_default(), db))
            else:
                values.append(default)
        event_id, duplicates = execute_checked(db, sql, values)
        # Only a row this statement inserted can still have no duplicates.
        return event_id if duplicates == 0 else None

    @classmethod
    def _insert_plan(
        cls, db: BaseDatabaseWrapper, given: frozenset[str]
    ) -> tuple[str, list[tuple[models.Field, Any]]]:
        """The statement, and per parameter its field and the prepared default
        (`PER_CALL` for a callable one, e.g. now)."""
        key = (db.vendor, given)
        if key not in INSERT_PLANS:
            unknown = given - {field.attname for field in cls._meta.concrete_fields}
            if unknown:
                raise TypeError(f"store_once() got unknown fields: {sorted(unknown)}")
            quote = db.ops.quote_name
            plan, names, slots = [], [], []
            for field in cls._meta.concrete_fields:
                if field.primary_key:
                    continue
                names.append(quote(field.column))
                default = (
                    PER_CALL
                    if callable(field.default)
                    else field.get_db_prep_save(field.get_default(), db)
                )
                literal = sql_literal(default)
                if field.attname in given or literal is None:
                    plan.append((field, default))
                    slots.append("%s")
                else:
                    slots.append(literal)
            table = quote(cls._meta.db_table)
            duplicates, last = quote("duplicates"), quote("last_duplicate_at")
            received = quote("received_at")
            # Only quoted identifiers from the model and the literals of
            # sql_literal are formatted in; everything else is a parameter.
            sql = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(slots)}) "  # noqa: S608
                f"ON CONFLICT ({quote('svix_id')}) DO UPDATE SET "
                f"{duplicates} = {table}.{duplicates} + 1, {last} = excluded.{received} "
                f"RETURNING {quote(cls._meta.pk.column)}, {duplicates}"
            )
            INSERT_PLANS[key] = (sql, plan)
        return INSERT_PLANS[key]

    @classmethod
    def claim(cls, event_id: int) -> WebhookEvent | None:
        """Take the event for this worker, or None when it is not due or is
        someone else's. One conditional UPDATE, so two workers cannot both win."""
        now = timezone.now()
        abandoned = cls.objects.due(now).filter(
            pk=event_id, state=cls.State.PROCESSING, attempts__gte=MAX_EVENT_ATTEMPTS
        )
        # Every attempt at it so far stopped its worker (killed, out of memory,
        # a hang past the lease): processing it again would only do that again.
        if abandoned.update(
            state=cls.State.FAILED,
            lease_until=None,
            lease_owner="",
            processed_at=now,
            error=(
                f"Gave up after {MAX_EVENT_ATTEMPTS} attempts: each time, the worker "
                "processing it stopped before finishing (killed or crashed). "
                "Process it again once the cause is fixed."
            ),
        ):
            return None
        owner = uuid.uuid4().hex
        won = (
            cls.objects.due(now)
            .filter(pk=event_id)
            .update(
                state=cls.State.PROCESSING,
                lease_until=now + EVENT_LEASE,
                lease_owner=owner,
                attempts=F("attempts") + 1,
            )
        )
        if not won:
            return None
        return cls.objects.get(pk=event_id)

    def finish(self, state: str, *, result: str = "", error: str = "", **fields: Any) -> bool:
        """Record the outcome if this worker still holds the lease; False if it lost it."""
        updates = {
            "state": state,
            "result": result,
            "error": error,
            "lease_until": None,
            "lease_owner": "",
            **fields,
        }
        if state in {self.State.PROCESSED, self.State.FAILED, self.State.IGNORED}:
            updates["processed_at"] = timezone.now()
        done = WebhookEvent.objects.filter(
            pk=self.pk, state=self.State.PROCESSING, lease_owner=self.lease_owner
        ).update(**updates)
        if done:
            for name, value in updates.items():
                setattr(self, name, value)
        return bool(done)

    def process_again(self) -> None:
        """Support's "process again": back to waiting, due now, with a fresh count."""
        WebhookEvent.objects.filter(pk=self.pk).update(
            state=self.State.RECEIVED,
            next_attempt_at=timezone.now(),
            attempts=0,
            lease_until=None,
            lease_owner="",
            error="",
        )
        self.refresh_from_db()


# Refusals are counted, not logged one by one: anyone can POST junk to the
# webhook URL. One row per (peer address, reason, hour) with a counter, and at
# most this many peers an hour get their own rows; the rest share one.
REFUSED_WINDOW_SECONDS = 3600
REFUSED_SOURCES_PER_WINDOW = 50
OTHER_SOURCES = "(other sources)"


class RefusedDelivery(models.Model):
    """POSTs to the webhook URL that were not accepted, counted per peer
    address, reason and hour. Their bodies are never trusted or kept: only what
    support needs to spot a misconfiguration or an attack, from the latest one."""

    class Reason(models.TextChoices):
        NOT_CONFIGURED = "not_configured", "Webhook secret not configured"
        MISSING_HEADERS = "missing_headers", "Svix headers missing"
        BAD_SIGNATURE = "bad_signature", "Signature does not match"
        STALE = "stale", "Timestamp outside tolerance"
        TOO_LARGE = "too_large", "Body too large"
        NOT_JSON = "not_json", "Body is not a JSON object"

    # The latest refusal counted here (what retention goes by).
    at = models.DateTimeField(default=timezone.now, db_index=True)
    first_at = models.DateTimeField(null=True, blank=True)
    # The start of the hour counted (null on rows from before counting).
    window = models.DateTimeField(null=True, blank=True)
    count = models.PositiveIntegerField(default=1)
    # The peer address (not X-Forwarded-For, which the sender can vary at will).
    source_address = models.CharField(max_length=64, blank=True)
    # The first X-Forwarded-For hop the latest one claimed: unverified.
    forwarded_for = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=255, blank=True)
    # As claimed by the sender: unverified, shown only to help match a Svix log.
    claimed_svix_id = models.CharField(max_length=255, blank=True)
    body_size = models.PositiveIntegerField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "refused deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["source_address", "reason", "window"], name="refused_once_per_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} from {self.source_address or '?'} ({self.count}x)"

    @classmethod
    def count_one(cls, source_address: str, reason: str, **latest: Any) -> None:
        """Count one refusal in its (source, reason, hour) row, keeping the
        latest one's details (`detail`, `claimed_svix_id`, `body_size`,
        `user_agent`, `forwarded_for`): one UPDATE when the row exists."""
        now = timezone.now()
        window = datetime.fromtimestamp(
            now.timestamp() // REFUSED_WINDOW_SECONDS * REFUSED_WINDOW_SECONDS, tz=UTC
        )
        if cls._add(source_address, reason, window, now, latest):
            return
        crowded = (
            cls.objects.filter(window=window).exclude(source_address=OTHER_SOURCES).count()
            >= REFUSED_SOURCES_PER_WINDOW
        )
        if crowded:
            source_address = OTHER_SOURCES
            if cls._add(source_address, reason, window, now, latest):
                return
        try:
            with transaction.atomic():
                cls.objects.create(
                    source_address=source_address,
                    reason=reason,
                    window=window,
                    first_at=now,
                    at=now,
                    **latest,
                )
        except IntegrityError:  # another process created it meanwhile
            cls._add(source_address, reason, window, now, latest)

    @classmethod
    def _add(cls, source_address: str, reason: str, window, now, latest: dict) -> bool:
        return bool(
            cls.objects.filter(source_address=source_address, reason=reason, window=window).update(
                count=F("count") + 1, at=now, **latest
            )
        )
