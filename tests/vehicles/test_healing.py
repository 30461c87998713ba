"""Bounded reconciliation, give-ups and the unmatched record, against the
running sandbox (real HTTP): what keeps webhook-driven state true at scale.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from connections.jobs import drain
from connections.models import (
    ConnectBatch,
    ConnectedAccount,
    ReconciliationRun,
    Source,
    UnmatchedVehicle,
    Vehicle,
    VinEntry,
    VinStatus,
    WebhookEvent,
)
from connections.models.webhooks import MAX_EVENT_ATTEMPTS
from connections.sending.results import apply_result
from connections.vehicles import reconcile as reconcile_module
from connections.vehicles.reconcile import execute_run, reconcile, start_run, waits_for_webhooks
from connections.vehicles.tasks import run_reconciliation
from connections.webhooks.process import NOT_FOUND_RETRIES, process_event
from connections.webhooks.tasks import redrive_webhook_events
from sandbox.rules import fake_vin
from tests.factories import add_entry, magic_vin
from tests.flows import connect, deliver

LATER = datetime(2099, 1, 5, 10, 0, 5, tzinfo=UTC)


def run_once(at: datetime) -> ReconciliationRun:
    """One interval's run, as a worker's sweep starts and executes it."""
    with time_machine.travel(at, tick=False):
        run = start_run()
        assert run is not None
        assert execute_run(run.pk) == "done"
    run.refresh_from_db()
    return run


@pytest.mark.django_db
class TestReconciliationAfterWebhooks:
    def test_a_run_lets_delivered_events_go_first_for_half_an_interval(self, settings):
        from django_tasks import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        settings.RECONCILE_INTERVAL_SECONDS = 600
        created = timezone.now()
        event = WebhookEvent.objects.create(
            svix_id="msg_waiting",
            event_type="device.connected",
            vehicle_id="veh-1",
            next_attempt_at=created,
        )
        with time_machine.travel(created, tick=False):
            run = start_run()
            assert run_reconciliation.call(run.pk) == "waiting for webhook events"
        run.refresh_from_db()
        assert run.state == ReconciliationRun.State.QUEUED
        (again,) = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        assert again.task_path == "connections.vehicles.tasks.run_reconciliation"
        assert again.run_after == created + timedelta(seconds=2)

        # Half an interval later a backlog no longer holds it back.
        with time_machine.travel(created + timedelta(seconds=301), tick=False):
            assert WebhookEvent.objects.due().filter(pk=event.pk).exists()
            assert waits_for_webhooks(run.pk) is False

    def test_a_run_goes_ahead_once_no_event_is_waiting(self, api):
        WebhookEvent.objects.create(
            svix_id="msg_done",
            vehicle_id="veh-1",
            state=WebhookEvent.State.PROCESSED,
            processed_at=timezone.now(),
        )
        run = start_run()
        assert waits_for_webhooks(run.pk) is False
        assert execute_run(run.pk) == "done"


@pytest.mark.django_db
class TestBoundedReconciliation:
    def test_every_row_is_healed_within_a_bounded_number_of_runs(
        self, api, sandbox, upload, fleet, settings
    ):
        settings.RECONCILE_INTERVAL_SECONDS = 600
        settings.RECONCILE_MAX_VEHICLE_READS = 1
        settings.RECONCILE_MAX_GROUP_READS = 1
        # Three connected VINs whose device.disconnected never came...
        gone = []
        for n in range(3):
            vin = fake_vin("VOLKSWAGEN", f"bounded-{n}")
            _, result = connect(api, vin)
            gone.append(
                add_entry(
                    upload,
                    VinStatus.CONNECTED,
                    vin=vin,
                    make="VOLKSWAGEN",
                    vehicle_id=result.vehicle_id,
                )
            )
            api.disconnect_vehicle(result.vehicle_id)
        # ...a vehicle shared through a consent account, with no VIN entry...
        _, shared = connect(api, fake_vin("VOLKSWAGEN", "bounded-shared"))
        account = ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-bounded")
        Vehicle.objects.create(
            volteras_id=shared.vehicle_id,
            vin=fake_vin("VOLKSWAGEN", "bounded-shared"),
            connection_status="CONNECTED",
            account_id=account.volteras_id,
            last_seen_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        api.disconnect_vehicle(shared.vehicle_id)
        # ...and three groups whose results polling never picked up.
        waiting = []
        for n in range(3):
            vin = magic_vin("1NC0MP11", f"B{n}")
            group, _ = connect(api, vin)
            batch = ConnectBatch.objects.create(
                upload=upload, number=n + 1, state=ConnectBatch.State.DONE, group_id=group.id
            )
            waiting.append(
                add_entry(upload, VinStatus.PROCESSING, vin=vin, make="VOLKSWAGEN", batch=batch)
            )

        def healed() -> tuple[int, int, bool]:
            disconnected = sum(e.status == VinStatus.DISCONNECTED for e in map(refreshed, gone))
            incompatible = sum(e.status == VinStatus.INCOMPATIBLE for e in map(refreshed, waiting))
            return (
                disconnected,
                incompatible,
                Vehicle.objects.get(volteras_id=shared.vehicle_id).disconnected,
            )

        # Runs happen after the rows above were written (a result read before a
        # VIN's last change is not applied), just past an interval's start.
        start = LATER
        first = run_once(start)
        assert (first.vehicles_read, first.groups_read) == (1, 1)  # the caps hold
        disconnected, incompatible, shared_healed = healed()
        # One vehicle (whichever id sorts first) and one group.
        assert (disconnected + shared_healed, incompatible) == (1, 1)
        # Four vehicles and three groups to read, one of each a run: four runs.
        for n in range(1, 4):
            run_once(start + timedelta(seconds=600 * n))
        assert healed() == (3, 3, True)
        for entry in gone:
            assert entry.events.filter(source=Source.RECONCILIATION).count() == 1

    def test_the_cursor_wraps_round(self, api, sandbox, upload, settings):
        settings.RECONCILE_INTERVAL_SECONDS = 600
        settings.RECONCILE_MAX_VEHICLE_READS = 2
        for n, vehicle_id in enumerate(["veh-a", "veh-b", "veh-c"]):
            vin = fake_vin("VOLKSWAGEN", f"wrap-{n}")
            add_entry(
                upload, VinStatus.CONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=vehicle_id
            )
        # Every single-vehicle read fails, so all three stay to be read.
        sandbox.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles/"}])
        # Runs happen after the rows above were written (a result read before a
        # VIN's last change is not applied), just past an interval's start.
        start = LATER
        runs = [run_once(start + timedelta(seconds=600 * n)) for n in range(3)]
        assert [r.vehicles_read for r in runs] == [2, 2, 2]
        assert [r.vehicle_cursor for r in runs] == ["veh-b", "veh-a", "veh-c"]
        assert "veh-a: " in runs[1].error and "veh-c: " in runs[1].error

    def test_a_group_read_never_undoes_a_change_made_after_it(
        self, api, sandbox, upload, monkeypatch
    ):
        """A webhook connects the VIN after the group's results were read but
        before they are applied: the older PENDING is not written over it."""

        vin = magic_vin("PR0C11", "race")
        group, _ = connect(api, vin)
        batch = ConnectBatch.objects.create(
            upload=upload, number=1, state=ConnectBatch.State.DONE, group_id=group.id
        )
        entry = add_entry(upload, VinStatus.PROCESSING, vin=vin, make="VOLKSWAGEN", batch=batch)
        real = apply_result

        def webhook_first(target, result, source, **kwargs):
            with time_machine.travel(LATER + timedelta(seconds=1), tick=False):
                VinEntry.objects.get(pk=target.pk).observe(
                    VinStatus.CONNECTED, Source.WEBHOOK, vehicle_id="veh-race"
                )
            return real(target, result, source, **kwargs)

        monkeypatch.setattr(reconcile_module, "apply_result", webhook_first)
        run = run_once(LATER)
        assert run.groups_read == 1
        assert refreshed(entry).status == VinStatus.CONNECTED
        assert not entry.events.filter(source=Source.RECONCILIATION).exists()


def refreshed(entry):
    entry.refresh_from_db()
    return entry


@pytest.mark.django_db
class TestGivingUp:
    def test_an_event_that_keeps_killing_its_worker_is_failed(
        self, client, api, sandbox, upload, support
    ):
        vin = fake_vin("VOLKSWAGEN", "poison")
        _, result = connect(api, vin)
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)

        now = timezone.now()
        for n in range(MAX_EVENT_ATTEMPTS):
            # A worker claims it and dies; the lease runs out.
            with time_machine.travel(now + timedelta(minutes=3 * n), tick=False):
                assert WebhookEvent.claim(event.pk) is not None
        with time_machine.travel(now + timedelta(minutes=3 * MAX_EVENT_ATTEMPTS), tick=False):
            assert WebhookEvent.claim(event.pk) is None
            assert not WebhookEvent.objects.due().exists()
            assert redrive_webhook_events() == 0
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.FAILED
        assert f"Gave up after {MAX_EVENT_ATTEMPTS} attempts" in event.error
        assert refreshed(entry).status == VinStatus.PENDING

        client.force_login(support)
        failed = client.get(reverse("webhook_events"), {"status": "failed"}).context["page"]
        assert [e.pk for e in failed] == [event.pk]
        detail = client.get(reverse("webhook_event", args=[event.pk])).content.decode()
        assert "Gave up after" in detail and "worker" in detail

        client.post(reverse("webhook_event_process", args=[event.pk]))
        drain()
        event.refresh_from_db()
        assert (event.state, event.attempts, event.error) == (
            WebhookEvent.State.PROCESSED,
            1,
            "",
        )
        assert refreshed(entry).status == VinStatus.CONNECTED


@pytest.mark.django_db
class TestNotFound:
    def test_a_connected_vehicle_the_api_does_not_know_yet_is_read_again(
        self, client, api, sandbox, upload
    ):
        entry = add_entry(
            upload,
            VinStatus.CONNECTED,
            vin=fake_vin("VOLKSWAGEN", "lagging"),
            make="VOLKSWAGEN",
            vehicle_id="veh-lag",
        )
        event = deliver(client, sandbox.webhook_secret, "device.connected", "veh-lag")
        at = timezone.now()
        for _ in range(NOT_FOUND_RETRIES):
            with time_machine.travel(at, tick=False):
                assert process_event(event.pk) == "retry"
            event.refresh_from_db()
            assert event.state == WebhookEvent.State.RECEIVED
            assert "does not know this vehicle yet (404)" in event.error
            assert event.next_attempt_at > at
            assert refreshed(entry).status == VinStatus.CONNECTED  # not concluded yet
            at = event.next_attempt_at + timedelta(seconds=1)
        # The retries spent: the API no longer knows it, so it is disconnected.
        with time_machine.travel(at, tick=False):
            assert process_event(event.pk) == "processed"
        event.refresh_from_db()
        assert event.attempts == NOT_FOUND_RETRIES + 1
        assert event.api_status.startswith("NOT FOUND")
        assert refreshed(entry).status == VinStatus.DISCONNECTED

    def test_untyped_404_of_a_vehicle_read_before_is_disconnected_at_once(
        self, client, api, sandbox, upload
    ):
        entry = add_entry(
            upload,
            VinStatus.CONNECTED,
            vin=fake_vin("VOLKSWAGEN", "known"),
            make="VOLKSWAGEN",
            vehicle_id="veh-known",
        )
        Vehicle.objects.create(volteras_id="veh-known", connection_status="CONNECTED")
        event = deliver(client, sandbox.webhook_secret, "", "veh-known")
        assert process_event(event.pk) == "processed"
        assert refreshed(entry).status == VinStatus.DISCONNECTED

    def test_untyped_404_of_a_vehicle_never_read_waits(self, client, api, sandbox, upload):
        event = deliver(client, sandbox.webhook_secret, "", "veh-new")
        assert process_event(event.pk) == "retry"


@pytest.mark.django_db
class TestUnmatchedRecord:
    def stranger(self, client, api, sandbox, seed: str):
        vin = fake_vin("VOLKSWAGEN", seed)
        _, result = connect(api, vin)
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        assert process_event(event.pk) == "processed"
        event.refresh_from_db()
        assert event.is_unmatched
        return vin, result.vehicle_id, event

    def test_a_stale_read_leaves_the_unmatched_row_alone(self, client, api, sandbox):
        _, vehicle_id, _ = self.stranger(client, api, sandbox, "stale-stranger")
        # A fresher read was applied meanwhile by another worker.
        Vehicle.objects.filter(volteras_id=vehicle_id).update(
            last_seen_at=timezone.now() + timedelta(minutes=1)
        )
        late = deliver(client, sandbox.webhook_secret, "device.connected", vehicle_id)
        assert process_event(late.pk) == "processed"
        late.refresh_from_db()
        assert "fresher read" in late.result
        assert UnmatchedVehicle.objects.filter(volteras_id=vehicle_id).exists()
        assert late.is_unmatched  # the marker follows the record

    def test_a_stale_read_of_a_matched_vehicle_is_not_marked_unmatched(
        self, client, api, sandbox, upload
    ):
        vin = fake_vin("VOLKSWAGEN", "stale-matched")
        _, result = connect(api, vin)
        add_entry(
            upload, VinStatus.CONNECTED, vin=vin, make="VOLKSWAGEN", vehicle_id=result.vehicle_id
        )
        Vehicle.objects.create(
            volteras_id=result.vehicle_id,
            vin=vin,
            connection_status="CONNECTED",
            last_seen_at=timezone.now() + timedelta(minutes=1),
        )
        event = deliver(client, sandbox.webhook_secret, "device.connected", result.vehicle_id)
        assert process_event(event.pk) == "processed"
        event.refresh_from_db()
        assert event.entries_matched == 0
        assert not event.is_unmatched

    def test_a_vehicle_known_through_an_account_is_not_marked(
        self, client, api, sandbox, fleet, support
    ):
        _, vehicle_id, _ = self.stranger(client, api, sandbox, "via-account")
        ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1")
        Vehicle.objects.filter(volteras_id=vehicle_id).update(account_id="acc-1")
        client.force_login(support)
        # Known now: off the page at once, though the row waits for reconciliation.
        page = client.get(reverse("webhook_unmatched")).content.decode()
        assert vehicle_id not in page
        assert UnmatchedVehicle.objects.filter(volteras_id=vehicle_id).exists()

    def test_a_vehicle_matched_later_through_polling_is_cleared(
        self, client, api, sandbox, upload, support
    ):
        vin, vehicle_id, event = self.stranger(client, api, sandbox, "polled-later")
        # Polling (not a webhook) later learns this VIN entry's vehicle.
        entry = add_entry(upload, VinStatus.PENDING, vin=vin, make="VOLKSWAGEN")
        entry.observe(VinStatus.CONNECTED, Source.POLL, vehicle_id=vehicle_id)

        client.force_login(support)
        assert vehicle_id not in client.get(reverse("webhook_unmatched")).content.decode()
        reconcile()
        assert not UnmatchedVehicle.objects.exists()
        event.refresh_from_db()
        assert not event.is_unmatched
        shown = client.get(reverse("webhook_events"), {"status": "unmatched"}).context["page"]
        assert list(shown) == []
