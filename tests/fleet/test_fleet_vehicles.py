"""The fleet's vehicle list: every current VIN and account vehicle, what needs
the manager first, filters in the URL, exports of exactly the view, bulk actions."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from connections.fleet.listing import Filters, page_of
from connections.models import (
    ConnectedAccount,
    Source,
    Upload,
    Vehicle,
    VinEntry,
    VinEvent,
    VinStatus,
)
from tests.permissions import assert_access

STATUSES = [
    ("WVWZZZ1JZ3W000001", VinStatus.CONNECTED, ""),
    ("WVWZZZ1JZ3W000002", VinStatus.PENDING, ""),
    ("WVWZZZ1JZ3W000003", VinStatus.ERROR, "VEHICLE_NOT_FOUND"),
    ("WVWZZZ1JZ3W000004", VinStatus.CONNECTION_REQUIRED, ""),
    ("WVWZZZ1JZ3W000005", VinStatus.INVALID, ""),
]


def add_entries(fleet, rows, *, user=None, state=Upload.State.SUBMITTED) -> Upload:
    upload = Upload.objects.create(fleet=fleet, created_by=user, state=state)
    for line, (vin, status, code) in enumerate(rows, start=1):
        VinEntry.objects.create(
            upload=upload,
            fleet=fleet,
            line_number=line,
            vin=vin,
            make="VOLKSWAGEN",
            registration_plate=f"AB{line} CDE",
            tags=[{"key": "depot", "value": "Leeds" if line % 2 else "York"}],
            validity="valid",
            status=status,
            error_code=code,
            error_codes=[code] if code else [],
            vehicle_id=f"veh-{line}" if status == VinStatus.CONNECTED else "",
        )
    return upload


@pytest.fixture
def listed(fleet, manager) -> Upload:
    return add_entries(fleet, STATUSES, user=manager)


def url(fleet, **params) -> str:
    base = reverse("fleet_vehicles", args=[fleet.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def test_access(client, fleet, users, listed):
    assert_access(client, url(fleet), users)
    assert_access(client, reverse("fleet_vehicles_csv", args=[fleet.slug]), users)


def test_needs_you_first_and_never_sent_rows_left_out(fleet, listed):
    vins = [row.vin for row in page_of(fleet, Filters(), 1).rows]
    assert set(vins[:2]) == {"WVWZZZ1JZ3W000003", "WVWZZZ1JZ3W000004"}
    assert vins[2:] == ["WVWZZZ1JZ3W000002", "WVWZZZ1JZ3W000001"]


def test_superseded_rows_are_not_listed(fleet, listed):
    listed.entries.filter(vin="WVWZZZ1JZ3W000001").update(superseded=True)
    assert "WVWZZZ1JZ3W000001" not in [r.vin for r in page_of(fleet, Filters(), 1).rows]


def test_tiles_link_to_their_rows(client, fleet, manager, listed):
    client.force_login(manager)
    page = client.get(reverse("fleet_detail", args=[fleet.slug])).content.decode()
    assert url(fleet) + "?group=needs" in page
    listed_needs = client.get(url(fleet, group="needs")).content.decode()
    assert "WVWZZZ1JZ3W000003" in listed_needs and "WVWZZZ1JZ3W000002" not in listed_needs
    assert "2 vehicles" in listed_needs


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "PENDING"}, {"WVWZZZ1JZ3W000002"}),
        ({"tag": "depot=York"}, {"WVWZZZ1JZ3W000002", "WVWZZZ1JZ3W000004"}),
        ({"q": "000003"}, {"WVWZZZ1JZ3W000003"}),
        ({"q": "ab1cde"}, {"WVWZZZ1JZ3W000001"}),
        ({"q": "york"}, {"WVWZZZ1JZ3W000002", "WVWZZZ1JZ3W000004"}),
        ({"error": "VEHICLE_NOT_FOUND"}, {"WVWZZZ1JZ3W000003"}),
        ({"who": "CUSTOMER_ACTION", "group": "needs"}, {"WVWZZZ1JZ3W000004"}),
        ({"source": "account"}, set()),
        ({"age": "1h"}, set()),
    ],
)
def test_filters(client, fleet, manager, listed, params, expected):
    client.force_login(manager)
    response = client.get(url(fleet, **params))
    assert response.status_code == 200
    assert {r.vin for r in response.context["page"].rows} == expected


def test_sort_by_any_column(client, fleet, manager, listed):
    client.force_login(manager)
    rows = client.get(url(fleet, sort="-vin")).context["page"].rows
    assert [r.vin for r in rows] == sorted((r.vin for r in rows), reverse=True)
    for key in ("status", "make", "model", "plate", "tags", "source", "changed", "-needs"):
        assert client.get(url(fleet, sort=key)).status_code == 200


def test_account_vehicles_are_listed_once(client, fleet, manager, listed):
    ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="driver@x")
    Vehicle.objects.create(
        volteras_id="v-9", vin="SALAA2AE8LA000009", make="tesla", account_id="acc-1"
    )
    # A vehicle an upload already sent is the upload's row, not a second one.
    Vehicle.objects.create(volteras_id="veh-1", vin="WVWZZZ1JZ3W000001", account_id="acc-1")
    client.force_login(manager)
    rows = client.get(url(fleet)).context["page"].rows
    assert [r.vin for r in rows].count("WVWZZZ1JZ3W000001") == 1
    assert "SALAA2AE8LA000009" in [r.vin for r in rows]
    only = client.get(url(fleet, source="account")).context["page"].rows
    assert [r.source_label for r in only] == ["Account driver@x"]
    assert client.get(url(fleet, sort="plate")).status_code == 200


def test_pages_count_up_to_a_cap(fleet, monkeypatch):
    monkeypatch.setattr("connections.fleet.listing.PAGE_SIZE", 2)
    monkeypatch.setattr("connections.fleet.listing.COUNT_CAP", 3)
    add_entries(fleet, [(f"WVWZZZ1JZ3W00010{i}", VinStatus.PENDING, "") for i in range(5)])
    first = page_of(fleet, Filters(), 1)
    assert first.has_next and first.count_capped
    last = page_of(fleet, Filters(), 3)
    assert [len(last.rows), last.has_next] == [1, False]


def test_exports_are_exactly_the_filtered_view(client, fleet, manager, listed):
    client.force_login(manager)
    response = client.get(reverse("fleet_vehicles_csv", args=[fleet.slug]) + "?tag=depot=York")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["vin"] for r in rows} == {"WVWZZZ1JZ3W000002", "WVWZZZ1JZ3W000004"}
    assert rows[0]["who_must_act"] and rows[0]["tags"] == "depot=York"
    response = client.get(reverse("fleet_vehicles_xlsx", args=[fleet.slug]) + "?status=ERROR")
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    values = list(book.active.values)
    assert values[0][0] == "vin" and [v[0] for v in values[1:]] == ["WVWZZZ1JZ3W000003"]


def action(client, fleet, **data):
    return client.post(reverse("fleet_vehicles_action", args=[fleet.slug]), data, follow=True)


def test_tags_added_and_removed_with_the_timeline(client, fleet, manager, listed):
    client.force_login(manager)
    rows = [f"e{e.pk}" for e in listed.entries.filter(status=VinStatus.ERROR)]
    version = Upload.objects.get(pk=listed.pk).version
    action(client, fleet, action="tag", scope="selected", rows=rows, tags="team=vans")
    entry = listed.entries.get(status=VinStatus.ERROR)
    assert {"key": "team", "value": "vans"} in entry.tags
    event = VinEvent.objects.filter(entry=entry).last()
    assert event.detail == "Tags added team=vans" and event.actor == manager
    assert Upload.objects.get(pk=listed.pk).version > version
    response = action(
        client,
        fleet,
        action="untag",
        scope="all",
        tags="depot=Leeds",
        return_query="tag=depot=Leeds",
    )
    assert "2 vehicles were untagged." in response.content.decode()
    assert not VinEntry.objects.filter(tags__icontains="Leeds", attention__lt=9).exists()


def test_support_may_retry_but_not_tag(client, fleet, support, listed):
    client.force_login(support)
    entry = listed.entries.get(status=VinStatus.ERROR)
    response = client.post(
        reverse("fleet_vehicles_action", args=[fleet.slug]),
        {"action": "tag", "scope": "selected", "rows": [f"e{entry.pk}"], "tags": "a=b"},
    )
    assert response.status_code == 403


def test_outsider_cannot_act(client, fleet, outsider, listed):
    client.force_login(outsider)
    response = client.post(
        reverse("fleet_vehicles_action", args=[fleet.slug]),
        {"action": "retry", "scope": "all"},
    )
    assert response.status_code == 404


def test_remove_asks_to_confirm_the_count(client, fleet, manager, listed):
    client.force_login(manager)
    pending = listed.entries.get(status=VinStatus.PENDING)
    data = {"action": "remove", "scope": "selected", "rows": [f"e{pending.pk}"]}
    page = action(client, fleet, **data).content.decode()
    assert "Remove 1 vehicle from Demo Fleet?" in page
    assert "It is not connected at Volteras, so nothing is disconnected." in page
    pending.refresh_from_db()
    assert not pending.superseded
    action(client, fleet, **data, confirm=1)
    pending.refresh_from_db()
    assert pending.superseded
    assert pending.events.last().detail == "Removed from the fleet"
    assert pending.events.last().source == Source.MANUAL


def test_age_filter_reads_the_last_change(fleet, listed):
    listed.entries.filter(status=VinStatus.PENDING).update(
        status_changed_at=timezone.now() - timedelta(days=8)
    )
    assert [r.vin for r in page_of(fleet, Filters(age="7d"), 1).rows] == ["WVWZZZ1JZ3W000002"]


def test_remove_names_how_many_are_disconnected_and_keeps_the_filter(
    client, fleet, manager, listed
):
    client.force_login(manager)
    rows = [f"e{e.pk}" for e in listed.entries.exclude(status=VinStatus.INVALID)]
    data = {
        "action": "remove",
        "scope": "selected",
        "rows": rows,
        "return_query": "make=VOLKSWAGEN",
    }
    page = action(client, fleet, **data).content.decode()
    assert "Remove 4 vehicles from Demo Fleet?" in page
    assert "1 of them is connected at Volteras and will be" in page
    assert f'href="{url(fleet)}?make=VOLKSWAGEN">Keep them</a>' in page


def test_the_vin_page_offers_support_and_removal_when_it_names_them(
    client, fleet, manager, support, listed
):
    entry = listed.entries.get(status=VinStatus.ERROR)
    VinEntry.objects.filter(pk=entry.pk).update(
        status=VinStatus.INCOMPATIBLE,
        error_code="OEM_VEHICLE_NOT_COMPATIBLE",
        error_codes=["OEM_VEHICLE_NOT_COMPATIBLE"],
        action_category="CONTACT_SUPPORT",
    )
    page_url = reverse("entry_detail", args=[entry.pk])
    client.force_login(manager)
    page = client.get(page_url).content.decode()
    assert "Who acts: Contact support" in page
    assert "Contact support about this VIN" in page
    assert "Remove it from the fleet" in page
    # Support reads the fleet but does not remove its vehicles.
    client.force_login(support)
    page = client.get(page_url).content.decode()
    assert "Contact support about this VIN" in page
    assert "Remove it from the fleet" not in page
