"""What the fleet list's poll compares, read together with the check that the
user may see the fleet: one hand-written statement for the request every open
list repeats.

`Fleet.objects.visible_to` composed by the ORM, then the version's two
aggregates, cost the ORM several times what they cost the database (about
6 ms against 0.5 on the bench's machine). As with `Upload.version_seen_by`, a
test holds this statement to `visible_to`'s answer for every role.
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
# count by number, disconnects and last sighting.
VERSION_SQL = (
    "SELECT f.id, f.name, f.slug,"
    " (SELECT COUNT(*) FROM connections_upload u WHERE u.fleet_id = f.id),"
    " (SELECT COUNT(*) FROM connections_upload u WHERE u.fleet_id = f.id AND u.state = %s),"
    " (SELECT COALESCE(SUM(u.version), 0) FROM connections_upload u WHERE u.fleet_id = f.id),"
    " (SELECT COUNT(*) FROM connections_vehicle v WHERE v.account_id IN"
    " (SELECT a.volteras_id FROM connections_connectedaccount a WHERE a.fleet_id = f.id)),"
    " (SELECT COUNT(*) FROM connections_vehicle v WHERE v.disconnected AND v.account_id IN"
    " (SELECT a.volteras_id FROM connections_connectedaccount a WHERE a.fleet_id = f.id)),"
    " (SELECT MAX(v.last_seen_at) FROM connections_vehicle v WHERE v.account_id IN"
    " (SELECT a.volteras_id FROM connections_connectedaccount a WHERE a.fleet_id = f.id)),"
    " member, support FROM connections_fleet f, ("
    " SELECT EXISTS (SELECT 1 FROM connections_membership m JOIN connections_fleet mf"
    " ON mf.id = m.fleet_id WHERE mf.slug = %s AND m.user_id = %s) AS member,"
    " EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id"
    " WHERE ug.user_id = %s AND g.name = %s) AS support) roles"
    " WHERE f.slug = %s AND (%s OR member OR support)"
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
    params = [
        *(Upload.State.SUBMITTED, slug, user.pk, user.pk, SUPPORT_GROUP),
        *(slug, user.is_superuser),
    ]
    with connection.cursor() as cursor:
        cursor.execute(VERSION_SQL, params)
        found = cursor.fetchone()
    if found is None:
        raise Http404("No fleet here.")
    # The fields the pages use; any other is read when first asked for (deferred).
    fleet = Fleet.from_db(connection.alias, FLEET_FIELDS, found[:3])
    n, submitted, versions, vehicles, off, seen, member, support = found[3:]
    minute = int((now or timezone.now()).timestamp() // 60)
    version = ListVersion(n, submitted, int(versions), vehicles, off, str(seen or ""), minute)
    return FleetList(fleet, version, bool(member or user.is_superuser), bool(support))
