"""Consent Flow links and the accounts vehicle owners connect through them.

A `ConsentLink` is the portal's record of one `POST /v1/accounts:connect`: the
options sent, Volteras' `authenticationUrl`, and two unguessable tokens: one
behind the tracked short link (`/l/<token>`), which is shared (QR, CSV, e-mail),
and one behind the return URL (`/consent/return/<return_token>`), which only
Volteras and the owner's browser see, so holding the short link is not enough
to forge the owner's answer. Every status change goes through
`ConsentLink.move()`, which writes a `ConsentLinkEvent` in the same transaction.

"Expired" is decided by the clock, not by a writer: a link still active or
opened whose `expires_at` has passed is expired, whether or not anyone has
looked at it since (`ConsentLink.state`, `ConsentLinkQuerySet.expired()`).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from connections.models.uploads import Upload
from connections.models.vehicles import Vehicle

TOKEN_BYTES = 16  # 128 bits: not guessable, short enough for a printed link.


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class LinkStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    OPENED = "opened", "Opened"
    COMPLETED = "completed", "Completed"
    DECLINED = "declined", "Declined or failed"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    REISSUED = "reissued", "Reissued"

    @classmethod
    def open(cls) -> set[str]:
        """Statuses in which the owner can still use the link (unless time ran out)."""
        return {cls.ACTIVE, cls.OPENED}


class ConsentLinkQuerySet(models.QuerySet["ConsentLink"]):
    def active(self) -> ConsentLinkQuerySet:
        """Links an owner can still use now (the dashboard's "active consent links")."""
        return self.filter(status__in=LinkStatus.open(), expires_at__gt=timezone.now())

    def expired(self) -> ConsentLinkQuerySet:
        return self.filter(
            Q(status=LinkStatus.EXPIRED)
            | Q(status__in=LinkStatus.open(), expires_at__lte=timezone.now())
        )

    def expiring_within(self, delta: timedelta) -> ConsentLinkQuerySet:
        return self.active().filter(expires_at__lte=timezone.now() + delta)

    def in_state(self, state: str) -> ConsentLinkQuerySet:
        """Filter by the status a person sees (`ConsentLink.state`)."""
        if state == LinkStatus.EXPIRED:
            return self.expired()
        if state in LinkStatus.open():
            return self.active().filter(status=state)
        return self.filter(status=state)


class ConnectedAccount(models.Model):
    """An owner's manufacturer account connected to Volteras through one of a
    fleet's consent links (or found by `GET /v1/accounts` for a known id)."""

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"

    fleet = models.ForeignKey(
        "connections.Fleet", on_delete=models.CASCADE, related_name="connected_accounts"
    )
    volteras_id = models.CharField(max_length=64)
    username = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CONNECTED)
    connected_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    disconnected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-connected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["fleet", "volteras_id"], name="connected_account_unique_per_fleet"
            )
        ]

    def __str__(self) -> str:
        return self.username or self.volteras_id

    @property
    def is_connected(self) -> bool:
        return self.status == self.Status.CONNECTED

    def vehicles(self) -> models.QuerySet:
        return Vehicle.objects.filter(account_id=self.volteras_id)

    def mark_disconnected(self, *, by=None) -> bool:
        """Record that Volteras no longer holds this account; False if already recorded."""
        if not self.is_connected:
            return False
        self.status = self.Status.DISCONNECTED
        self.disconnected_at = timezone.now()
        self.disconnected_by = by
        self.save(update_fields=["status", "disconnected_at", "disconnected_by"])
        return True


class ConsentLink(models.Model):
    fleet = models.ForeignKey(
        "connections.Fleet", on_delete=models.CASCADE, related_name="consent_links"
    )
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    # Its own token: the short-link token is shared widely and must not let
    # anyone answer for the owner. Links made before it existed keep their
    # short-link token here, as Volteras was given that return URL.
    return_token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    status = models.CharField(max_length=20, choices=LinkStatus.choices, default=LinkStatus.ACTIVE)
    label = models.CharField(max_length=120, blank=True)
    recipient_note = models.TextField(blank=True)
    # The language of the portal's own pages and e-mails for the owner ("" = the
    # consent flow's locale, else the owner's browser); may be one Volteras lacks.
    language = models.CharField(max_length=10, blank=True)
    # Where the portal last e-mailed the link, and when first (reminders go there).
    recipient_email = models.EmailField(max_length=254, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # The `POST /v1/accounts:connect` body as sent (camelCase keys, returnUrl included),
    # kept so a reissue asks for exactly the same consent.
    options = models.JSONField(default=dict, blank=True)
    authentication_url = models.URLField(max_length=2000)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    opens = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    # What the return URL was called with, verbatim (Volteras' `result` and `accountId`).
    result = models.CharField(max_length=40, blank=True)
    returned_account_id = models.CharField(max_length=64, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    # When the sweep last asked Volteras about a claimed account it could not
    # confirm at the time (bounds how often it asks).
    return_checked_at = models.DateTimeField(null=True, blank=True)
    account = models.ForeignKey(
        ConnectedAccount,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consent_links",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    replaced_by = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replaces"
    )
    # A single-vehicle link sent for a VIN that came back CONNECTION_REQUIRED.
    vin_entry = models.ForeignKey(
        "connections.VinEntry",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consent_links",
    )
    vin = models.CharField(max_length=64, blank=True, db_index=True)
    # When anything the link's pages show last changed (`move`, `note`,
    # `count_open`): what the consent link list's and page's polls compare.
    changed_at = models.DateTimeField(default=timezone.now)

    objects = ConsentLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["fleet", "status", "expires_at"]),
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["fleet", "changed_at"], name="consentlink_fleet_changed"),
        ]

    def __str__(self) -> str:
        return self.label or self.vin or f"Consent link {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("consent_link_detail", args=[self.fleet.slug, self.pk])

    @property
    def short_url(self) -> str:
        return settings.PORTAL_BASE_URL.rstrip("/") + reverse("consent_open", args=[self.token])

    @property
    def return_url(self) -> str:
        path = reverse("consent_return", args=[self.return_token])
        return settings.PORTAL_BASE_URL.rstrip("/") + path

    @property
    def is_expired(self) -> bool:
        return self.status == LinkStatus.EXPIRED or (
            self.status in LinkStatus.open() and self.expires_at <= timezone.now()
        )

    @property
    def is_usable(self) -> bool:
        return self.status in LinkStatus.open() and not self.is_expired

    @property
    def state(self) -> str:
        """The status a person sees: a stored open status turns expired by the clock."""
        return LinkStatus.EXPIRED if self.is_expired else self.status

    def get_state_display(self) -> str:
        return LinkStatus(self.state).label

    @property
    def state_badge(self) -> str:
        """The portal.css badge class for the state."""
        return {
            LinkStatus.ACTIVE: "progress",
            LinkStatus.OPENED: "progress",
            LinkStatus.COMPLETED: "ok",
            LinkStatus.DECLINED: "bad",
            LinkStatus.EXPIRED: "warn",
            LinkStatus.REVOKED: "off",
            LinkStatus.REISSUED: "off",
        }[self.state]

    def final_link(self) -> ConsentLink:
        """The link a reissued link forwards to (following a chain of reissues)."""
        link, seen = self, {self.pk}
        while link.status == LinkStatus.REISSUED and link.replaced_by_id not in seen:
            seen.add(link.replaced_by_id)
            link = link.replaced_by
        return link

    def move(self, status: str, detail: str, *, actor=None, **fields: Any) -> bool:
        """The one way a link's status changes; records an event. Returns whether
        it moved: the update is conditional on the status read, so two racing
        requests (a double-clicked revoke, a return hit twice) move it once."""
        previous = self.status
        now = timezone.now()
        with transaction.atomic():
            moved = ConsentLink.objects.filter(pk=self.pk, status=previous).update(
                status=status, changed_at=now, **fields
            )
            if not moved:
                self.refresh_from_db()
                return False
            self.status = status
            for name, value in fields.items():
                setattr(self, name, value)
            ConsentLinkEvent.objects.create(
                link=self,
                at=now,
                status_from=previous,
                status_to=status,
                detail=detail,
                actor=actor,
            )
            if self.vin_entry_id:
                Upload.bump_entry_upload(self.vin_entry_id)
        return True

    def note(self, detail: str, *, actor=None, **data: Any) -> ConsentLinkEvent:
        """An event that does not change the status (what it notes may have
        changed fields of the link: the pages that show it look again)."""
        ConsentLink.objects.filter(pk=self.pk).update(changed_at=timezone.now())
        return ConsentLinkEvent.objects.create(
            link=self,
            status_from=self.status,
            status_to=self.status,
            detail=detail,
            actor=actor,
            data=data,
        )

    def count_open(self) -> None:
        """Count one visit of the short link; the first one moves it to opened."""
        now = timezone.now()
        ConsentLink.objects.filter(pk=self.pk).update(
            opens=F("opens") + 1,
            last_opened_at=now,
            changed_at=now,
            first_opened_at=Coalesce(F("first_opened_at"), Value(now)),
        )
        self.refresh_from_db(fields=["opens", "first_opened_at", "last_opened_at"])
        if self.status == LinkStatus.ACTIVE:
            self.move(LinkStatus.OPENED, "The owner opened the link.")


class ConsentLinkEvent(models.Model):
    link = models.ForeignKey(ConsentLink, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    status_from = models.CharField(max_length=20, blank=True)
    status_to = models.CharField(max_length=20, blank=True)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.link} {self.status_from}→{self.status_to}"
