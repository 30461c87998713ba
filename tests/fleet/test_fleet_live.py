"""The fleet vehicles page as a live region: a poll answers 204 while the
fleet's version is unchanged, else only the rows the browser lacks; filters
ask for the region alone and stay in the URL; access as the page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.urls import reverse

from connections.fleet.listing import PAGE_SIZE, Filters, matching_keys, page_sql
from connections.fleet.version import fleet_and_version
from connections.models import (
    ConnectedAccount,
    Fleet,
    Source,
    Upload,
    Vehicle,
    VinEntry,
    VinStatus,
)
from connections.roles import SUPPORT_GROUP
from tests.fleet.test_fleet_vehicles import STATUSES, add_entries

HTMX = {"HX-Request": "true", "HX-Target": "vehicles"}


@pytest.fixture
def listed(fleet, manager) -> Upload:
    return add_entries(fleet, STATUSES, user=manager)


def page_url(fleet) -> str:
    return reverse("fleet_vehicles", args=[fleet.slug])


def poll_url(html: str) -> str:
    found = re.search(r'id="vehicles-poller"[^>]*hx-get="([^"]+)"', html)
    assert found, "the region has a poller"
    return found.group(1).replace("&amp;", "&")


def keys_of(html: str) -> str:
    """The Live-Keys header a browser showing `html` sends."""
    rows = re.findall(r'<tr id="(row-[ev]\d+)" data-key="(\w+)"', html)
    return " ".join(f"{element}={key}" for element, key in rows)


def test_the_page_is_a_live_region_that_keeps_its_filters(client, fleet, manager, listed):
    client.force_login(manager)
    html = client.get(page_url(fleet), {"group": "needs", "q": "WVW"}).content.decode()
    assert 'id="vehicles" class="live" hx-ext="live"' in html
    url = poll_url(html)
    assert url.startswith(page_url(fleet)) and "group=needs" in url and "q=WVW" in url
    # The controls sit outside the region; the filter form puts its state in the URL.
    region = html[html.index('id="vehicles"') :]
    assert 'id="vehicle-filters"' not in region and 'id="bulk"' not in region
    assert 'hx-push-url="true"' in html[: html.index('id="vehicles"')]
    entry = VinEntry.objects.get(vin="WVWZZZ1JZ3W000003")
    assert f'<tr id="row-e{entry.pk}" data-key="' in html and 'data-live-state="Error"' in html


def test_an_unchanged_poll_is_204_in_three_queries(
    client, fleet, manager, listed, django_assert_num_queries
):
    client.force_login(manager)
    url = poll_url(client.get(page_url(fleet)).content.decode())
    # session, user, then access, version and roles in one statement
    with django_assert_num_queries(3):
        response = client.get(url, headers=HTMX)
    assert response.status_code == 204


def test_a_poll_after_a_change_sends_only_the_changed_row(client, fleet, manager, listed):
    client.force_login(manager)
    html = client.get(page_url(fleet)).content.decode()
    url, keys = poll_url(html), keys_of(html)
    moved = VinEntry.objects.get(vin="WVWZZZ1JZ3W000002")
    assert moved.observe(VinStatus.CONNECTED, Source.POLL, vehicle_id="veh-2")
    response = client.get(url, headers={**HTMX, "Live-Keys": keys})
    assert response.status_code == 200
    region = response.content.decode()
    assert "<html" not in region and region.count("data-live-keep") == 3
    assert f'<tr id="row-e{moved.pk}" data-key="' in region
    assert 'data-live-state="Connected"' in region
    # The new poller carries the new version: asked again, nothing changed.
    assert client.get(poll_url(region), headers=HTMX).status_code == 204


def test_a_filter_asks_for_the_region_alone(client, fleet, manager, listed):
    client.force_login(manager)
    response = client.get(page_url(fleet), {"status": VinStatus.ERROR}, headers=HTMX)
    region = response.content.decode()
    assert response.status_code == 200 and "<html" not in region
    assert "WVWZZZ1JZ3W000003" in region and "WVWZZZ1JZ3W000002" not in region
    # What follows the filters inside the region: exports and the bulk form's query.
    assert 'name="return_query" value="status=ERROR"' in region
    assert "vehicles.csv?status=ERROR" in region


def test_polls_answer_as_the_page_does(client, fleet, other_fleet, users, listed):
    url = page_url(fleet) + "?v=x"
    assert client.get(url, headers=HTMX).status_code == 302
    client.force_login(users["outsider"])
    assert client.get(url, headers=HTMX).status_code == 404
    for name in ("manager", "support", "admin"):
        client.force_login(users[name])
        assert client.get(url, headers=HTMX).status_code == 200, name


def test_the_version_statement_sees_what_visible_to_sees(
    fleet, other_fleet, users, manager, listed
):
    """`fleet_and_version` is `Fleet.objects.visible_to` and `managed_by` in one
    hand-written statement: held to them for every role."""
    inactive = User.objects.create_user("gone", is_active=False)
    inactive.groups.add(Group.objects.get_or_create(name=SUPPORT_GROUP)[0])
    both = User.objects.create_user("both")
    both.memberships.create(fleet=fleet)
    both.memberships.create(fleet=other_fleet)
    everyone = {**users, "inactive": inactive, "both": both, "anonymous": AnonymousUser()}
    seen = {}
    for name, user in everyone.items():
        for slug in (fleet.slug, other_fleet.slug, "no-such-fleet"):
            request = RequestFactory().get("/")
            request.user = user
            visible = Fleet.objects.visible_to(user).filter(slug=slug).first()
            try:
                found = fleet_and_version(request, slug)
            except Http404:
                found = None
            assert (found.fleet.pk if found else None) == (visible.pk if visible else None)
            if found:
                managed = Fleet.objects.managed_by(user).filter(pk=visible.pk).exists()
                assert found.can_manage == managed, (name, slug)
            seen[name, slug] = found is not None
    assert seen["support", other_fleet.slug] and not seen["outsider", fleet.slug]
    assert seen["both", other_fleet.slug] and not seen["inactive", fleet.slug]
    assert seen["admin", other_fleet.slug] and not seen["manager", other_fleet.slug]


def test_the_version_moves_with_every_change_to_the_list(rf, fleet, manager, listed):
    request = rf.get("/")
    request.user = manager
    before = fleet_and_version(request, fleet.slug).version
    entry = VinEntry.objects.get(vin="WVWZZZ1JZ3W000004")
    entry.observe(VinStatus.ERROR, Source.POLL, error_codes=["VEHICLE_NOT_FOUND"])
    after = fleet_and_version(request, fleet.slug).version
    assert str(after) != str(before) and after.upload_versions > before.upload_versions


@pytest.mark.postgres_only  # the SQL is kept on PostgreSQL only
@pytest.mark.parametrize(
    "f", [Filters(), Filters(sort="-vin"), Filters(status=VinStatus.ERROR), Filters(q="WVW")]
)
def test_a_kept_page_query_reads_what_the_orm_reads(fleet, manager, listed, f):
    ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="d@x")
    Vehicle.objects.create(volteras_id="v-1", vin="SALAA2AE8LA000009", account_id="acc-1")
    with connection.cursor() as cursor:
        cursor.execute(*page_sql(fleet.pk, f, True, 0))
        kept = cursor.fetchall()
    assert kept == list(matching_keys(fleet, f, True)[: PAGE_SIZE + 1])
    assert kept and any(row[0] == 1 for row in kept) == (f.status == "" and f.q == "")
