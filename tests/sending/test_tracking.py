"""Background tracking of VIN batches under failure: leases that outlive slow
calls, kills between steps, lost groups, stale observations, races.

The sandbox runs as a real subprocess (instant speed); batches go through the
real task functions.
"""

import itertools
import threading
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from connections import volteras as api
from connections.jobs import ORPHAN_AFTER, drain, recover_orphaned_tasks, sweep
from connections.models import ConnectBatch, Upload, VinEntry, VinStatus
from connections.models import sending as sending_models
from connections.models.sending import LEASE
from connections.sending import lease, poll
from connections.sending.poll import MAX_POLLS, recheck_waiting_entries
from connections.sending.results import RECHECK_FIRST
from connections.sending.tasks import poll_batch, redrive_batches, send_batch
from connections.uploads.eligibility import GIVE_UP_AFTER, REDRIVE_GRACE
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, retry_entries, submit
from connections.uploads.tasks import start_eligibility_check as start
from tests.factories import make_vin, submitted, uploaded

ACCEPTED = '"POST /v1/vehicles/connect HTTP/1.1" 202'


def accepted_posts(sandbox) -> int:
    return sandbox.log().count(ACCEPTED)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_send_outlasting_its_lease_is_never_sent_twice(manager, fleet, volteras, monkeypatch):
    """The POST takes ten leases; meanwhile the sweep and another worker keep
    trying. The holder renews its lease while waiting, so nobody else sends."""
    for module in (sending_models, lease, poll):
        monkeypatch.setattr(module, "LEASE", timedelta(milliseconds=250))
    upload, batch = submitted(fleet, manager, [make_vin(40), make_vin(41)])
    volteras.control(
        faults=[{"kind": "latency", "ms": 2500, "path_prefix": "/v1/vehicles/connect",
                 "method": "POST"}]
    )  # fmt: skip
    before = accepted_posts(volteras)
    first: list[str] = []

    def holder():
        try:
            first.append(send_batch.call(batch.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    claimed = ConnectBatch.objects.filter(pk=batch.pk).exclude(lease_owner="")
    while thread.is_alive() and not claimed.exists():
        thread.join(0.01)
    others = []
    while thread.is_alive():
        redrive_batches(grace=timedelta(0))
        others.append(send_batch.call(batch.pk))
        thread.join(0.1)
    assert first == ["sent"]
    assert set(others) == {"not due"}
    assert accepted_posts(volteras) - before == 1
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.POLLING
    volteras.control(faults=[])
    drain()
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTED}


def test_a_429_on_send_reschedules_the_batch_instead_of_sleeping(
    manager, fleet, volteras, time_machine
):
    """A worker must not sleep out a Retry-After while holding a lease: the
    batch goes back to the queue for when Volteras said to come back."""
    time_machine.move_to(timezone.now(), tick=False)
    upload, batch = submitted(fleet, manager, [make_vin(42)])
    volteras.control(
        faults=[{"kind": "rate_limit", "path_prefix": "/v1/vehicles/connect", "method": "POST",
                 "retry_after": 45, "count": 1}]
    )  # fmt: skip
    assert send_batch.call(batch.pk) == "retry"
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.QUEUED
    assert batch.next_attempt_at == timezone.now() + timedelta(seconds=45)
    assert "RateLimited" in batch.last_error or "RATE_LIMITED" in batch.last_error
    assert send_batch.call(batch.pk) == "not due"
    time_machine.shift(timedelta(seconds=46))
    assert send_batch.call(batch.pk) == "sent"
    drain()
    assert upload.entries.get().status == VinStatus.CONNECTED


def _take_over_during_post(monkeypatch, batch, *, other_group: str = ""):
    """While our POST is in flight, another worker takes the batch over (as
    after a lease that ran out): it holds the lease, maybe with its own group."""
    real = api.VolterasClient.connect_vehicles

    def connect_then_lose_the_lease(self, vehicles, **kwargs):
        group = real(self, vehicles, **kwargs)
        ConnectBatch.objects.filter(pk=batch.pk).update(
            lease_owner="another-worker",
            lease_until=timezone.now() + LEASE,
            state=ConnectBatch.State.POLLING if other_group else ConnectBatch.State.SUBMITTING,
            group_id=other_group,
        )
        return group

    monkeypatch.setattr(api.VolterasClient, "connect_vehicles", connect_then_lose_the_lease)


def test_a_group_accepted_after_the_lease_was_lost_is_adopted(
    manager, fleet, volteras, monkeypatch
):
    upload, batch = submitted(fleet, manager, [make_vin(43), make_vin(44)])
    _take_over_during_post(monkeypatch, batch)
    assert send_batch.call(batch.pk) == "sent"
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.POLLING
    assert batch.group_id
    assert batch.lease_owner == ""
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.PROCESSING}
    monkeypatch.undo()
    drain()
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.CONNECTED}


def test_a_second_accepted_group_is_kept_on_the_timeline(manager, fleet, volteras, monkeypatch):
    upload, batch = submitted(fleet, manager, [make_vin(45)])
    _take_over_during_post(monkeypatch, batch, other_group="group-of-the-other-worker")
    assert send_batch.call(batch.pk) == "superseded"
    batch.refresh_from_db()
    assert batch.group_id == "group-of-the-other-worker"
    entry = upload.entries.get()
    event = entry.events.last()
    ours = event.data["group_id"]
    assert ours and ours != batch.group_id
    assert f"also accepted these VINs in group {ours}" in event.detail


def test_a_worker_killed_while_failing_a_batch_leaves_it_open(
    manager, fleet, volteras, monkeypatch, time_machine
):
    """Closing a refused batch and marking its VINs failed is one transaction:
    killed half-way, the batch is still open and is re-driven after its lease."""

    volteras.control(vehicle_limit=1)
    submitted(fleet, manager, [make_vin(49)])
    drain()  # the one vehicle allowed: the next batch is refused
    upload, batch = submitted(fleet, manager, [make_vin(46), make_vin(47)])
    real = VinEntry.observe
    calls = []

    def killed_after_the_first(self, *args, **kwargs):
        calls.append(self.pk)
        if len(calls) > 1:
            raise SystemExit("worker killed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VinEntry, "observe", killed_after_the_first)
    with pytest.raises(SystemExit):
        send_batch.call(batch.pk)
    monkeypatch.undo()
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.SUBMITTING
    assert set(upload.entries.values_list("status", flat=True)) == {VinStatus.SUBMITTING}
    time_machine.move_to(timezone.now() + LEASE + timedelta(minutes=1))
    sweep()
    drain()
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.FAILED
    assert set(upload.entries.values_list("status", "error_code")) == {
        (VinStatus.ERROR, "DEVICE_LIMIT_REACHED")
    }


def test_an_eligibility_check_whose_task_was_lost_is_redriven(
    manager, fleet, volteras, time_machine, django_capture_on_commit_callbacks
):

    upload = uploaded(fleet, manager, f"{make_vin(50)},Ford,US")
    with django_capture_on_commit_callbacks(execute=True):
        assert start(upload)
    DBTaskResult.objects.all().delete()  # the task is lost (its worker died)
    assert sweep()["redrive_eligibility_checks"] == 0  # not overdue yet
    time_machine.move_to(timezone.now() + REDRIVE_GRACE + timedelta(seconds=1))
    assert sweep()["redrive_eligibility_checks"] == 1
    assert sweep()["redrive_eligibility_checks"] == 0  # once per grace
    drain(include_future=True)
    upload.refresh_from_db()
    assert upload.state == Upload.State.DRAFT
    assert upload.entries.get().eligibility == "ELIGIBLE"


def test_an_eligibility_check_that_never_finishes_stops_blocking_submit(
    manager, fleet, volteras, time_machine, django_capture_on_commit_callbacks
):

    upload = uploaded(fleet, manager, f"{make_vin(51)},Ford,US")
    with django_capture_on_commit_callbacks(execute=True):
        assert start(upload)
    DBTaskResult.objects.all().delete()
    time_machine.move_to(timezone.now() + GIVE_UP_AFTER + timedelta(seconds=1))
    assert sweep()["redrive_eligibility_checks"] == 1
    upload.refresh_from_db()
    assert upload.state == Upload.State.DRAFT
    assert "did not finish" in upload.eligibility["note"]
    assert not upload.eligibility["error"]
    assert upload.entries.get().eligibility == ""
    assert submit(upload, manager) == 1


def _entry_in(status: str, fleet, manager) -> VinEntry:
    upload = uploaded(fleet, manager, make_vin(52))
    entry = upload.entries.get()
    assert entry.observe(status, "poll")
    return entry


def test_a_poll_read_before_a_webhook_cannot_undo_it(fleet, manager, time_machine):
    """The poll loaded the entry and read PENDING; a webhook then applied
    CONNECTED; the poll's late write must not take the VIN back."""
    time_machine.move_to(timezone.now(), tick=False)
    entry = _entry_in(VinStatus.PROCESSING, fleet, manager)
    polls_copy = VinEntry.objects.select_related("upload").get(pk=entry.pk)
    poll_read_at = timezone.now()
    time_machine.shift(timedelta(seconds=1))
    webhooks_copy = VinEntry.objects.select_related("upload").get(pk=entry.pk)
    assert webhooks_copy.observe(VinStatus.CONNECTED, "webhook", vehicle_id="veh-9")
    time_machine.shift(timedelta(seconds=1))
    assert not polls_copy.observe(VinStatus.PENDING, "poll", observed_at=poll_read_at)
    entry.refresh_from_db()
    assert (entry.status, entry.vehicle_id) == (VinStatus.CONNECTED, "veh-9")
    assert list(entry.events.values_list("status_to", flat=True)) == ["PROCESSING", "CONNECTED"]


def test_an_observation_on_a_stale_copy_decides_on_the_current_row(fleet, manager):
    entry = _entry_in(VinStatus.PROCESSING, fleet, manager)
    stale = VinEntry.objects.select_related("upload").get(pk=entry.pk)
    VinEntry.objects.get(pk=entry.pk).observe(VinStatus.PENDING, "webhook")
    # A field observations do not own, changed meanwhile (dismissed and
    # escalated are observed: a new status reopens them).
    VinEntry.objects.filter(pk=entry.pk).update(registration_plate="NEW 123")
    # Nothing new against the row (PENDING), though the copy still says PROCESSING.
    assert not stale.observe(VinStatus.PENDING, "poll")
    assert stale.observe(VinStatus.CONNECTED, "poll")
    entry.refresh_from_db()
    assert (entry.status, entry.registration_plate) == (VinStatus.CONNECTED, "NEW 123")
    last = entry.events.last()
    assert (last.status_from, last.status_to) == (VinStatus.PENDING, VinStatus.CONNECTED)


def _failed_entry(fleet, manager, volteras) -> VinEntry:
    upload, batch = submitted(fleet, manager, ["PERR0R11000000004,Volkswagen,GB"])
    send_batch.call(batch.pk)
    drain()
    entry = upload.entries.get()
    assert (entry.status, entry.can_retry) == (VinStatus.ERROR, True)
    return entry


def test_a_second_retry_of_the_same_vin_is_refused(fleet, manager, volteras):
    """Both requests loaded the VIN as ERROR (a double click): the second
    finds it SUBMITTING on its row and queues nothing."""
    entry = _failed_entry(fleet, manager, volteras)
    first_click = VinEntry.objects.get(pk=entry.pk)
    second_click = VinEntry.objects.get(pk=entry.pk)
    assert retry_entries(entry.upload, [first_click], manager) == [entry.pk]
    assert retry_entries(entry.upload, [second_click], manager) == []
    assert entry.upload.batches.count() == 2
    assert VinEntry.objects.get(pk=entry.pk).status == VinStatus.SUBMITTING


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_retries_make_one_batch(fleet, manager, volteras):
    entry = _failed_entry(fleet, manager, volteras)
    barrier = threading.Barrier(2)
    queued = []
    errors = []

    def click():
        copy = VinEntry.objects.select_related("upload").get(pk=entry.pk)
        barrier.wait()
        try:
            queued.append(len(retry_entries(copy.upload, [copy], manager)))
        except Exception as exc:  # a 500 for the manager: what this test forbids
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(queued) == [0, 1]
    assert entry.upload.batches.count() == 2


def _polling(fleet, manager, vins):
    upload, batch = submitted(fleet, manager, vins)
    assert send_batch.call(batch.pk) == "sent"
    ConnectBatch.objects.filter(pk=batch.pk).update(next_attempt_at=timezone.now())
    batch.refresh_from_db()
    return upload, batch


def test_a_group_volteras_no_longer_knows_fails_its_vins_retryably(fleet, manager, volteras):
    upload, batch = _polling(fleet, manager, [make_vin(53)])
    ConnectBatch.objects.filter(pk=batch.pk).update(group_id="00000000-0000-4000-8000-000000000000")
    assert poll_batch.call(batch.pk) == "group lost"
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.FAILED
    assert "RESOURCE_NOT_FOUND" in batch.last_error
    entry = upload.entries.get()
    assert (entry.status, entry.can_retry) == (VinStatus.ERROR, True)
    assert "no longer knows group 00000000-0000-4000-8000-000000000000" in entry.message
    assert entry.retry_refusal() is None
    assert poll_batch.call(batch.pk) == "not due"


def test_a_group_that_cannot_be_read_is_left_to_the_slow_recheck(
    fleet, manager, volteras, settings, time_machine
):
    settings.VOLTERAS_MAX_RETRIES = 0
    upload, batch = _polling(fleet, manager, [make_vin(54)])
    volteras.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles/connect/"}])
    time_machine.move_to(timezone.now(), tick=False)
    assert poll_batch.call(batch.pk) == "error"
    ConnectBatch.objects.filter(pk=batch.pk).update(
        polls=MAX_POLLS - 1, next_attempt_at=timezone.now()
    )
    assert poll_batch.call(batch.pk) == "left to recheck"
    batch.refresh_from_db()
    assert batch.state == ConnectBatch.State.DONE
    entry = upload.entries.get()
    assert entry.status == VinStatus.PROCESSING
    assert entry.next_check_at is not None
    assert "checked again on a slower schedule" in entry.events.last().detail
    # Still failing at the first recheck: it backs off instead of hammering.
    time_machine.move_to(entry.next_check_at + timedelta(seconds=1))
    assert recheck_waiting_entries() == 0
    entry.refresh_from_db()
    assert entry.next_check_at >= timezone.now() + RECHECK_FIRST - timedelta(seconds=1)
    volteras.control(faults=[])
    time_machine.move_to(entry.next_check_at + timedelta(seconds=1))
    assert recheck_waiting_entries() == 1
    assert upload.entries.get().status == VinStatus.CONNECTED


def test_staleness_counts_from_submission_not_the_last_status_change(
    fleet, manager, time_machine, settings
):
    settings.STALE_AFTER_DAYS = 14
    time_machine.move_to(timezone.now(), tick=False)
    upload, _batch = submitted(fleet, manager, [make_vin(55)])
    entry = upload.entries.get()
    entry.observe(VinStatus.PROCESSING, "submission")
    time_machine.shift(timedelta(days=10))
    entry.observe(VinStatus.PENDING, "poll")
    time_machine.shift(timedelta(days=3))
    assert not entry.is_stale
    time_machine.shift(timedelta(days=2))
    assert entry.is_stale
    assert entry.age.days == 15
    entry.observe(VinStatus.CONNECTED, "webhook")
    assert not entry.is_stale


def test_the_fleet_tag_reaches_volteras_once(fleet, manager, volteras):
    upload = create_upload(
        fleet,
        manager,
        read_upload(
            f'vin,make,country,tags\n{make_vin(56)},Ford,US,"fleet=mine;colour=red"\n'.encode(),
            filename="tags.csv",
        ),
    )
    submit(upload, manager)
    batch = upload.batches.get()
    assert send_batch.call(batch.pk) == "sent"
    batch.refresh_from_db()
    (result,) = api.get_client().connect_results(batch.group_id)
    assert result.raw["tags"] == [
        {"key": "fleet", "value": fleet.slug},
        {"key": "colour", "value": "red"},
    ]


def test_poll_backoff_runs_from_about_2_s_to_about_60_s(fleet, manager, volteras, settings):
    """Each poll that finds nothing new waits about twice as long as the last,
    from about 2 s, capped at about 60 s (with 20 % jitter)."""
    settings.VOLTERAS_MAX_RETRIES = 0
    _upload, batch = submitted(fleet, manager, [make_vin(57)])
    assert send_batch.call(batch.pk) == "sent"
    batch.refresh_from_db()
    first_wait = (batch.next_attempt_at - batch.submitted_at).total_seconds()
    assert 1.9 <= first_wait <= 2.1
    volteras.control(faults=[{"kind": "error", "path_prefix": "/v1/vehicles/connect/"}])
    waits = []
    for _ in range(8):
        ConnectBatch.objects.filter(pk=batch.pk).update(next_attempt_at=timezone.now())
        before = timezone.now()
        assert poll_batch.call(batch.pk) == "error"
        batch.refresh_from_db()
        waits.append((batch.next_attempt_at - before).total_seconds())
    nominal = [2, 4, 8, 16, 32, 60, 60, 60]
    for wait, expected in zip(waits, nominal, strict=True):
        assert expected * 0.8 - 0.5 <= wait <= expected * 1.2 + 0.5, (waits, nominal)


def test_orphaned_task_rows_are_requeued_or_failed(db, time_machine):
    """django-tasks-db leaves a task RUNNING when its worker dies: the sweep
    puts it back (a worker that still beats keeps its task), and fails one
    that has already taken down MAX_TASK_RUNS workers."""
    from connections.models import WorkerHeartbeat

    def running(worker_ids):
        result = poll_batch.enqueue(1)
        DBTaskResult.objects.filter(pk=result.id).update(
            status="RUNNING", started_at=timezone.now(), worker_ids=worker_ids
        )
        return result.id

    time_machine.move_to(timezone.now(), tick=False)
    dead = running(["dead-worker"])
    alive = running(["live-worker"])
    cursed = running(["w1", "w2", "w3"])
    fresh = running(["dead-worker"])
    time_machine.shift(ORPHAN_AFTER + timedelta(seconds=1))
    DBTaskResult.objects.filter(pk=fresh).update(started_at=timezone.now())
    WorkerHeartbeat.beat("live-worker")
    assert recover_orphaned_tasks() == 2
    status = {str(pk): s for pk, s in DBTaskResult.objects.values_list("pk", "status")}
    assert status[dead] == "READY"
    assert status[alive] == "RUNNING"
    assert status[cursed] == "FAILED"
    assert status[fresh] == "RUNNING"  # started too recently to call orphaned
    failed = DBTaskResult.objects.get(pk=cursed)
    assert failed.exception_class_path == "connections.jobs.WorkerDied"
    assert DBTaskResult.objects.get(pk=dead).run_after <= timezone.now()
    assert recover_orphaned_tasks() == 0


def test_successful_answers_leave_their_request_id_on_the_timeline(
    fleet, manager, volteras, monkeypatch
):
    """The sandbox gives no request id on success; the transport stamps one on
    each successful answer, as an API gateway would, and the timeline keeps
    the one each move came in."""
    numbers = itertools.count(1)

    class Stamping(httpx.HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            if response.is_success and request.url.path.startswith("/v1/vehicles/connect"):
                response.headers["x-request-id"] = f"req-{next(numbers)}-{request.method}"
            return response

    client = api.VolterasClient(
        volteras.url, volteras.client_id, volteras.client_secret, transport=Stamping()
    )
    monkeypatch.setattr(api, "get_client", lambda: client)
    upload, batch = _polling(fleet, manager, [make_vin(58)])
    assert poll_batch.call(batch.pk) == "COMPLETED"
    entry = upload.entries.get()
    assert entry.status == VinStatus.CONNECTED
    accepted = entry.events.get(status_to=VinStatus.PROCESSING)
    connected = entry.events.get(status_to=VinStatus.CONNECTED)
    assert accepted.request_id == "req-1-POST"
    assert connected.request_id.startswith("req-") and connected.request_id.endswith("-GET")
    client.close()
