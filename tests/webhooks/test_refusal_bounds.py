"""Refused webhook deliveries are counted, not logged one row per POST: an
anonymous sender cannot fill the table."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from connections.models import RefusedDelivery
from connections.models.webhooks import OTHER_SOURCES, REFUSED_SOURCES_PER_WINDOW

URL = "/webhooks/volteras/"
BODY = json.dumps({"type": "device.connected", "data": {"id": "veh-1", "deviceType": "VEHICLE"}})
FORGED = {"svix-id": "msg_forged", "svix-timestamp": "1", "svix-signature": "v1,AAAA"}
NOON = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.VOLTERAS_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def forge(client, n: int, *, peer: str = "203.0.113.9", headers=None, **extra) -> None:
    for i in range(n):
        response = client.post(
            URL,
            data=BODY,
            content_type="application/json",
            headers=headers if headers is not None else {**FORGED, "svix-id": f"msg_{i}"},
            REMOTE_ADDR=peer,
            **extra,
        )
        assert response.status_code == 400


@pytest.mark.django_db
class TestRefusalBounds:
    def test_a_flood_from_one_address_is_one_counted_row(self, client):
        with time_machine.travel(NOON, tick=False):
            forge(client, 200)
        (row,) = RefusedDelivery.objects.all()
        assert (row.count, row.source_address, row.reason) == (
            200,
            "203.0.113.9",
            RefusedDelivery.Reason.STALE,
        )
        assert row.claimed_svix_id == "msg_199"  # the latest one's details
        assert row.first_at == row.at == NOON

    def test_counts_are_per_reason_and_per_hour(self, client):
        with time_machine.travel(NOON, tick=False):
            forge(client, 3)
            forge(client, 2, headers={})
        with time_machine.travel(NOON + timedelta(hours=1), tick=False):
            forge(client, 4)
        counts = sorted(RefusedDelivery.objects.values_list("reason", "count"))
        assert counts == [("missing_headers", 2), ("stale", 3), ("stale", 4)]

    def test_a_forged_forwarded_for_does_not_make_new_rows(self, client):
        with time_machine.travel(NOON, tick=False):
            for n in range(20):
                forge(client, 1, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
        (row,) = RefusedDelivery.objects.all()
        assert (row.count, row.forwarded_for) == (20, "198.51.100.19")

    def test_many_peer_addresses_in_one_hour_share_one_row_past_the_cap(self, client):
        with time_machine.travel(NOON, tick=False):
            for n in range(REFUSED_SOURCES_PER_WINDOW + 30):
                forge(client, 1, peer=f"10.0.{n // 250}.{n % 250}")
        assert RefusedDelivery.objects.count() == REFUSED_SOURCES_PER_WINDOW + 1
        assert RefusedDelivery.objects.get(source_address=OTHER_SOURCES).count == 30

    def test_the_refusals_page_shows_counts(self, client, support):
        with time_machine.travel(NOON, tick=False):
            forge(client, 7)
        client.force_login(support)
        page = client.get(reverse("webhook_refused")).content.decode()
        assert '<td class="num">7</td>' in page
        assert "Refused (7)" in page
        events = client.get(reverse("webhook_events")).content.decode()
        assert "Refused (7)" in events
