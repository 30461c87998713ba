"""Processing webhooks and reconciliation against the running sandbox (real HTTP).

Events reach the receiver signed by the real `svix` library with the
sandbox's secret; the worker reads each vehicle from the sandbox's API.
"""

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from connections.jobs import drain
from connections.models import (
    ConnectBatch,
    ConnectedAccount,
    Fleet,
    ReconciliationRun,
    Source,
    UnmatchedVehicle,
    Upload,
    Vehicle,
    VinEntry,
    VinEvent,
    VinStatus,
    WebhookEvent,
)
from connections.vehicles.apply import apply_vehicle
from connections.vehicles.reconcile import reconcile
from connections.vehicles.tasks import reconcile_when_due
from connections.webhooks.process import process_event
from connections.webhooks.tasks import redrive_webhook_events
from sandbox.rules import fake_vin
from tests.factories import add_entry, magic_vin, make_upload
from tests.flows import connect, deliver


def webhook_events(entry: VinEntry) -> list[VinEvent]:
    return list(entry.events.filter(source=Source.WEBHOOK))


@pytest.mark.django_db
class TestProcessing:
    def test_without_a_worker_the_receiver_processes_inline(
        self, client, api, sandbox, upload, settings
    ):
        # `TASKS_BACKEND=...ImmediateBackend` runs tasks as they are enqueued and
        # no worker watches the table: the receiver starts the drain itself.
        settings.TASKS = {
            "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
        }
        vin = fake_vin("VOLKSWAGEN", "inline")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        event.refresh_from_db()
        assert (event.state, event.attempts) == (WebhookEvent.State.PROCESSED, 1)
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED

    def test_connected_event_applies_the_apis_state(self, client, api, sandbox, upload):
        sandbox.control(pending_seconds=3600)
        vin = magic_vin("PEND1NG1", "A1")
        _, result = connect(api, vin)
        assert result.status == "PENDING" and result.vehicle_id is None
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        (vehicle_id,) = sandbox.connect_pending()
        version = Upload.objects.get(pk=upload.pk).version

        event = deliver(client, sandbox.webhook_secret, "device.connected", vehicle_id)
        assert drain() >= 1

        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED
        assert entry.vehicle_id == vehicle_id
        (change,) = webhook_events(entry)
        assert (change.status_from, change.status_to) == (VinStatus.PENDING, VinStatus.CONNECTED)
        assert change.data["svix_id"] == event.svix_id
        assert "Volteras says CONNECTED" in change.detail
        assert Upload.objects.get(pk=upload.pk).version > version
        record = Vehicle.objects.get(volteras_id=vehicle_id)
        assert (record.vin, record.connection_status, record.disconnected) == (
            vin,
            "CONNECTED",
            False,
        )
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert (event.vin, event.api_status, event.entries_changed) == (vin, "CONNECTED", 1)
        assert event.attempts == 1

    def test_fleets_waiting_on_one_vin_hold_back_and_finished_attempts_stay(
        self, client, api, sandbox
    ):
        # Two fleets waiting on one VIN: neither takes the vehicle from a webhook
        # (VINs are not secret); polling, where Volteras says who was first, settles it.
        fleet_a = Fleet.objects.create(name="A", slug="a")
        fleet_b = Fleet.objects.create(name="B", slug="b")
        up_a = make_upload(fleet_a)
        up_b = make_upload(fleet_b)
        vin = fake_vin("VOLKSWAGEN", "every-fleet")
        _, result = connect(api, vin)
        waiting_a = add_entry(up_a, VinStatus.PROCESSING, vin=vin, make="VOLKSWAGEN")
        waiting_b = add_entry(up_b, VinStatus.CONNECTION_REQUIRED, vin=vin, make="VOLKSWAGEN")
        old_error = add_entry(
            up_b, VinStatus.ERROR, vin=vin, make="VOLKSWAGEN", error_codes=["OEM_VEHICLE_OFFLINE"]
        )
        replaced = add_entry(up_a, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN", superseded=True)
        other_vehicle = add_entry(
            up_a, VinStatus.DISCONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id="older-vehicle"
        )

        deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        drain()

        statuses = {
            e.pk: e.status
            for e in VinEntry.objects.filter(
                pk__in=[waiting_a.pk, waiting_b.pk, old_error.pk, replaced.pk, other_vehicle.pk]
            )
        }
        assert statuses == {
            waiting_a.pk: VinStatus.PROCESSING,
            waiting_b.pk: VinStatus.CONNECTION_REQUIRED,
            old_error.pk: VinStatus.ERROR,
            replaced.pk: VinStatus.PENDING,
            other_vehicle.pk: VinStatus.DISCONNECTED,
        }

    def test_late_connected_after_disconnect_leaves_it_disconnected(
        self, client, api, sandbox, upload
    ):
        vin = fake_vin("VOLKSWAGEN", "reordered")
        _, result = connect(api, vin)
        entry = add_entry(
            upload, VinStatus.CONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=result.vehicle_id
        )
        api.disconnect_vehicle(result.vehicle_id)

        disconnected = deliver(
            client, sandbox.webhook_secret, "device.disconnected", result.vehicle_id
        )
        late = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        # Processed in the order they arrived: the late connected event last.
        assert process_event(disconnected.pk) == "processed"
        assert process_event(late.pk) == "processed"
        drain()

        entry.refresh_from_db()
        assert entry.status == VinStatus.DISCONNECTED
        changes = webhook_events(entry)
        assert [(c.status_from, c.status_to) for c in changes] == [
            (VinStatus.CONNECTED, VinStatus.DISCONNECTED)
        ]
        late.refresh_from_db()
        disconnected.refresh_from_db()
        assert late.state == disconnected.state == WebhookEvent.State.PROCESSED
        assert late.api_status == "DISCONNECTED"
        assert late.entries_changed == 0
        assert Vehicle.objects.get(volteras_id=result.vehicle_id).disconnected

    def test_reordered_the_other_way_round_ends_the_same(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "reordered-2")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PROCESSING, vin=vin, make="VOLKSWAGEN")
        api.disconnect_vehicle(result.vehicle_id)
        # The connected event is processed only after the vehicle was disconnected.
        deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        drain()
        entry.refresh_from_db()
        # Not connected (the API says disconnected), and a pending entry without
        # a vehicle id is not marked disconnected by VIN alone.
        assert entry.status == VinStatus.PROCESSING

    def test_vehicle_unknown_to_the_api_is_disconnected(self, client, api, sandbox, upload):
        entry = add_entry(
            upload,
            VinStatus.CONNECTED,
            vin=fake_vin("VOLKSWAGEN", "gone"),
            make="VOLKSWAGEN",
            vehicle_id="veh-gone",
        )
        event = deliver(client, sandbox.webhook_secret, "device.disconnected", "veh-gone")
        drain()
        entry.refresh_from_db()
        assert entry.status == VinStatus.DISCONNECTED
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert event.api_status.startswith("NOT FOUND")
        assert not UnmatchedVehicle.objects.exists()

    def test_duplicates_have_one_effect(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "dup")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        for _ in range(3):
            deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id, "m1")
        # A second message for the same change (Svix retried with a new id).
        deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id, "m2")
        drain()
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED
        assert len(webhook_events(entry)) == 1
        assert WebhookEvent.objects.get(svix_id="m1").duplicates == 2
        assert WebhookEvent.objects.count() == 2

    def test_unmatched_vehicle_is_kept_for_support(self, client, api, sandbox, support, upload):
        vin = fake_vin("VOLKSWAGEN", "stranger")
        _, result = connect(api, vin)
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        drain()
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert event.entries_matched == 0
        assert event.is_unmatched
        unmatched = UnmatchedVehicle.objects.get(volteras_id=result.vehicle_id)
        assert (unmatched.vin, unmatched.api_status) == (vin, "CONNECTED")
        assert unmatched.api_answer["vin"] == vin
        assert unmatched.last_event == event

        client.force_login(support)
        page = client.get(reverse("webhook_unmatched")).content.decode()
        assert result.vehicle_id in page and vin in page
        shown = client.get(reverse("webhook_events"), {"status": "unmatched"}).context["page"]
        assert [e.pk for e in shown] == [event.pk]

        # Once the VIN is uploaded, processing the event again matches it.
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        response = client.post(reverse("webhook_event_process", args=[event.pk]))
        assert response.status_code == 302
        drain()
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED
        assert not UnmatchedVehicle.objects.exists()

    def test_vehicle_shared_through_a_consent_account_is_not_unmatched(
        self, client, api, sandbox, fleet
    ):
        link = api.connect_account(scopes=["vehicle:all"], device_types=["VEHICLE"])
        answer = httpx.post(
            link,
            data={
                "decision": "approve",
                "make": "VOLKSWAGEN",
                "username": "owner",
                "vehicles": [fake_vin("VOLKSWAGEN", "owner|0")],
            },
        )
        assert answer.status_code == 200, answer.text
        (account,) = api.list_accounts()
        (vehicle,) = api.list_vehicles()
        assert vehicle.account_id == account.id
        ConnectedAccount.objects.create(fleet=fleet, volteras_id=account.id)

        event = deliver(client, sandbox.webhook_secret, "device.connected", vehicle.id)
        drain()
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert not UnmatchedVehicle.objects.exists()
        # No entry matched, yet the log does not call it unmatched either.
        assert event.entries_matched == 0 and not event.is_unmatched
        assert Vehicle.objects.get(volteras_id=vehicle.id).account_id == account.id

    def test_unknown_type_is_not_processed(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "renamed")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        event = deliver(client, sandbox.webhook_secret, "device.renamed", result.vehicle_id)
        drain()
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.IGNORED
        entry.refresh_from_db()
        assert entry.status == VinStatus.PENDING

    def test_worker_killed_mid_processing_loses_nothing(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "crash")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)

        # A worker claims the event and dies before finishing it.
        assert WebhookEvent.claim(event.pk) is not None
        drain()  # the queued task finds the event leased to someone else
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSING
        assert redrive_webhook_events() == 0

        with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=False):
            assert redrive_webhook_events() == 1
            assert redrive_webhook_events() == 0  # one drain waiting is enough
            drain()
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert event.attempts == 2
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED

    def test_lost_task_is_redriven(self, client, api, sandbox, upload):
        from django_tasks_db.models import DBTaskResult

        vin = fake_vin("VOLKSWAGEN", "lost-task")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        DBTaskResult.objects.all().delete()
        with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=False):
            assert redrive_webhook_events() == 1
            drain()
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED

    def test_api_failure_is_retried_later(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "flaky")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        sandbox.control(
            faults=[{"kind": "error", "path_prefix": "/v1/vehicles/", "method": "GET", "count": 1}]
        )
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        drain(include_future=False)
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.RECEIVED
        assert "SERVER_ERROR" in event.error
        assert event.next_attempt_at > timezone.now()
        assert redrive_webhook_events() == 0  # not due yet

        with time_machine.travel(event.next_attempt_at + timedelta(seconds=1), tick=False):
            assert redrive_webhook_events() == 1
            drain()
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.PROCESSED
        assert event.attempts == 2
        entry.refresh_from_db()
        assert entry.status == VinStatus.CONNECTED

    def test_process_event_twice_is_harmless(self, client, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "twice")
        _, result = connect(api, vin)
        add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        assert process_event(event.pk) == "processed"
        assert process_event(event.pk) == "not due"
        assert VinEvent.objects.filter(source=Source.WEBHOOK).count() == 1

    def test_older_read_never_overwrites_a_fresher_one(self, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "stale-read")
        _, result = connect(api, vin)
        entry = add_entry(
            upload, VinStatus.DISCONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=result.vehicle_id
        )
        # Another worker already applied a read taken after this one starts.
        Vehicle.objects.create(
            volteras_id=result.vehicle_id,
            vin=vin,
            connection_status="DISCONNECTED",
            disconnected=True,
            last_seen_at=timezone.now() + timedelta(seconds=30),
        )
        applied = apply_vehicle(result.vehicle_id, Source.WEBHOOK)
        assert applied.stale
        entry.refresh_from_db()
        assert entry.status == VinStatus.DISCONNECTED


@pytest.mark.django_db
class TestReconciliation:
    def test_heals_a_connection_whose_webhook_never_came(self, api, sandbox, upload):
        sandbox.control(pending_seconds=3600)
        vin = magic_vin("PEND1NG1", "R1")
        connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        (vehicle_id,) = sandbox.connect_pending()
        assert sandbox.deliveries()[-1]["attempts"] == []  # nothing was delivered

        report = reconcile()
        assert report.changes == 1
        entry.refresh_from_db()
        assert (entry.status, entry.vehicle_id) == (VinStatus.CONNECTED, vehicle_id)
        (healed,) = entry.events.filter(source=Source.RECONCILIATION)
        assert healed.get_source_display() == "Found by reconciliation"
        assert healed.status_to == VinStatus.CONNECTED

    def test_heals_a_missed_disconnect(self, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "missed-disconnect")
        _, result = connect(api, vin)
        still = fake_vin("VOLKSWAGEN", "still-connected")
        _, other = connect(api, still)
        entry = add_entry(
            upload, VinStatus.CONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=result.vehicle_id
        )
        kept = add_entry(
            upload, VinStatus.CONNECTED, vin=still, make="VOLKSWAGEN", vehicle_id=other.vehicle_id
        )
        api.disconnect_vehicle(result.vehicle_id)

        report = reconcile()
        assert report.vehicles_listed == 1
        assert report.vehicles_read == 1
        entry.refresh_from_db()
        kept.refresh_from_db()
        assert entry.status == VinStatus.DISCONNECTED
        assert kept.status == VinStatus.CONNECTED
        assert entry.events.filter(source=Source.RECONCILIATION).count() == 1
        assert reconcile().changes == 0  # nothing left to heal

    def test_never_undoes_a_fresher_webhook(self, api, sandbox, upload):
        vin = fake_vin("VOLKSWAGEN", "fresher-webhook")
        _, result = connect(api, vin)
        entry = add_entry(
            upload, VinStatus.DISCONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=result.vehicle_id
        )
        # A webhook's read, applied while the list was being read, said disconnected.
        Vehicle.objects.create(
            volteras_id=result.vehicle_id,
            vin=vin,
            connection_status="DISCONNECTED",
            disconnected=True,
            last_seen_at=timezone.now() + timedelta(minutes=1),
        )
        report = reconcile()
        assert report.vehicles_listed == 1
        assert report.changes == 0
        entry.refresh_from_db()
        assert entry.status == VinStatus.DISCONNECTED
        assert Vehicle.objects.get(volteras_id=result.vehicle_id).connection_status == (
            "DISCONNECTED"
        )

    def test_rereads_the_group_of_vins_still_waiting(self, api, sandbox, upload):
        vin = magic_vin("1NC0MP11", "G1")
        group, _ = connect(api, vin)
        batch = ConnectBatch.objects.create(
            upload=upload, number=1, state=ConnectBatch.State.DONE, group_id=group.id
        )
        entry = add_entry(upload, VinStatus.PROCESSING, vin=vin, make="VOLKSWAGEN", batch=batch)

        report = reconcile()
        assert report.groups_read == 1
        entry.refresh_from_db()
        assert entry.status == VinStatus.INCOMPATIBLE
        assert entry.error_codes == ["OEM_VEHICLE_NOT_COMPATIBLE"]
        assert entry.events.filter(source=Source.RECONCILIATION).count() == 1

    def test_runs_once_per_interval_however_many_workers_sweep(self, api, sandbox, settings):
        settings.RECONCILE_INTERVAL_SECONDS = 600
        start = datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)
        with time_machine.travel(start, tick=False):
            assert reconcile_when_due() == 1
            assert reconcile_when_due() == 0
            drain()
        run = ReconciliationRun.objects.get()
        assert run.state == ReconciliationRun.State.DONE
        assert run.finished_at is not None
        with time_machine.travel(start + timedelta(seconds=590), tick=False):
            assert reconcile_when_due() == 0
        with time_machine.travel(start + timedelta(seconds=600), tick=False):
            assert reconcile_when_due() == 1

    def test_a_failed_run_is_recorded(self, api, sandbox):
        sandbox.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles", "method": "GET"}])
        assert reconcile_when_due() == 1
        drain()
        run = ReconciliationRun.objects.get()
        assert run.state == ReconciliationRun.State.FAILED
        assert "SERVER_ERROR" in run.error


@pytest.fixture
def manager_user(manager) -> User:
    return manager


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_and_redeliveries_have_one_effect(api, sandbox, fleet):
    """Four workers race for each event, and every message arrives twice at
    once: each VIN still moves exactly once."""
    from django.db import connection
    from django.test import Client

    upload = make_upload(fleet)
    sandbox.control(faults=[{"kind": "latency", "ms": 200, "path_prefix": "/v1/vehicles/"}])
    vehicles = []
    for n in range(3):
        vin = fake_vin("VOLKSWAGEN", f"race-{n}")
        _, result = connect(api, vin)
        add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        vehicles.append(result.vehicle_id)

    def run_all(jobs) -> list:
        barrier = threading.Barrier(len(jobs))
        outcomes: list = []

        def run(job):
            barrier.wait()
            try:
                outcomes.append(job())
            finally:
                connection.close()  # this thread's own connection

        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    statuses = run_all(
        [
            lambda vid=vehicle_id: (
                deliver(Client(), sandbox.webhook_secret, "device.connected", vid, f"msg-{vid}").pk
            )
            for vehicle_id in vehicles
            for _ in range(2)
        ]
    )
    assert len(set(statuses)) == 3
    for event in WebhookEvent.objects.all():
        outcomes = run_all([lambda pk=event.pk: process_event(pk) for _ in range(4)])
        assert sorted(outcomes) == ["not due", "not due", "not due", "processed"]
    assert sorted(WebhookEvent.objects.values_list("duplicates", flat=True)) == [1, 1, 1]
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTED}
    assert VinEvent.objects.filter(source=Source.WEBHOOK).count() == 3
