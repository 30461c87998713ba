"""Webhook deliveries from Volteras (through Svix), refused deliveries, vehicles
a webhook named that match no VIN entry, and reconciliation runs.

A verified delivery is stored as a `WebhookEvent` row before it is answered:
the row, not the task queue, is what guarantees it is processed. Processing
claims the row with a lease, so a worker killed mid-step only delays it.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    connections,
    models,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

# How long a claimed event belongs to its worker before another may take it.
EVENT_LEASE = timedelta(minutes=2)
# Attempts at one event in all: transient failures (network, 5xx, 429) are
# retried up to this, and an event whose worker keeps dying mid-processing
# (its lease expires each time) is marked failed once it reaches it.
MAX_EVENT_ATTEMPTS = 8

# WebhookEvent.store_once's statement and its parameters, per database vendor
# and set of fields given.
_INSERT_PLANS: dict[tuple[str, frozenset[str]], tuple[str, list[tuple[models.Field, Any]]]] = {}
_PER_CALL = object()


def _execute_checked(db: BaseDatabaseWrapper, sql: str, values: list[Any]) -> tuple[Any, ...]:
    """Run one statement and return its row, the statement serving as the
    connection's health check.

    With CONN_HEALTH_CHECKS, Django would first send `SELECT 1` on a
    connection kept from an earlier request: a second round trip on every
    delivery. Here the statement goes first; if it fails on such a
    connection (the database restarted, say), the connection is replaced and
    the statement sent once more, as the failed check would have. Should the
    first one have committed before its answer was lost, the second counts a
    redelivery of it: the event is stored either way.
    """
    check_skipped = (
        db.connection is not None
        and db.health_check_enabled
        and not db.health_check_done
        and not db.in_atomic_block
    )
    if check_skipped:
        db.health_check_done = True
    try:
        with db.cursor() as cursor:
            cursor.execute(sql, values)
            return cursor.fetchone()
    except (OperationalError, InterfaceError):
        if not check_skipped:
            raise
        db.close()
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()


def _sql_literal(value: Any) -> str | None:
    """SQL for a constant default both PostgreSQL and SQLite read alike, or
    None when it must stay a parameter."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if value == "":
        return "''"
    return None


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
        from django.urls import reverse

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
            elif default is _PER_CALL:
                values.append(field.get_db_prep_save(field.get_default(), db))
            else:
                values.append(default)
        event_id, duplicates = _execute_checked(db, sql, values)
        # Only a row this statement inserted can still have no duplicates.
        return event_id if duplicates == 0 else None

    @classmethod
    def _insert_plan(
        cls, db: BaseDatabaseWrapper, given: frozenset[str]
    ) -> tuple[str, list[tuple[models.Field, Any]]]:
        """The statement, and per parameter its field and the prepared default
        (`_PER_CALL` for a callable one, e.g. now)."""
        key = (db.vendor, given)
        if key not in _INSERT_PLANS:
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
                    _PER_CALL
                    if callable(field.default)
                    else field.get_db_prep_save(field.get_default(), db)
                )
                literal = _sql_literal(default)
                if field.attname in given or literal is None:
                    plan.append((field, default))
                    slots.append("%s")
                else:
                    slots.append(literal)
            table = quote(cls._meta.db_table)
            duplicates, last = quote("duplicates"), quote("last_duplicate_at")
            received = quote("received_at")
            # Only quoted identifiers from the model and the literals of
            # _sql_literal are formatted in; everything else is a parameter.
            sql = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(slots)}) "  # noqa: S608
                f"ON CONFLICT ({quote('svix_id')}) DO UPDATE SET "
                f"{duplicates} = {table}.{duplicates} + 1, {last} = excluded.{received} "
                f"RETURNING {quote(cls._meta.pk.column)}, {duplicates}"
            )
            _INSERT_PLANS[key] = (sql, plan)
        return _INSERT_PLANS[key]

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

    def count_duplicate(self) -> None:
        WebhookEvent.objects.filter(pk=self.pk).update(
            duplicates=F("duplicates") + 1, last_duplicate_at=timezone.now()
        )


class RefusedDelivery(models.Model):
    """A POST to the webhook URL that was not accepted. Its body is never
    trusted or kept: only what support needs to spot a misconfiguration or an
    attack."""

    class Reason(models.TextChoices):
        NOT_CONFIGURED = "not_configured", "Webhook secret not configured"
        MISSING_HEADERS = "missing_headers", "Svix headers missing"
        BAD_SIGNATURE = "bad_signature", "Signature does not match"
        STALE = "stale", "Timestamp outside tolerance"
        TOO_LARGE = "too_large", "Body too large"
        NOT_JSON = "not_json", "Body is not a JSON object"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    source_address = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=255, blank=True)
    # As claimed by the sender: unverified, shown only to help match a Svix log.
    claimed_svix_id = models.CharField(max_length=255, blank=True)
    body_size = models.PositiveIntegerField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "refused deliveries"

    def __str__(self) -> str:
        return f"{self.get_reason_display()} from {self.source_address or '?'}"


class UnmatchedVehicleQuerySet(models.QuerySet["UnmatchedVehicle"]):
    def now_known(self) -> UnmatchedVehicleQuerySet:
        """Rows that match something a fleet knows by now: a VIN entry of the
        vehicle id or VIN, or the consent account the vehicle was shared from."""
        from .models import ConnectedAccount, Vehicle, VinEntry

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
