"""A fleet cannot claim another fleet's vehicle by uploading its VIN (against
the running sandbox, real HTTP): Volteras answers for the whole organisation,
so the portal refuses the VIN, says whom to ask, and shows nothing of the vehicle."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from svix.webhooks import Webhook

from connections import volteras
from connections.explanations import VEHICLE_IN_ANOTHER_FLEET, WhoActs, explain
from connections.jobs import drain
from connections.models import (
    ConnectedAccount,
    Source,
    Upload,
    Vehicle,
    VinEntry,
    VinStatus,
    WebhookEvent,
)
from connections.sending.results import apply_result
from connections.support.workspace import who_must_act_q
from connections.vehicles.apply import apply_vehicle
from sandbox.rules import fake_vin
from tests.fixtures_sandbox import point_portal_at


@pytest.fixture
def api(sandbox, settings) -> volteras.VolterasClient:
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_MAX_RETRIES = 0
    return volteras.get_client()


def entry_in(fleet, vin: str, status: str, vehicle_id: str = "") -> VinEntry:
    upload = Upload.objects.create(fleet=fleet, state=Upload.State.SUBMITTED)
    return VinEntry.objects.create(
        upload=upload,
        fleet=fleet,
        line_number=1,
        vin=vin,
        make="VOLKSWAGEN",
        validity=VinEntry.Validity.VALID,
        status=status,
        vehicle_id=vehicle_id,
    )


def send(api: volteras.VolterasClient, vin: str):
    group = api.connect_vehicles([volteras.VehicleInput(vin, "VOLKSWAGEN", "GB")])
    (result,) = api.connect_results(group.id)
    return result


def deliver(client, secret: str, event_type: str, vehicle_id: str) -> WebhookEvent:
    body = json.dumps({"type": event_type, "data": {"id": vehicle_id, "deviceType": "VEHICLE"}})
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, now, body),
    }
    response = client.post(
        "/webhooks/volteras/", data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200, response.content
    return WebhookEvent.objects.get(svix_id=msg_id)


@pytest.fixture
def held(api, fleet) -> tuple[str, str]:
    """A VIN connected in Demo Fleet: (vin, vehicle id)."""
    vin = fake_vin("VOLKSWAGEN", f"held-{uuid.uuid4().hex[:6]}")
    result = send(api, vin)
    assert result.vehicle_id
    entry_in(fleet, vin, VinStatus.CONNECTED, result.vehicle_id)
    return vin, result.vehicle_id


def assert_refused(entry: VinEntry) -> None:
    entry.refresh_from_db()
    assert entry.status == VinStatus.ERROR
    assert entry.error_codes == [VEHICLE_IN_ANOTHER_FLEET]
    assert entry.vehicle_id == ""
    assert entry.can_retry is False


@pytest.mark.django_db
class TestAnotherFleetsVin:
    def test_an_already_added_answer_for_another_fleets_vehicle_is_refused(
        self, api, held, other_fleet, fleet
    ):
        vin, vehicle_id = held
        theirs = entry_in(other_fleet, vin, VinStatus.PROCESSING)
        again = send(api, vin)
        assert [e.code for e in again.errors] == ["VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"]
        assert again.vehicle_id == vehicle_id

        assert apply_result(theirs, again, Source.POLL)
        assert_refused(theirs)
        event = theirs.events.get()
        assert event.data["held_by_fleet"] == fleet.slug
        assert vehicle_id not in event.detail and "Ask support" in event.detail
        assert explain(theirs.error_code).who_acts == "CONTACT_SUPPORT"
        assert "another fleet of your organisation" in explain(theirs.error_code).explanation
        support_must_act = VinEntry.objects.filter(who_must_act_q(WhoActs.CONTACT_SUPPORT))
        assert support_must_act.filter(pk=theirs.pk).exists()

    def test_the_same_fleet_sending_its_vin_again_still_connects(self, api, held, fleet):
        vin, vehicle_id = held
        mine = entry_in(fleet, vin, VinStatus.PROCESSING)
        VinEntry.objects.exclude(pk=mine.pk).update(superseded=True)
        assert apply_result(mine, send(api, vin), Source.POLL)
        mine.refresh_from_db()
        assert (mine.status, mine.vehicle_id) == (VinStatus.CONNECTED, vehicle_id)

    def test_a_vehicle_shared_through_another_fleets_account_is_refused(
        self, api, fleet, other_fleet
    ):
        vin = fake_vin("VOLKSWAGEN", f"acct-{uuid.uuid4().hex[:6]}")
        result = send(api, vin)
        ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-isolation")
        Vehicle.objects.create(volteras_id=result.vehicle_id, vin=vin, account_id="acc-isolation")
        theirs = entry_in(other_fleet, vin, VinStatus.PROCESSING)
        apply_result(theirs, send(api, vin), Source.POLL)
        assert_refused(theirs)

    def test_the_manager_sees_the_reason_and_nothing_of_the_vehicle(
        self, api, held, other_fleet, outsider, support, client
    ):
        vin, vehicle_id = held
        theirs = entry_in(other_fleet, vin, VinStatus.PROCESSING)
        apply_result(theirs, send(api, vin), Source.POLL)
        url = reverse("entry_detail", args=[theirs.pk])

        client.force_login(outsider)
        page = client.get(url).content.decode()
        assert "Connected to another fleet" in page and "Ask support" in page
        assert vehicle_id not in page
        assert "Demo Fleet" not in page

        client.force_login(support)
        assert "Held by fleet" in client.get(url).content.decode()
        assert "Demo Fleet" in client.get(url).content.decode()


@pytest.mark.django_db
class TestWebhooksAndReconciliation:
    def test_a_webhook_does_not_hand_the_vehicle_to_another_fleets_entry(
        self, api, held, other_fleet, sandbox, client, settings
    ):
        vin, vehicle_id = held
        waiting = entry_in(other_fleet, vin, VinStatus.PROCESSING)
        refused = entry_in(other_fleet, vin, VinStatus.PROCESSING)
        apply_result(refused, send(api, vin), Source.POLL)

        deliver(client, sandbox.webhook_secret, "device.connected", vehicle_id)
        drain()
        for entry in (waiting, refused):
            entry.refresh_from_db()
            assert entry.vehicle_id == ""
            assert not entry.events.filter(source=Source.WEBHOOK).exists()
        assert waiting.status == VinStatus.PROCESSING
        assert_refused(refused)

    def test_reconciliation_leaves_another_fleets_entry_alone(self, api, held, other_fleet):
        vin, vehicle_id = held
        waiting = entry_in(other_fleet, vin, VinStatus.CONNECTION_REQUIRED)
        applied = apply_vehicle(vehicle_id, Source.RECONCILIATION)
        assert applied.matched == 1
        waiting.refresh_from_db()
        assert (waiting.status, waiting.vehicle_id) == (VinStatus.CONNECTION_REQUIRED, "")

    def test_an_entry_of_the_only_fleet_waiting_on_the_vin_still_takes_the_news(self, api, fleet):
        vin = fake_vin("VOLKSWAGEN", f"alone-{uuid.uuid4().hex[:6]}")
        result = send(api, vin)
        mine = entry_in(fleet, vin, VinStatus.PROCESSING)
        apply_vehicle(result.vehicle_id, Source.RECONCILIATION)
        mine.refresh_from_db()
        assert (mine.status, mine.vehicle_id) == (VinStatus.CONNECTED, result.vehicle_id)
