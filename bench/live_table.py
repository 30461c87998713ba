"""Target 2: the live table's rows partial of a large upload vs a trivial view.

    python -m bench.live_table

Builds a submitted upload of BENCH_TABLE_VINS (100,000) entries in a mix of
statuses, then times, through Django's test Client (the whole middleware stack,
DEBUG off, a logged-in manager), round after round:

- trivial: `GET /_bench/trivial/` (bench/urls.py), login required like the table;
- changed: `GET /uploads/<id>/rows/?v=<old>` with HX-Request: 100 rows rendered;
- unchanged: `GET /uploads/<id>/rows/?v=<current>` with HX-Request: 204.

The three are interleaved so load on the machine falls on all alike. Prints
one JSON line with median/p95 of each and the queries one request makes.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.data import copy_entries, vin
from bench.stack import bench_fleet, env_int, setup_django, truncate_uploads

FLEET = "bench-table"
VERSION = 7
# (status, error code, action category) in the proportions of a big upload
# some way through: most settled, a fifth still on its way.
MIX: tuple[tuple[str, str, str], ...] = (
    *[("CONNECTED", "", "")] * 10,
    *[("PENDING", "", "")] * 3,
    *[("PROCESSING", "", "")] * 2,
    ("ERROR", "OEM_VEHICLE_UPDATE_REQUIRED", "CUSTOMER_ACTION"),
    ("ERROR", "OEM_UNKNOWN_ERROR", "CONTACT_SUPPORT"),
    ("CONNECTION_REQUIRED", "", "CUSTOMER_ACTION"),
    ("INCOMPATIBLE", "OEM_VEHICLE_NOT_COMPATIBLE", ""),
    ("INVALID", "", ""),
)
COLUMNS = (
    "upload_id", "fleet_id", "line_number", "raw_vin", "vin", "make", "country_code",
    "registration_plate", "model", "model_year", "status", "error_codes", "error_code",
    "message", "action_category", "vehicle_id", "validity", "problems",
)  # fmt: skip


def build_upload(count: int):
    from django.db import connection, transaction
    from django.utils import timezone

    from connections.models import Upload

    fleet, user = bench_fleet(FLEET)
    truncate_uploads()
    upload = Upload.objects.create(
        fleet=fleet,
        created_by=user,
        source_name="bench.csv",
        state=Upload.State.SUBMITTED,
        submitted_at=timezone.now(),
        version=VERSION,
    )

    def rows() -> Iterator[tuple[Any, ...]]:
        makes = ("VOLKSWAGEN", "BMW", "RENAULT", "PEUGEOT", "SKODA", "TESLA", "FORD")
        for serial in range(count):
            status, code, action = MIX[serial % len(MIX)]
            number = vin(serial)
            invalid = status == "INVALID"
            yield (
                upload.pk, fleet.pk, serial + 2, number, number, makes[serial % len(makes)],
                "GB", f"AB{serial % 100:02d} {serial % 17576:05d}", "", 2022, status,
                json.dumps([code] if code else []), code,
                "The vehicle needs a software update." if code else "", action,
                f"veh_{serial:08d}" if status == "CONNECTED" else "",
                "invalid" if invalid else "valid",
                json.dumps(["The check digit is wrong."] if invalid else []),
            )  # fmt: skip

    with transaction.atomic():
        written = copy_entries(COLUMNS, rows())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return upload, user, written


def timed(call: Callable[[], Any], into: list[float]) -> Any:
    started = time.perf_counter()
    response = call()
    into.append((time.perf_counter() - started) * 1000)
    return response


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "n": len(ordered),
    }


def queries_of(call: Callable[[], Any]) -> dict[str, Any]:
    """The SQL one request runs (count, total time and the slowest three)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    timings = sorted(
        ((float(q["time"]) * 1000, q["sql"][:300]) for q in captured.captured_queries),
        reverse=True,
    )
    return {
        "count": len(timings),
        "total_ms": round(sum(t for t, _ in timings), 2),
        "slowest": [{"ms": round(t, 2), "sql": sql} for t, sql in timings[:3]],
    }


def main() -> None:
    setup_django()
    from django.test import Client

    count = env_int("BENCH_TABLE_VINS", 100_000)
    rounds = env_int("BENCH_REQUESTS", 150)
    warmup = env_int("BENCH_WARMUP", 20)
    started = time.perf_counter()
    upload, user, written = build_upload(count)
    setup_seconds = time.perf_counter() - started

    client = Client()
    client.force_login(user)
    rows_url = f"/uploads/{upload.pk}/rows/"
    htmx = {"HTTP_HX_REQUEST": "true"}

    def trivial():
        return client.get("/_bench/trivial/")

    def changed():
        return client.get(rows_url, {"v": VERSION - 1}, **htmx)

    def unchanged():
        return client.get(rows_url, {"v": VERSION}, **htmx)

    first = changed()
    rendered = first.content.decode().count('<tr id="entry-')
    checks = {
        "trivial_status": trivial().status_code,
        "changed_status": first.status_code,
        "changed_rows": rendered,
        "unchanged_status": unchanged().status_code,
    }
    samples: dict[str, list[float]] = {"trivial": [], "changed": [], "unchanged": []}
    calls = {"trivial": trivial, "changed": changed, "unchanged": unchanged}
    for _ in range(warmup):
        for call in calls.values():
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            timed(call, samples[name])
    result = {
        "entries": written,
        "setup_seconds": setup_seconds,
        "checks": checks,
        **{name: stats(values) for name, values in samples.items()},
        "queries": {
            "trivial": queries_of(trivial),
            "changed": queries_of(changed),
            "unchanged": queries_of(unchanged),
        },
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
