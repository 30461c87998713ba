"""Fleets, who belongs to them, and the one rule of who may see or change one."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Exists, Q
from django.urls import reverse

from connections.countries import Region
from connections.models.entries import VinStatus
from connections.roles import SUPPORT_GROUP


class FleetQuerySet(models.QuerySet["Fleet"]):
    def visible_to(self, user) -> FleetQuerySet:
        """The one place that decides which fleets a user may see (the live
        table's poll composes it into its statement once per user,
        `uploads.polled`)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        # One query, no join to deduplicate: support staff see every fleet,
        # managers the fleets they are members of.
        support = Group.objects.filter(name=SUPPORT_GROUP, user=user)
        member_of = Membership.objects.filter(user=user).values("fleet_id")
        return self.filter(Q(Exists(support)) | Q(pk__in=member_of))

    def managed_by(self, user) -> FleetQuerySet:
        """The one place that decides which fleets a user may change: uploads,
        fleet consent links, connected accounts. Members and admins only;
        support staff read every fleet but change them only through the
        troubleshooting actions (retry, per-VIN consent links, escalate, dismiss)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(pk__in=Membership.objects.filter(user=user).values("fleet_id"))

    def managed_ids(self, user) -> frozenset[int]:
        """`managed_by(user)` as ids, read once per request's user object (pages
        ask it for every button they may offer)."""
        cached = getattr(user, "_managed_fleet_ids", None)
        if cached is None:
            cached = frozenset(self.managed_by(user).values_list("pk", flat=True))
            user._managed_fleet_ids = cached
        return cached


def user_is_support(user) -> bool:
    """Support staff and admins read every fleet and use troubleshooting tools."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_support", None)
    if cached is None:
        cached = user.groups.filter(name=SUPPORT_GROUP).exists()
        user._is_support = cached
    return cached


class Fleet(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    default_country_code = models.CharField(
        max_length=2, default="GB", help_text="ISO 3166-1 alpha-2, used when a row has none."
    )
    default_region = models.CharField(max_length=20, choices=Region.choices, default=Region.EUROPE)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FleetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("fleet_detail", args=[self.slug])

    def headline_counts(self) -> dict[str, int]:
        entries = self.entries.filter(superseded=False)
        counts = entries.aggregate(
            connected=models.Count("pk", filter=Q(status=VinStatus.CONNECTED)),
            in_progress=models.Count("pk", filter=Q(status__in=VinStatus.in_progress())),
            needs_action=models.Count(
                "pk", filter=Q(status__in=VinStatus.needs_action(), dismissed=False)
            ),
        )
        counts["active_links"] = self.active_consent_link_count()
        return counts

    def live_version(self) -> str:
        """What the fleet page's poll compares: changes whenever a headline count may.

        Every change to a VIN entry bumps its upload's version (and uploads are only
        added or removed), so the uploads' count and version sum move with the VIN
        counts; active links expire with time, so their count is read as it is. Two
        small queries instead of counting every VIN of the fleet.
        """
        uploads = self.uploads.aggregate(n=models.Count("pk"), v=models.Sum("version"))
        return f"{uploads['n']}.{uploads['v'] or 0}.{self.active_consent_link_count()}"

    def active_consent_link_count(self) -> int:
        return self.consent_links.active().count()


class Membership(models.Model):
    class Role(models.TextChoices):
        MANAGER = "manager", "Fleet manager"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MANAGER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "fleet"], name="membership_unique_user_fleet")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.fleet} ({self.get_role_display()})"
