"""What the fleet list's poll compares, read together with the check that the
user may see the fleet: one hand-written statement for the request every open
list repeats.

`Fleet.objects.visible_to` composed by the ORM, then the version's two
aggregates, cost the ORM several times what they cost the database (about
6 ms against 0.5 on the bench's machine). A test holds this statement to
`visible_to`'s answer for every role.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.http import Http404, HttpRequest
from django.utils import timezone

from connections.fleet.rows import digest
from connections.models import SUPPORT_GROUP, Fleet, Upload

FLEET_FIELDS = ["id", "name", "slug"]
# Every change to a VIN entry bumps its upload's version (the fleet page's tiles
# rely on the same); the fleet's account vehicles (`listing.account_vehicles`)
# count by number, disconnects and last sighting. Each group of figures is one
# subquery written as "a.b.c" (fewer subqueries: less to plan on every poll).
VERSION_SQL = (
    "SELECT f.id, f.name, f.slug,"
    " (SELECT COUNT(*) || '.' || COALESCE(SUM(CASE WHEN u.state = %s THEN 1 ELSE 0 END), 0)"
    " || '.' || COALESCE(SUM(u.version), 0) FROM connections_upload u WHERE u.fleet_id = f.id),"
    " (SELECT COUNT(*) || '.' || COALESCE(SUM(CASE WHEN v.disconnected THEN 1 ELSE 0 END), 0)"
    " || '.' || COALESCE(CAST(MAX(v.last_seen_at) AS text), '') FROM connections_vehicle v"
    " WHERE v.account_id IN"
    " (SELECT a.volteras_id FROM connections_connectedaccount a WHERE a.fleet_id = f.id)),"
    " EXISTS (SELECT 1 FROM connections_membership m WHERE m.fleet_id = f.id AND m.user_id = %s),"
    " EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id"
    " WHERE ug.user_id = %s AND g.name = %s)"
    " FROM connections_fleet f WHERE f.slug = %s"
)


class ListVersion(NamedTuple):
    """The parts of the list's version; `str()` is the digest the browser holds.
    The minute is a part because each row shows its age in words."""

    uploads: int
    submitted: int
    upload_versions: int
    vehicles: int
    disconnected: int
    last_seen: str
    minute: int

    def __str__(self) -> str:
        return digest(*self)


class FleetList(NamedTuple):
    """The fleet, its list's version, and what the user may do there."""

    fleet: Fleet
    version: ListVersion
    # `Fleet.objects.managed_by` (members and superusers) and `user_is_support`.
    can_manage: bool
    is_support: bool


def fleet_and_version(request: HttpRequest, slug: str, now: datetime | None = None) -> FleetList:
    """The fleet `slug` if the user may see it (else 404, as `visible_fleet`),
    with the version of its vehicle list and the user's roles, in one statement."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        raise Http404("No fleet here.")
    params = [Upload.State.SUBMITTED, user.pk, user.pk, SUPPORT_GROUP, slug]
    with connection.cursor() as cursor:
        cursor.execute(VERSION_SQL, params)
        found = cursor.fetchone()
    # `Fleet.objects.visible_to`: superusers, the fleet's members, support staff.
    if found is None or not (user.is_superuser or found[5] or found[6]):
        raise Http404("No fleet here.")
    # The fields the pages use; any other is read when first asked for (deferred).
    fleet = Fleet.from_db(connection.alias, FLEET_FIELDS, found[:3])
    n, submitted, versions = (int(part) for part in found[3].split("."))
    vehicles, off, seen = found[4].split(".", 2)
    minute = int((now or timezone.now()).timestamp() // 60)
    version = ListVersion(n, submitted, versions, int(vehicles), int(off), seen, minute)
    return FleetList(fleet, version, bool(found[5] or user.is_superuser), bool(found[6]))
