"""Target 4: webhook intake through the production stack vs a trivial POST
view on the same stack, and a burst processed exactly once.

    python -m bench.webhook_intake

1. The sandbox connects BENCH_WEBHOOK_VEHICLES (300) VINs for a fleet (a real
   submission, as in target 3); every tenth vehicle is then disconnected.
2. BENCH_WEBHOOK_EVENTS (10,000) events, each with its own svix id and signed
   by the `svix` library, name those vehicles (`device.disconnected` for the
   disconnected ones, `device.connected` for the rest); one in ten is
   delivered a second time later in the burst (same id, body and signature).
3. gunicorn (the README's `--workers 4`, DEBUG off, PostgreSQL) serves the
   portal. After a warm-up, a second process (bench/load.py) sends the burst
   in four slices, each first to the trivial POST view (same bodies and
   headers), then to `/webhooks/volteras/`.
4. gunicorn stops; two `manage.py run_worker` processes process the events
   (each reads `GET /v1/vehicles/{id}` from the sandbox). Then the rows are
   counted: one per svix id, each processed and claimed once, duplicates
   counted and without effect, one timeline event per disconnected entry.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.connect_calls import submit_and_settle
from bench.stack import (
    PYTHON,
    ROOT,
    WEBHOOK_SECRET,
    Gunicorn,
    Sandbox,
    env_int,
    portal_env,
    setup_django,
    start_workers,
    stop,
    truncate_uploads,
    work_dir,
)

FLEET = "bench-webhook"
BURST_PREFIX = "msg_bench_"
WARM_PREFIX = "msg_warm_"
LOAD_THREADS = 16
CHUNKS = 4


def signed(msg_id: str, event_type: str, vehicle_id: str, now: datetime) -> dict[str, Any]:
    from svix.webhooks import Webhook

    body = json.dumps(
        {
            "type": event_type,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"id": vehicle_id, "deviceType": "VEHICLE"},
        },
        separators=(",", ":"),
    )
    return {
        "svix_id": msg_id,
        "body": body,
        "headers": {
            "Content-Type": "application/json",
            "User-Agent": "Svix-Webhooks/bench",
            "svix-id": msg_id,
            "svix-timestamp": str(int(now.timestamp())),
            "svix-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, now, body),
        },
    }


def build_events(
    count: int, vehicles: list[str], disconnected: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(warm-up requests, burst requests, duplicates in the burst)."""
    now = datetime.now(UTC)

    def event(msg_id: str, index: int) -> dict[str, Any]:
        vehicle = vehicles[index % len(vehicles)]
        kind = "device.disconnected" if vehicle in disconnected else "device.connected"
        return signed(msg_id, kind, vehicle, now)

    warm = [event(f"{WARM_PREFIX}{i:05d}", i) for i in range(min(200, count))]
    originals = [event(f"{BURST_PREFIX}{i:06d}", i) for i in range(count)]
    burst: list[dict[str, Any]] = []
    later: dict[int, list[dict[str, Any]]] = {}
    rng = random.Random(4)
    for index, item in enumerate(originals):
        burst.append(item)
        burst.extend(later.pop(index, []))
        if index % 10 == 3:
            # Svix redelivers a little later, sometimes while the first copy
            # is still being answered.
            later.setdefault(index + rng.randint(1, 500), []).append(item)
    for items in later.values():
        burst.extend(items)
    return warm, burst, len(burst) - count


def write_requests(path: Path, items: list[dict[str, Any]]) -> Path:
    with path.open("w") as handle:
        for item in items:
            handle.write(json.dumps({"headers": item["headers"], "body": item["body"]}) + "\n")
    return path


def load(url: str, requests: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, "-m", "bench.load", url, str(requests), "--threads", str(LOAD_THREADS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def slices(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(total * i / parts) for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure for several load runs: all requests over all their time."""
    sent = sum(run["sent"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    statuses: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
        answers.update(run["answers"])
    return {
        "sent": sent,
        "seconds": seconds,
        "rate": sent / seconds if seconds else 0.0,
        "statuses": dict(statuses),
        "answers": dict(answers),
        "runs": runs,
    }


def process_all(env: dict[str, str], expected: int, timeout: float) -> dict[str, Any]:
    """Run workers until every stored event is done (or nothing moves for a minute)."""
    from connections.models import WebhookEvent

    finished_states = [
        WebhookEvent.State.PROCESSED,
        WebhookEvent.State.FAILED,
        WebhookEvent.State.IGNORED,
    ]
    workers = start_workers(env_int("BENCH_WEBHOOK_WORKERS", 2), env)
    started = time.perf_counter()
    done = last = 0
    last_change = time.monotonic()
    try:
        while time.perf_counter() - started < timeout:
            done = WebhookEvent.objects.filter(state__in=finished_states).count()
            if done >= expected:
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 60:
                break
            time.sleep(0.5)
    finally:
        seconds = time.perf_counter() - started
        for worker in workers:
            stop(worker)
    return {"seconds": seconds, "finished": done, "rate": done / seconds if seconds else 0.0}


def sandbox_floor(sandbox: Sandbox, vehicles: list[str], reads: int, threads: int) -> dict:
    """The sandbox's own rate for the reads processing needs: `reads` plain
    `GET /v1/vehicles/{id}` (bearer token, keep-alive, no portal code), one at
    a time and then from `threads` threads at once (as many as workers)."""
    import httpx

    from connections import volteras

    token = volteras.get_client().tokens.get()
    headers = {"Authorization": f"Bearer {token}"}
    ids = list(itertools.islice(itertools.cycle(vehicles), reads))

    def read_all(part: list[str]) -> None:
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=30) as http:
            for vehicle_id in part:
                http.get(f"/v1/vehicles/{vehicle_id}").raise_for_status()

    rates = {}
    for name, count in (("sequential", 1), ("parallel", threads)):
        parts = [ids[n::count] for n in range(count)]
        pool = [threading.Thread(target=read_all, args=(part,)) for part in parts]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rates[name] = reads / (time.perf_counter() - started)
    return {"reads": reads, "threads": threads, **rates}


def verify(burst_count: int, duplicates: int, disconnected: set[str]) -> dict[str, Any]:
    from django.db.models import Count, Sum
    from django_tasks_db.models import DBTaskResult

    from connections.models import Source, VinEntry, VinEvent, WebhookEvent

    events = WebhookEvent.objects.filter(svix_id__startswith=BURST_PREFIX)
    totals = events.aggregate(
        rows=Count("pk"),
        ids=Count("svix_id", distinct=True),
        attempts=Sum("attempts"),
        duplicates=Sum("duplicates"),
    )
    states = dict(events.values_list("state").annotate(n=Count("pk")).order_by())
    webhook_events = VinEvent.objects.filter(source=Source.WEBHOOK)
    effects = webhook_events.count()
    effect_ids = webhook_events.values("data__svix_id").distinct().count()
    disconnected_entries = VinEntry.objects.filter(
        fleet__slug=FLEET, vehicle_id__in=disconnected
    ).count()
    now_disconnected = VinEntry.objects.filter(fleet__slug=FLEET, status="DISCONNECTED").count()
    # Queue rows the burst cost (per task and state): a cost, not a correctness figure.
    task_rows = DBTaskResult.objects.values_list("task_path", "status").annotate(n=Count("pk"))
    task_states = {f"{path.rsplit('.', 1)[-1]}:{status}": n for path, status, n in task_rows}
    processed = states.get(WebhookEvent.State.PROCESSED, 0)
    return {
        "tasks": task_states,
        "lost": burst_count - (totals["rows"] or 0),
        "unfinished": (totals["rows"] or 0) - processed - states.get(WebhookEvent.State.FAILED, 0),
        "failed": states.get(WebhookEvent.State.FAILED, 0),
        "rows": totals["rows"],
        "distinct_svix_ids": totals["ids"],
        "states": states,
        "claims": totals["attempts"] or 0,
        "duplicates_recorded": totals["duplicates"] or 0,
        "duplicates_sent": duplicates,
        "timeline_events": effects,
        "timeline_distinct_svix_ids": effect_ids,
        "disconnected_entries": disconnected_entries,
        "entries_now_disconnected": now_disconnected,
        "exactly_once": (
            totals["rows"] == burst_count
            and totals["ids"] == burst_count
            and states.get(WebhookEvent.State.PROCESSED, 0) == burst_count
            and (totals["attempts"] or 0) == burst_count
            and (totals["duplicates"] or 0) == duplicates
            and effects == effect_ids == disconnected_entries == now_disconnected
        ),
    }


def main() -> None:
    setup_django()
    from connections import volteras
    from connections.models import VinEntry, VinStatus, WebhookEvent

    count = env_int("BENCH_WEBHOOK_EVENTS", 10_000)
    vehicle_count = env_int("BENCH_WEBHOOK_VEHICLES", 300)
    timeout = float(env_int("BENCH_WEBHOOK_TIMEOUT", 420))
    folder = work_dir()
    truncate_uploads()
    sandbox = Sandbox.start("webhooks")
    server = None
    result: dict[str, Any] = {"events": count, "vehicles": vehicle_count}
    try:
        settled = submit_and_settle(vehicle_count, sandbox, FLEET)
        result["setup_statuses"] = settled["statuses"]
        vehicles = list(
            VinEntry.objects.filter(fleet__slug=FLEET, status=VinStatus.CONNECTED)
            .exclude(vehicle_id="")
            .order_by("line_number")
            .values_list("vehicle_id", flat=True)
        )
        disconnected = set(vehicles[::10])
        client = volteras.get_client()
        for vehicle_id in disconnected:
            client.disconnect_vehicle(vehicle_id)
        warm, burst, duplicates = build_events(count, vehicles, disconnected)
        warm_file = write_requests(folder / "webhook-warm.jsonl", warm)

        env = portal_env(VOLTERAS_API_URL=sandbox.url)
        server = Gunicorn.start("webhooks", env)
        trivial_url = f"{server.url}/_bench/trivial-post/"
        webhook_url = f"{server.url}/webhooks/volteras/"
        load(trivial_url, warm_file, env)
        result["warmup_webhook"] = load(webhook_url, warm_file, env)
        # Alternate slices of the burst between the two views, so a change in
        # the machine's load falls on both alike.
        runs: dict[str, list[dict[str, Any]]] = {"trivial": [], "webhook": []}
        for number, (start, end) in enumerate(slices(len(burst), CHUNKS)):
            part = folder / f"trivial-{number}.jsonl"
            runs["trivial"].append(load(trivial_url, write_requests(part, burst[start:end]), env))
            # Signed just before sending: Svix refuses timestamps over five minutes old.
            _, fresh, _ = build_events(count, vehicles, disconnected)
            part = folder / f"webhook-{number}.jsonl"
            runs["webhook"].append(load(webhook_url, write_requests(part, fresh[start:end]), env))
        result["trivial"] = combined(runs["trivial"])
        result["webhook"] = combined(runs["webhook"])
        server.stop()
        server = None

        result["floor"] = sandbox_floor(
            sandbox,
            vehicles,
            env_int("BENCH_FLOOR_READS", 2000),
            env_int("BENCH_WEBHOOK_WORKERS", 2),
        )
        expected = WebhookEvent.objects.count()
        result["processing"] = process_all(env, expected, timeout)
        result["check"] = verify(count, duplicates, disconnected)
        result["disconnected_vehicles"] = len(disconnected)
    finally:
        if server is not None:
            server.stop()
        sandbox.stop()
    result["loadavg"] = os.getloadavg()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
