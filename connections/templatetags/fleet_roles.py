"""`{% if fleet|managed_by:request.user %}`: offer a change only to those who
may make it (support staff read every fleet but change none; the views refuse
them with a 403 anyway, so this only spares them a button that cannot work)."""

from __future__ import annotations

from django import template

from connections.models import Fleet

register = template.Library()


@register.filter
def managed_by(fleet: Fleet, user) -> bool:
    return fleet.pk in Fleet.objects.managed_ids(user)
