"""Processes survive their dependencies: a database error that a retry can cure
(the server went away, SQLite's "database is locked") is logged and retried
with a backoff by the worker's queue loop and its sweep thread, and answered
with a retryable 503 by the webhook receiver, never a dead worker or a 500."""

import json
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from svix.webhooks import Webhook

from connections import jobs
from connections.jobs import WATCH_EVERY
from connections.management.commands import run_worker
from connections.models import WebhookEvent
from connections.webhooks.tasks import process_due_webhook_events

WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1mb3ItcmVzaWxpZW5jZQ=="


class FailingFirst:
    """Raises `error` on the first `times` calls, then behaves like `real`."""

    def __init__(self, real, error: Exception, times: int = 1) -> None:
        self.real = real
        self.error = error
        self.left = times

    def __call__(self, *args, **kwargs):
        if self.left > 0:
            self.left -= 1
            raise self.error
        return self.real(*args, **kwargs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error",
    [
        OperationalError("database is locked"),
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
    ],
)
def test_the_queue_loop_outlives_a_database_error(monkeypatch, error):
    """django-tasks-db's own loop dies on these (its claim's BEGIN is outside its
    try); the worker's loop waits, reconnects and goes on with the queue."""
    result = process_due_webhook_events.enqueue()
    # Two failures in a row, then the database is back.
    failing = FailingFirst(db_worker.exclusive_transaction, error, times=2)
    monkeypatch.setattr(db_worker, "exclusive_transaction", failing)
    sleeps: list[float] = []
    monkeypatch.setattr(run_worker.time, "sleep", sleeps.append)

    worker = run_worker.build_worker("resilience-test", ["default"], 0.1, batch=True)
    worker.run()  # batch mode: returns once the queue is empty

    assert failing.left == 0
    assert sleeps == [0.5, 1.0]  # connections.backoff: doubling from half a second
    row = DBTaskResult.objects.get(pk=result.id)
    assert row.status == TaskResultStatus.SUCCESSFUL


def test_the_queue_loop_still_stops_on_other_errors(monkeypatch):
    """Only what a retry can cure is retried: a bug still ends the process loudly."""
    failing = FailingFirst(db_worker.exclusive_transaction, RuntimeError("a bug"), times=1)
    monkeypatch.setattr(db_worker, "exclusive_transaction", failing)
    worker = run_worker.build_worker("resilience-test", ["default"], 0.1, batch=True)
    with pytest.raises(RuntimeError):
        worker.run()


class Ticks(threading.Event):
    """Records each wait of the sweep loop and stops it after `rounds`; no real waiting."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if len(self.waits) >= self.rounds:
            self.set()
        return self.is_set()


def test_the_sweep_thread_backs_off_while_the_database_is_down(monkeypatch, caplog):
    forgotten = []
    monkeypatch.setattr(run_worker, "watch", FailingFirst(dict, OperationalError("gone"), 4))
    monkeypatch.setattr(run_worker, "sweep", dict)
    monkeypatch.setattr(run_worker.WorkerHeartbeat, "beat", lambda *args: None)
    monkeypatch.setattr(run_worker, "forget_connection", lambda: forgotten.append(1))
    monkeypatch.setattr(run_worker, "close_old_connections", lambda: None)
    stop = Ticks(rounds=7)
    run_worker.sweep_forever("sweep-test", stop, interval=60.0)
    # The first round sweeps; the watches between sweeps fail four times, each
    # wait twice the one before, then the database is back: normal pauses again.
    assert stop.waits == [WATCH_EVERY, 0.5, 1.0, 2.0, 4.0, WATCH_EVERY, WATCH_EVERY]
    assert len(forgotten) == 4  # a fresh connection after each failure
    assert "sweep: database error (gone); again in 4.0s" in caplog.text


def test_a_database_error_in_one_sweeper_ends_the_round(monkeypatch):
    """The database, not the sweeper: the loop backs off instead of trying
    every other sweeper against it (on SQLite, each would wait out the lock)."""
    ran = []

    def locked():
        ran.append("locked")
        raise OperationalError("database is locked")

    monkeypatch.setattr(jobs, "SWEEPERS", [locked, lambda: ran.append("next") or 0])
    with pytest.raises(OperationalError):
        jobs.sweep()
    assert ran == ["locked"]


def signed_delivery(body: str) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    at = datetime.now(UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, at, body),
    }


@contextmanager
def database_unavailable(monkeypatch, error: Exception):
    def refuse(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(WebhookEvent, "store_once", refuse)
        yield


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [OperationalError("database is locked"), InterfaceError("connection already closed")],
)
def test_the_receiver_answers_a_retryable_503_when_the_database_is_unavailable(
    settings, monkeypatch, error
):
    settings.VOLTERAS_WEBHOOK_SECRET = WEBHOOK_SECRET
    client = Client(raise_request_exception=False)
    body = json.dumps({"id": "veh-1", "deviceType": "VEHICLE"})
    headers = signed_delivery(body)

    with database_unavailable(monkeypatch, error):
        started = time.monotonic()
        refused = client.post(
            "/webhooks/volteras/", data=body, content_type="application/json", headers=headers
        )
    assert refused.status_code == 503
    assert refused["Retry-After"] == "5"
    assert refused.json() == {"error": "unavailable"}
    assert time.monotonic() - started < 5
    assert not WebhookEvent.objects.exists()

    # Svix's retry of the same message, once the database is back, is stored.
    again = client.post(
        "/webhooks/volteras/", data=body, content_type="application/json", headers=headers
    )
    assert again.status_code == 200
    assert WebhookEvent.objects.get().svix_id == headers["svix-id"]
