"""Sandbox webhooks: Svix signatures, retries, duplicates, reordering, delays."""

import json
import time

import httpx
import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from sandbox.rules import fake_vin
from tests.fixtures_sandbox import WAIT_SECONDS, Receiver, connect_vins


def test_connected_webhook_is_signed_like_svix(sandbox, sandbox_api, receiver):
    [vehicle_id] = connect_vins(sandbox_api, fake_vin("FORD", "hook"))
    [(headers, body)] = receiver.wait_for(1)
    Webhook(sandbox.webhook_secret).verify(body, headers)  # raises unless signed right
    # Exactly the body the Volteras docs give, nothing more.
    assert json.loads(body) == {"id": vehicle_id, "deviceType": "VEHICLE"}
    assert headers["svix-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==").verify(body, headers)


def test_delete_fires_disconnected(sandbox, sandbox_api, receiver):
    [vehicle_id] = connect_vins(sandbox_api, fake_vin("FORD", "gone"))
    receiver.wait_for(1)
    assert sandbox_api.delete(f"/v1/vehicles/{vehicle_id}").status_code == 202
    receiver.wait_for(2)
    assert receiver.events(sandbox) == [
        ("device.connected", vehicle_id),
        ("device.disconnected", vehicle_id),
    ]


def test_pending_vehicle_fires_connected_when_it_connects(sandbox, sandbox_api, receiver):
    sandbox.control(pending_seconds=3600)
    connect_vins(sandbox_api, "PEND1NG1" + "0" * 9)
    time.sleep(0.3)  # a few clock ticks: nothing may be sent while the vehicle is pending
    assert receiver.received == []
    [vehicle_id] = sandbox.connect_pending()
    receiver.wait_for(1)
    assert receiver.events(sandbox) == [("device.connected", vehicle_id)]


def test_failed_delivery_is_retried_until_accepted(sandbox, sandbox_api, receiver):
    receiver.statuses = [500, 503]
    connect_vins(sandbox_api, fake_vin("FORD", "retry"))
    received = receiver.wait_for(3)
    assert len({h["svix-id"] for h, _ in received}) == 1
    [delivery] = sandbox.deliveries()
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 204]
    assert delivery["state"] == "delivered"


def test_unreachable_receiver_is_retried(sandbox, sandbox_api):
    dead = Receiver()
    url = dead.url
    dead.server.shutdown()
    dead.server.server_close()
    sandbox.control(webhook_url=url)
    connect_vins(sandbox_api, fake_vin("FORD", "dead"))
    deadline = time.monotonic() + WAIT_SECONDS
    attempts: list = []
    while len(attempts) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        attempts = (sandbox.deliveries() or [{"attempts": []}])[0]["attempts"]
    assert len(attempts) >= 2
    assert all(a["status"] is None and "Connect" in a["error"] for a in attempts)
    assert sandbox.deliveries()[0]["state"] == "retrying"


def test_duplicates(sandbox, sandbox_api, receiver):
    sandbox.control(webhook_duplicates=1)
    connect_vins(sandbox_api, fake_vin("FORD", "dup"))
    (first, body1), (second, body2) = receiver.wait_for(2)
    assert first["svix-id"] == second["svix-id"]
    assert body1 == body2


def test_reordering_sends_newest_first(sandbox, sandbox_api, receiver):
    sandbox.control(webhook_reorder=True)
    ids = connect_vins(sandbox_api, *(fake_vin("FORD", f"order-{n}") for n in range(3)))
    receiver.wait_for(3)
    assert [vehicle_id for _, vehicle_id in receiver.events(sandbox)] == list(reversed(ids))


def test_delay_holds_deliveries(sandbox, sandbox_api, receiver):
    sandbox.control(webhook_delay_ms=800)
    started = time.monotonic()
    connect_vins(sandbox_api, fake_vin("FORD", "late"))
    receiver.wait_for(1)
    assert time.monotonic() - started >= 0.8


def test_delivery_log_page(sandbox, sandbox_api, receiver):
    connect_vins(sandbox_api, fake_vin("FORD", "log"))
    receiver.wait_for(1)
    page = httpx.get(f"{sandbox.url}/_sandbox/webhooks", timeout=10)
    assert page.status_code == 200
    assert "device.connected" in page.text
    assert sandbox.deliveries()[0]["msgId"] in page.text
