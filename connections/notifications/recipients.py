"""Who is told what: a fleet's managers, or the support staff, who have an
e-mail address and want the kind (`NotificationChoice.wanted`)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from connections.models import SUPPORT_GROUP, Fleet, NotificationChoice


def _with_email() -> QuerySet[User]:
    return User.objects.filter(is_active=True).exclude(email="")


def managers(fleet: Fleet, kind: str) -> list[User]:
    users = _with_email().filter(memberships__fleet=fleet).distinct()
    return [user for user in users if NotificationChoice.wanted(user, kind)]


def support_staff(kind: str) -> list[User]:
    users = _with_email().filter(Q(groups__name=SUPPORT_GROUP) | Q(is_superuser=True)).distinct()
    return [user for user in users if NotificationChoice.wanted(user, kind)]


def managed_fleets(user: User) -> QuerySet[Fleet]:
    return Fleet.objects.managed_by(user)


def fleet_members(kind: str) -> list[User]:
    users = _with_email().filter(memberships__isnull=False).distinct()
    return [user for user in users if NotificationChoice.wanted(user, kind)]
