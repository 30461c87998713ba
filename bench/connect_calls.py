"""Target 3: N VINs cost exactly ceil(N/100) connect calls.

    python -m bench.connect_calls

A real submission of BENCH_CONNECT_VINS (1,050) valid VINs against the sandbox
(`python -m sandbox`, instant speed): `create_upload`, `submit`, then
`connections.jobs.drain()` runs the batches' sends and polls in this process
until nothing is left. The calls are counted on the sandbox's side, in its
access log (every `POST /v1/vehicles/connect`, refused or not), and checked
against the connect groups its database holds.
"""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import time
from typing import Any

from bench.data import HEADER, rows
from bench.stack import Sandbox, bench_fleet, env_int, setup_django, truncate_uploads

FLEET = "bench-connect"
MAX_DRAIN_ROUNDS = 100


def submit_and_settle(count: int, sandbox: Sandbox, fleet_slug: str) -> dict[str, Any]:
    """Upload `count` valid VINs, submit them and run every task to the end."""
    import csv

    from django.db.models import Count

    from connections.jobs import drain
    from connections.models import ConnectBatch, VinStatus
    from connections.uploads.reading import read_upload
    from connections.uploads.submission import create_upload, submit

    sandbox.use_in_this_process()
    fleet, user = bench_fleet(fleet_slug)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(HEADER)
    writer.writerows(rows(count, messy=False))
    started = time.perf_counter()
    upload = create_upload(fleet, user, read_upload(text.getvalue().encode(), filename="x.csv"))
    ready = upload.entries.filter(status=VinStatus.READY).count()
    batches = submit(upload, user)
    tasks = 0
    for _ in range(MAX_DRAIN_ROUNDS):
        ran = drain()
        tasks += ran
        if not ran:
            break
    seconds = time.perf_counter() - started
    sizes = [b.entries.count() for b in ConnectBatch.objects.filter(upload=upload)]
    return {
        "upload": upload,
        "ready": ready,
        "batches": batches,
        "batch_sizes_max": max(sizes, default=0),
        "batch_states": dict(
            ConnectBatch.objects.filter(upload=upload)
            .values_list("state")
            .annotate(n=Count("pk"))
            .order_by()
        ),
        "tasks_run": tasks,
        "seconds": seconds,
        "statuses": dict(upload.entries.values_list("status").annotate(n=Count("pk")).order_by()),
    }


def groups_in_sandbox(sandbox: Sandbox) -> int:
    with sqlite3.connect(sandbox.database) as conn:
        return conn.execute("SELECT COUNT(*) FROM sandbox_connectgroup").fetchone()[0]


def main() -> None:
    setup_django()
    count = env_int("BENCH_CONNECT_VINS", 1050)
    truncate_uploads()
    sandbox = Sandbox.start("connect")
    try:
        settled = submit_and_settle(count, sandbox, FLEET)
        calls = sandbox.requests_logged("POST", "/v1/vehicles/connect")
        groups = groups_in_sandbox(sandbox)
    finally:
        sandbox.stop()
    settled.pop("upload")
    result = {
        "vins": count,
        **settled,
        "expected_calls": math.ceil(settled["ready"] / 100),
        "connect_calls": calls,
        "sandbox_groups": groups,
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
