"""The sandbox's own Svix-signed deliveries driving the portal end to end.

The portal runs as pytest-django's live server; the sandbox subprocess posts
its webhooks to it over real HTTP. VINs go in through the upload views and the
real tasks (`drain()`), then the sandbox connects a pending vehicle, an owner
approves a consent flow, and a vehicle is disconnected: each change reaches
the VIN entries through a webhook.
"""

import csv
import io
import time

import httpx
import pytest
from django.db.models import F
from django.urls import reverse

from connections import volteras
from connections.jobs import drain
from connections.models import Source, Upload, VinStatus, WebhookEvent
from connections.webhooks.tasks import redrive_webhook_events
from sandbox.rules import fake_vin
from tests.factories import entry_of
from tests.fixtures_sandbox import point_portal_at

DELIVERY_TIMEOUT = 20.0

NORMAL = fake_vin("VOLKSWAGEN", "e2e-normal")
PENDING = "PEND1NG1E2E000001"
CONSENT = "C0NSENT1E2E000002"


def wait_for_delivery(sandbox, vehicle_id: str, event_type: str) -> dict:
    """Until the sandbox has delivered this event to the portal with a 2xx."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        for delivery in sandbox.deliveries():
            ours = delivery["vehicleId"] == vehicle_id and delivery["type"] == event_type
            if ours and any(200 <= (a["status"] or 0) < 300 for a in delivery["attempts"]):
                return delivery
        time.sleep(0.05)
    raise AssertionError(f"{event_type} for {vehicle_id} not delivered: {sandbox.deliveries()}")


def work() -> None:
    """What a worker does: its sweep enqueues a drain if a delivery's trigger
    was skipped (deliveries close together), then queued tasks run."""
    redrive_webhook_events()
    drain()


@pytest.fixture
def portal(live_server, sandbox, settings) -> volteras.VolterasClient:
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_MAX_RETRIES = 0
    sandbox.control(webhook_url=live_server.url + "/webhooks/volteras/", pending_seconds=3600)
    return volteras.get_client()


def test_sandbox_deliveries_drive_the_portal(client, manager, fleet, sandbox, portal):
    client.force_login(manager)
    text = "\n".join(f"{vin},VOLKSWAGEN,GB" for vin in (NORMAL, PENDING, CONSENT))
    response = client.post(reverse("upload_new", args=[fleet.slug]), {"text": text})
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert client.post(reverse("upload_submit", args=[upload.pk])).status_code == 302
    drain()
    assert entry_of(upload, NORMAL).status == VinStatus.CONNECTED
    assert entry_of(upload, PENDING).status == VinStatus.PENDING
    assert entry_of(upload, CONSENT).status == VinStatus.CONNECTION_REQUIRED
    normal_id = entry_of(upload, NORMAL).vehicle_id

    # The immediate connection is announced too; whether the webhook or the
    # poll saw it first, the entry moved to CONNECTED once.
    wait_for_delivery(sandbox, normal_id, "device.connected")
    work()
    assert WebhookEvent.objects.get(vehicle_id=normal_id).state == WebhookEvent.State.PROCESSED
    moves = entry_of(upload, NORMAL).events.exclude(status_from=F("status_to"))
    assert [m.status_to for m in moves.filter(status_to=VinStatus.CONNECTED)] == ["CONNECTED"]

    # A pending vehicle connects: only the webhook tells the portal.
    (pending_id,) = sandbox.connect_pending()
    wait_for_delivery(sandbox, pending_id, "device.connected")
    version = Upload.objects.get(pk=upload.pk).version
    work()
    pending = entry_of(upload, PENDING)
    assert (pending.status, pending.vehicle_id) == (VinStatus.CONNECTED, pending_id)
    assert pending.events.filter(source=Source.WEBHOOK, status_to=VinStatus.CONNECTED).exists()
    assert Upload.objects.get(pk=upload.pk).version > version  # the live table's poll sees it

    # The owner approves the consent flow for the VIN that needed it.
    link = portal.connect_account(scopes=["vehicle:all"], device_types=["VEHICLE"], vin=CONSENT)
    answer = httpx.post(
        link, data={"decision": "approve", "make": "VOLKSWAGEN", "username": "owner"}
    )
    assert answer.status_code in (200, 302), answer.text
    consented = entry_of(upload, CONSENT)
    wait_for_delivery(sandbox, portal_vehicle_id(portal, CONSENT), "device.connected")
    work()
    consented.refresh_from_db()
    assert consented.status == VinStatus.CONNECTED
    assert consented.events.filter(source=Source.WEBHOOK).count() == 1

    # A vehicle is disconnected: DISCONNECTED in the table and the export.
    portal.disconnect_vehicle(normal_id)
    wait_for_delivery(sandbox, normal_id, "device.disconnected")
    work()
    assert entry_of(upload, NORMAL).status == VinStatus.DISCONNECTED
    export = client.get(reverse("upload_export", args=[upload.pk]))
    rows = {
        row["vin"]: row
        for row in csv.DictReader(
            io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))
        )
    }
    assert rows[NORMAL]["status"] == "DISCONNECTED"
    assert rows[PENDING]["status"] == "CONNECTED"
    assert rows[CONSENT]["status"] == "CONNECTED"

    # Every delivery was verified and processed exactly once.
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"processed"}
    delivered = {d["msgId"] for d in sandbox.deliveries() if d["attempts"]}
    assert set(WebhookEvent.objects.values_list("svix_id", flat=True)) == delivered

    # The sandbox sends the documented body, {"id", "deviceType"} and no type;
    # the log tells the events apart by the state the portal read.
    sent = {d["msgId"]: d["type"] for d in sandbox.deliveries() if d["attempts"]}
    for event in WebhookEvent.objects.all():
        assert event.event_type == ""
        assert event.payload == {"id": event.vehicle_id, "deviceType": "VEHICLE"}
    assert {e.svix_id: e.kind for e in WebhookEvent.objects.all()} == sent
    (disconnection,) = WebhookEvent.objects.of_kind("device.disconnected")
    assert (disconnection.vehicle_id, disconnection.api_status) == (normal_id, "DISCONNECTED")


def portal_vehicle_id(api: volteras.VolterasClient, vin: str) -> str:
    (vehicle,) = [v for v in api.list_vehicles() if v.vin == vin]
    return vehicle.id
