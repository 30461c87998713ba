"""Webhook intake (`POST /webhooks/volteras/`) and the support delivery log.

Events are signed by the real `svix` library. Processing against the API
lives in test_processing.py.
"""

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from svix.webhooks import Webhook

from connections.jobs import WATCH_EVERY, watch
from connections.models import RefusedDelivery, WebhookEvent
from connections.webhooks import process as webhooks_process
from connections.webhooks.process import prune_refused_deliveries
from connections.webhooks.tasks import redrive_webhook_events
from connections.webhooks.views import MAX_BODY_BYTES, PAGE_SIZE
from tests.permissions import assert_access

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
URL = "/webhooks/volteras/"


def event_body(event_type: str = "device.connected", vehicle_id: str = "veh-1") -> str:
    return json.dumps(
        {
            "type": event_type,
            "timestamp": "2026-11-25T10:00:00Z",
            "data": {"id": vehicle_id, "deviceType": "VEHICLE"},
        }
    )


def signed(
    body: str,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, at, body),
    }


def post(client, body: str | bytes, headers: dict[str, str]):
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def queued_tasks() -> int:
    return DBTaskResult.objects.filter(
        status=TaskResultStatus.READY,
        task_path__in=[
            "connections.webhooks.tasks.process_due_webhook_events",
            "connections.webhooks.tasks.process_webhook_event",
        ],
    ).count()


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.VOLTERAS_WEBHOOK_SECRET = SECRET


def statements_of(client, body: str, headers: dict[str, str]) -> tuple[object, list[str]]:
    """The response to one delivery and the SQL it ran."""
    with CaptureQueriesContext(connection) as queries:
        response = post(client, body, headers)
    return response, [query["sql"] for query in queries.captured_queries]


@pytest.mark.django_db
class TestIntake:
    def test_valid_event_is_stored_due_in_one_statement(self, client):
        body = event_body("device.connected", "veh-42")
        headers = signed(body, msg_id="msg_valid")
        response, sql = statements_of(client, body, {**headers, "User-Agent": "Svix-Webhooks/1.0"})
        assert response.status_code == 200
        assert response.json() == {"status": "accepted"}
        # One INSERT, committed on its own (autocommit): no enqueue, no second query.
        assert len(sql) == 1 and sql[0].startswith("INSERT INTO")
        event = WebhookEvent.objects.get()
        assert event.svix_id == "msg_valid"
        assert event.event_type == "device.connected"
        assert event.vehicle_id == "veh-42"
        assert event.body == body
        assert event.state == WebhookEvent.State.RECEIVED
        assert event.headers["svix-timestamp"] == headers["svix-timestamp"]
        assert "svix-signature" not in event.headers
        assert event.source_address == "127.0.0.1"
        assert event.headers["user-agent"] == "Svix-Webhooks/1.0"
        assert event.headers["content-type"] == "application/json"
        # Due for the workers' watch, which enqueues the drain.
        assert list(WebhookEvent.objects.due()) == [event]
        assert queued_tasks() == 0
        assert redrive_webhook_events() == 1
        assert queued_tasks() == 1
        assert RefusedDelivery.objects.count() == 0

    @pytest.mark.django_db(transaction=True)
    def test_the_event_is_committed_before_the_answer(self, client):
        seen = []

        def spy(execute, sql, params, many, context):
            seen.append((sql.split()[0], connection.get_autocommit(), connection.in_atomic_block))
            return execute(sql, params, many, context)

        body = event_body()
        with connection.execute_wrapper(spy):
            response = post(client, body, signed(body))
        assert response.status_code == 200
        # Its one statement ran in autocommit, in no transaction: committed by
        # the time it returned, before the 2xx was built.
        assert seen == [("INSERT", True, False)]

    @pytest.mark.django_db(transaction=True)
    def test_the_insert_is_the_health_check_of_a_kept_connection(self, client, monkeypatch):
        body = event_body()
        post(client, body, signed(body))  # the connection is open and kept
        checks = []
        monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or True)
        connection.close_if_unusable_or_obsolete()  # as a new request starts
        assert connection.health_check_enabled and not connection.health_check_done
        body = event_body(vehicle_id="veh-2")
        response, sql = statements_of(client, body, signed(body))
        assert response.json() == {"status": "accepted"}
        # No `SELECT 1` round trip before the one statement.
        assert checks == [] and len(sql) == 1

    @pytest.mark.postgres_only
    @pytest.mark.django_db(transaction=True)
    def test_a_kept_connection_found_dead_is_replaced(self, client):
        from django.db import connections

        body = event_body()
        post(client, body, signed(body))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        connection.close_if_unusable_or_obsolete()  # as a new request starts
        # The database drops the kept connection (a restart, an idle timeout).
        other = connections.create_connection("default")
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.close()
        body = event_body(vehicle_id="veh-2")
        response = post(client, body, signed(body, msg_id="msg_after_restart"))
        assert response.json() == {"status": "accepted"}
        assert WebhookEvent.objects.filter(svix_id="msg_after_restart").exists()

    def test_forged_signature_is_refused_and_recorded_without_body(self, client):
        body = event_body()
        response = post(client, body, signed(body, secret=OTHER_SECRET, msg_id="msg_forged"))
        assert response.status_code == 400
        assert WebhookEvent.objects.count() == 0
        assert queued_tasks() == 0
        refused = RefusedDelivery.objects.get()
        assert refused.reason == RefusedDelivery.Reason.BAD_SIGNATURE
        assert refused.claimed_svix_id == "msg_forged"
        assert refused.source_address == "127.0.0.1"
        assert refused.body_size == len(body)
        assert not any(
            "veh-1" in str(getattr(refused, f.name)) for f in RefusedDelivery._meta.fields
        )

    def test_tampered_body_is_refused(self, client):
        body = event_body(vehicle_id="veh-1")
        headers = signed(body)
        response = post(client, event_body(vehicle_id="veh-2"), headers)
        assert response.status_code == 400
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.BAD_SIGNATURE

    def test_missing_headers(self, client):
        response = post(client, event_body(), {})
        assert response.status_code == 400
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.MISSING_HEADERS

    @pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v1"])
    def test_malformed_signature_header_is_a_4xx_not_a_crash(self, client, signature):
        body = event_body()
        headers = {**signed(body), "svix-signature": signature}
        response = post(client, body, headers)
        assert response.status_code == 400
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.BAD_SIGNATURE
        assert WebhookEvent.objects.count() == 0

    @pytest.mark.parametrize("age", [timedelta(minutes=10), timedelta(minutes=-10)])
    def test_stale_or_future_timestamp_is_refused(self, client, age):
        body = event_body()
        response = post(client, body, signed(body, at=datetime.now(UTC) - age))
        assert response.status_code == 400
        refused = RefusedDelivery.objects.get()
        assert refused.reason == RefusedDelivery.Reason.STALE
        assert "timestamp" in refused.detail
        assert WebhookEvent.objects.count() == 0

    def test_replayed_delivery_has_one_effect(self, client):
        body = event_body()
        headers = signed(body, msg_id="msg_twice")
        first = post(client, body, headers)
        # Counted in the same single statement that found the id stored.
        second, sql = statements_of(client, body, headers)
        assert len(sql) == 1 and sql[0].startswith("INSERT INTO")
        # A redelivery signed again later (as Svix does) is the same message too.
        third = post(client, body, signed(body, msg_id="msg_twice"))
        assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
        assert second.json() == {"status": "duplicate"}
        event = WebhookEvent.objects.get()
        assert event.duplicates == 2
        assert event.last_duplicate_at is not None
        assert event.last_duplicate_at > event.received_at
        assert (event.state, event.attempts) == (WebhookEvent.State.RECEIVED, 0)
        assert redrive_webhook_events() == 1
        assert queued_tasks() == 1

    def test_oversize_body_is_refused(self, client):
        body = json.dumps({"type": "device.connected", "pad": "x" * MAX_BODY_BYTES})
        response = post(client, body, signed(body))
        assert response.status_code == 413
        refused = RefusedDelivery.objects.get()
        assert refused.reason == RefusedDelivery.Reason.TOO_LARGE
        assert refused.body_size == len(body)
        assert WebhookEvent.objects.count() == 0

    def test_a_content_length_of_non_ascii_digits_is_no_500(self, client):
        """'²'.isdigit() is True but int('²') fails: such a header must not crash."""
        body = event_body()
        response = client.post(
            URL, data=body, content_type="application/json", headers=signed(body),
            CONTENT_LENGTH="²",
        )  # fmt: skip
        assert response.status_code < 500

    def test_body_at_the_limit_is_accepted(self, client):
        body = event_body()[:-1] + ', "pad": "' + "x" * 100 + '"}'
        body = body[:-2] + "x" * (MAX_BODY_BYTES - len(body)) + body[-2:]
        assert len(body) == MAX_BODY_BYTES
        response = post(client, body, signed(body))
        assert response.status_code == 200

    @pytest.mark.parametrize("body", ["not json at all", "[1, 2, 3]", '"a string"', "{"])
    def test_non_json_or_non_object_body_is_refused(self, client, body):
        response = post(client, body, signed(body))
        assert response.status_code == 400
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.NOT_JSON
        assert WebhookEvent.objects.count() == 0

    def test_non_utf8_body_is_refused(self, client):
        body = b'{"type": "device.connected", "x": "\xff\xfe"}'
        headers = signed("placeholder")
        response = client.post(URL, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400
        assert WebhookEvent.objects.count() == 0

    def test_validly_signed_utf16_body_is_refused_not_a_server_error(self, client):
        # UTF-16 of ASCII text is valid UTF-8 byte for byte (with NULs), so it
        # passes the signature; JSON must be UTF-8, and the row stores text.
        body = event_body().encode("utf-16-le")
        response = client.post(
            URL, data=body, content_type="application/json", headers=signed(body.decode())
        )
        assert response.status_code == 400
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.NOT_JSON
        assert WebhookEvent.objects.count() == 0

    def test_unknown_event_type_is_stored_and_acknowledged(self, client):
        body = event_body("device.renamed", "veh-9")
        response = post(client, body, signed(body))
        assert response.status_code == 200
        event = WebhookEvent.objects.get()
        assert event.event_type == "device.renamed"
        assert event.state == WebhookEvent.State.IGNORED
        assert event.processed_at is not None
        assert queued_tasks() == 0

    def test_untyped_contract_body_is_acted_on(self, client):
        # The contract documents only the inner object; it still names a vehicle.
        body = json.dumps({"id": "veh-7", "deviceType": "VEHICLE"})
        response = post(client, body, signed(body))
        assert response.status_code == 200
        event = WebhookEvent.objects.get()
        assert (event.event_type, event.vehicle_id) == ("", "veh-7")
        assert event.state == WebhookEvent.State.RECEIVED
        assert redrive_webhook_events() == 1

    def test_secret_not_configured_refuses_with_5xx(self, client, settings):
        settings.VOLTERAS_WEBHOOK_SECRET = ""
        body = event_body()
        response = post(client, body, signed(body))
        assert response.status_code == 503
        assert RefusedDelivery.objects.get().reason == RefusedDelivery.Reason.NOT_CONFIGURED

    def test_only_post(self, client):
        assert client.get(URL).status_code == 405
        assert RefusedDelivery.objects.count() == 0

    def test_needs_no_login_or_csrf_token(self, settings):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        body = event_body()
        assert post(strict, body, signed(body)).status_code == 200

    def test_forwarded_address_is_kept_beside_the_peer(self, client):
        body = event_body()
        response = post(client, body, {**signed(body), "X-Forwarded-For": "203.0.113.9, 10.0.0.1"})
        assert response.status_code == 200
        assert WebhookEvent.objects.get().source_address == "203.0.113.9 via 127.0.0.1"


def make_event(**fields) -> WebhookEvent:
    defaults = {
        "svix_id": f"msg_{uuid.uuid4().hex}",
        "event_type": "device.connected",
        "vehicle_id": "veh-1",
        "body": event_body(),
    }
    return WebhookEvent.objects.create(**{**defaults, **fields})


@pytest.mark.django_db
class TestDeliveryLog:
    def test_pages_are_for_support_and_admins_only(self, client, users):
        event = make_event()
        for url in [
            reverse("webhook_events"),
            reverse("webhook_event", args=[event.pk]),
            reverse("webhook_refused"),
            reverse("webhook_unmatched"),
        ]:
            assert_access(client, url, users, member=404, outsider=404, support=200, admin=200)

    def test_process_again_is_for_support_and_admins_only(self, client, users):
        event = make_event(state=WebhookEvent.State.FAILED, attempts=8, error="boom")
        url = reverse("webhook_event_process", args=[event.pk])
        assert_access(
            client, url, users, member=404, outsider=404, support=302, admin=302, method="post"
        )
        event.refresh_from_db()
        assert event.state == WebhookEvent.State.RECEIVED
        assert event.attempts == 0
        assert event.error == ""
        assert queued_tasks() >= 1

    def test_process_again_needs_post(self, client, support):
        event = make_event()
        client.force_login(support)
        assert client.get(reverse("webhook_event_process", args=[event.pk])).status_code == 405

    def test_list_shows_deliveries_with_markers(self, client, support):
        make_event(svix_id="msg_dup", duplicates=2)
        make_event(
            svix_id="msg_unmatched",
            vehicle_id="veh-lost",
            state=WebhookEvent.State.PROCESSED,
            unmatched=True,
            result="no VIN entry in any fleet matches this vehicle",
        )
        make_event(svix_id="msg_failed", state=WebhookEvent.State.FAILED, error="SERVER_ERROR x")
        client.force_login(support)
        page = client.get(reverse("webhook_events")).content.decode()
        assert "duplicate \u00d72" in page
        assert "unmatched" in page
        assert "SERVER_ERROR x" in page
        assert "veh-lost" in page

    def test_filters(self, client, support):
        a = make_event(svix_id="msg_a", event_type="device.connected", vehicle_id="veh-a")
        b = make_event(
            svix_id="msg_b",
            event_type="device.disconnected",
            vehicle_id="veh-b",
            vin="WVWZZZ1KZ8W000001",
            state=WebhookEvent.State.PROCESSED,
            entries_matched=1,
        )
        c = make_event(
            svix_id="msg_c",
            event_type="device.renamed",
            vehicle_id="veh-c",
            state=WebhookEvent.State.IGNORED,
            duplicates=1,
        )
        client.force_login(support)

        def shown(**params) -> set[str]:
            page = client.get(reverse("webhook_events"), params).context["page"]
            return {event.svix_id for event in page}

        assert shown() == {a.svix_id, b.svix_id, c.svix_id}
        assert shown(type="device.disconnected") == {b.svix_id}
        assert shown(status="ignored") == {c.svix_id}
        assert shown(status="duplicate") == {c.svix_id}
        assert shown(status="received") == {a.svix_id}
        assert shown(vehicle="veh-a") == {a.svix_id}
        assert shown(vehicle="wvwzzz1kz8w000001") == {b.svix_id}
        assert shown(type="device.renamed", status="received") == set()

    def test_untyped_events_are_told_apart_by_the_vehicles_state(self, client, support):
        body = json.dumps({"id": "veh-1", "deviceType": "VEHICLE"})
        gone = make_event(
            svix_id="msg_gone",
            event_type="",
            body=body,
            state=WebhookEvent.State.PROCESSED,
            api_status="NOT FOUND (404)",
        )
        back = make_event(
            svix_id="msg_back",
            event_type="",
            body=body,
            state=WebhookEvent.State.PROCESSED,
            api_status="CONNECTED",
        )
        waiting = make_event(svix_id="msg_waiting", event_type="", body=body)
        assert (gone.kind, back.kind, waiting.kind) == (
            "device.disconnected",
            "device.connected",
            "",
        )
        client.force_login(support)

        def shown(**params) -> set[str]:
            page = client.get(reverse("webhook_events"), params).context["page"]
            return {event.svix_id for event in page}

        assert shown(type="device.disconnected") == {"msg_gone"}
        assert shown(type="device.connected") == {"msg_back"}
        page = client.get(reverse("webhook_events")).content.decode()
        assert "(from the vehicle's state)" in page
        detail = client.get(reverse("webhook_event", args=[gone.pk])).content.decode()
        assert "None in the body; the vehicle's state implies device.disconnected" in detail

    def test_detail_shows_payload_and_result(self, client, support):
        event = make_event(
            state=WebhookEvent.State.PROCESSED,
            api_status="DISCONNECTED",
            result="Volteras says DISCONNECTED: 1 of 1 matching entries changed",
        )
        client.force_login(support)
        page = client.get(reverse("webhook_event", args=[event.pk])).content.decode()
        assert "&quot;deviceType&quot;: &quot;VEHICLE&quot;" in page
        assert "Volteras says DISCONNECTED: 1 of 1" in page
        assert "Process again" in page

    def test_refused_page_lists_refusals(self, client, support):
        body = event_body()
        post(client, body, signed(body, secret=OTHER_SECRET, msg_id="msg_evil"))
        client.force_login(support)
        page = client.get(reverse("webhook_refused")).content.decode()
        assert "Signature does not match" in page
        assert "msg_evil" in page

    def test_refused_page_is_paginated(self, client, support):
        RefusedDelivery.objects.bulk_create(
            RefusedDelivery(reason=RefusedDelivery.Reason.BAD_SIGNATURE, claimed_svix_id=f"m{n}")
            for n in range(PAGE_SIZE + 1)
        )
        client.force_login(support)
        first = client.get(reverse("webhook_refused")).context["page"]
        last = client.get(reverse("webhook_refused"), {"page": 2}).context["page"]
        assert (len(first), len(last)) == (PAGE_SIZE, 1)
        assert client.get(reverse("webhook_refused"), {"page": "junk"}).status_code == 200


@pytest.mark.django_db
class TestAdmin:
    def test_changelists_and_process_again_action(self, client, admin_user):
        event = make_event(state=WebhookEvent.State.FAILED, attempts=8)
        client.force_login(admin_user)
        for model in ["webhookevent", "refuseddelivery", "unmatchedvehicle", "reconciliationrun"]:
            response = client.get(reverse(f"admin:connections_{model}_changelist"))
            assert response.status_code == 200, model
        assert client.get(reverse("admin:connections_webhookevent_add")).status_code == 403
        response = client.post(
            reverse("admin:connections_webhookevent_changelist"),
            {"action": "process_again", "_selected_action": [event.pk]},
        )
        assert response.status_code == 302
        event.refresh_from_db()
        assert (event.state, event.attempts) == (WebhookEvent.State.RECEIVED, 0)
        assert queued_tasks() == 1


@pytest.mark.django_db
class TestRedrive:
    def test_sweep_runs_the_webhook_sweepers(self):
        from connections.jobs import sweep

        done = sweep()
        assert done["redrive_webhook_events"] == 0
        assert done["reconcile_when_due"] in (0, 1)
        assert done["prune_refused_deliveries"] == 0

    def test_the_sweep_prunes_old_refusals(self, client, settings):
        from connections.jobs import sweep

        settings.WEBHOOK_REFUSED_RETENTION_DAYS = 7
        now = timezone.now()
        for days in (30, 8, 6):
            RefusedDelivery.objects.create(
                reason=RefusedDelivery.Reason.MISSING_HEADERS,
                claimed_svix_id=f"{days}-days",
                at=now - timedelta(days=days),
            )
        post(client, event_body(), {})  # an unsigned POST now: recorded, kept
        assert sweep()["prune_refused_deliveries"] == 2
        assert set(RefusedDelivery.objects.values_list("claimed_svix_id", flat=True)) == {
            "6-days",
            "",
        }
        assert sweep()["prune_refused_deliveries"] == 0

    def test_pruning_is_bounded_per_sweep(self, monkeypatch):
        monkeypatch.setattr(webhooks_process, "PRUNE_CHUNK", 2)
        old = timezone.now() - timedelta(days=365)
        RefusedDelivery.objects.bulk_create(
            RefusedDelivery(reason=RefusedDelivery.Reason.STALE, at=old) for _ in range(3)
        )
        assert prune_refused_deliveries() == 2
        assert prune_refused_deliveries() == 1
        assert not RefusedDelivery.objects.exists()

    def test_a_burst_costs_one_drain_task_and_a_lost_one_is_replaced(self, client):
        for n in range(5):
            body = event_body(vehicle_id=f"veh-{n}")
            assert post(client, body, signed(body)).status_code == 200
        # The receiver enqueues nothing; the workers' watch one drain for all.
        assert queued_tasks() == 0
        assert redrive_webhook_events() == 1
        assert redrive_webhook_events() == 0  # a drain is waiting: nothing to add
        assert watch()["redrive_webhook_events"] == 0
        DBTaskResult.objects.all().delete()  # the drain is lost
        assert redrive_webhook_events() == 1
        assert redrive_webhook_events() == 0
        assert queued_tasks() == 1
        assert WebhookEvent.objects.due().count() == 5

    def test_the_worker_watches_for_events_between_sweeps(self, client, monkeypatch):
        from connections.management.commands import run_worker

        sweeps = []
        monkeypatch.setattr(run_worker, "sweep", lambda: sweeps.append(1) or {})
        # The loop runs in the test's thread and transaction: keep its connection.
        monkeypatch.setattr(run_worker, "close_old_connections", lambda: None)
        body = event_body()

        class Ticks(threading.Event):
            """Stops the loop after three rounds; no real waiting."""

            def __init__(self) -> None:
                super().__init__()
                self.waits: list[float] = []

            def wait(self, timeout=None):
                self.waits.append(timeout)
                if len(self.waits) == 1:
                    # A delivery just after the sweep: the next round's watch sees it.
                    assert post(client, body, signed(body)).status_code == 200
                if len(self.waits) == 3:
                    self.set()
                return self.is_set()

        stop = Ticks()
        run_worker.sweep_forever("watch-test", stop, 5.0)
        assert sweeps == [1]  # one full sweep: the next is 5 s away
        assert stop.waits == [WATCH_EVERY] * 3
        assert queued_tasks() == 1  # enqueued by the watch, a quarter second later
