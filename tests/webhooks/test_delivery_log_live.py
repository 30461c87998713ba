"""The delivery log is a live region: 204 while nothing changed, new
deliveries on page 1, a later page keeping its rows while their processing
moves, only changed rows sent; support only."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse

from connections.models import WebhookEvent
from connections.webhooks.delivery_log import log_version
from connections.webhooks.views import LOG_POLL_SECONDS, PAGE_SIZE
from tests.live import kept, keys_of, poll

URL = reverse("webhook_events")
REGION = "delivery-rows"
ROW = re.compile(r'id="delivery-\d+"')


def delivery(**fields) -> WebhookEvent:
    defaults = {
        "svix_id": f"msg_{uuid.uuid4().hex}",
        "event_type": "device.connected",
        "vehicle_id": "veh-1",
        "body": "{}",
    }
    return WebhookEvent.objects.create(**{**defaults, **fields})


def test_new_and_processed_deliveries_show_by_themselves(client, support):
    waiting = delivery()
    done = delivery(state=WebhookEvent.State.PROCESSED)
    client.force_login(support)
    page = client.get(URL)
    html = page.content.decode()
    version = page.context["live"].version
    assert f'hx-trigger="every {LOG_POLL_SECONDS}s"' in html
    assert poll(client, URL, REGION, v=version).status_code == 204
    claimed = WebhookEvent.claim(waiting.pk)
    assert log_version() != version  # a claim moves it: the row says "Processing"
    claimed.finish(WebhookEvent.State.PROCESSED, result="1 VIN connected")
    fresh = delivery()
    answer = poll(client, URL, REGION, keys_of(html), v=version)
    body = answer.content.decode()
    assert answer.status_code == 200  # never stops: Volteras may send at any time
    assert kept(body, f"delivery-{done.pk}") and not kept(body, f"delivery-{waiting.pk}")
    assert "1 VIN connected" in body and f'id="delivery-{fresh.pk}"' in body
    assert 'id="filters"' not in body and "pagination" not in body


def test_a_later_page_keeps_its_rows_while_new_deliveries_arrive(client, support):
    events = [delivery() for _ in range(PAGE_SIZE + 3)]
    client.force_login(support)
    page = client.get(URL, {"page": 2})
    assert [e.pk for e in page.context["rows"]] == [e.pk for e in events[:3]][::-1]
    version = page.context["live"].version
    poller = page.content.decode().split("data-live-poller", 1)[1].split(">", 1)[0]
    assert f"top={events[-1].pk}" in poller and "page=2" in poller
    delivery()
    delivery()
    answer = poll(client, URL, REGION, v=version, page=2, top=events[-1].pk)
    body = answer.content.decode()
    assert all(f'id="delivery-{e.pk}"' in body for e in events[:3])
    assert len(ROW.findall(body)) == 3


def test_filters_stay_in_the_poll_and_only_support_sees_the_log(client, support, manager):
    delivery(vehicle_id="veh-9")
    delivery(vehicle_id="veh-1")
    client.force_login(support)
    body = poll(client, URL, REGION, vehicle="veh-9").content.decode()
    assert len(ROW.findall(body)) == 1
    assert "vehicle=veh-9" in body.split("data-live-poller", 1)[1].split(">", 1)[0]
    client.force_login(manager)
    assert poll(client, URL, REGION, v="0").status_code == 404
