"""Target 5: the fleet's vehicle list on a large fleet vs a trivial view, and its
CSV export vs PostgreSQL's `COPY ... TO STDOUT` of the same rows.

    python -m bench.fleet_list

Builds a fleet of BENCH_FLEET_VINS (106,000: about 100,000 of them listed, the
rest never sent) with the live table's mix of statuses, then times through
Django's test Client (DEBUG off, a logged-in manager), interleaved with the
trivial view: the first page by default (needs you first), and its filtered,
sorted and searched variants. Then the CSV export of the whole list, read as it
streams, against a COPY of the same rows and columns in the same order. Prints
one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import time

from bench.live_table import build_upload, stats, timed
from bench.stack import env_int, setup_django

VARIANTS = {
    "default (needs you first)": {},
    "needs you only": {"group": "needs"},
    "status PENDING": {"status": "PENDING"},
    "sorted by VIN": {"sort": "vin"},
    "sorted by make, descending": {"sort": "-make"},
    "sorted by last change": {"sort": "changed"},
    "error code": {"error": "OEM_VEHICLE_UPDATE_REQUIRED"},
    "search VIN": {"q": "WBA"},
    "tag": {"tag": "depot=Leeds"},
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def copy_seconds(fleet_id: int) -> tuple[float, int]:
    from django.db import connection

    sql = (
        "COPY (SELECT vin, status, error_code, message, action_category, make, model,"
        " registration_plate, tags, upload_id, status_changed_at, vehicle_id"
        " FROM connections_vinentry WHERE fleet_id = %s AND NOT superseded AND attention < 9"
        " ORDER BY attention, status_changed_at DESC, id DESC) TO STDOUT WITH CSV"
    )
    connection.ensure_connection()
    started = time.perf_counter()
    size = 0
    with connection.connection.cursor() as cursor, cursor.copy(sql, [fleet_id]) as copy:
        for block in copy:
            size += len(block)
    return time.perf_counter() - started, size


def settle() -> None:
    """VACUUM the freshly loaded table, as autovacuum soon would: rows COPYed in
    bulk wait in the trigram (GIN) indexes' pending list until then, and every
    search would otherwise scan that list."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE connections_vinentry")


def main() -> None:
    setup_django()
    from django.test import Client

    count = env_int("BENCH_FLEET_VINS", 106_000)
    rounds = env_int("BENCH_REQUESTS", 60)
    started = time.perf_counter()
    upload, user, written = build_upload(count)
    settle()
    setup_seconds = time.perf_counter() - started
    fleet = upload.fleet
    client = Client()
    client.force_login(user)
    url = f"/fleets/{fleet.slug}/vehicles/"
    calls = {"trivial": lambda: client.get("/_bench/trivial/")}
    for name, params in VARIANTS.items():
        calls[name] = lambda params=params: client.get(url, params)
    checks = {name: call().status_code for name, call in calls.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(5):
        for call in calls.values():
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            timed(call, samples[name])
    rss_before = rss_mb()
    exports = []
    for _ in range(2):
        copy_s, copy_bytes = copy_seconds(fleet.pk)
        clock = time.perf_counter()
        response = client.get(f"/fleets/{fleet.slug}/vehicles.csv")
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        exports.append(
            {
                "portal_seconds": time.perf_counter() - clock,
                "copy_seconds": copy_s,
                "rows": lines - 1,
                "bytes": size,
                "copy_bytes": copy_bytes,
            }
        )
    result = {
        "entries": written,
        "setup_seconds": setup_seconds,
        "checks": checks,
        **{name: stats(values) for name, values in samples.items()},
        "exports": exports,
        "rss_before_export_mb": rss_before,
        "peak_rss_mb": rss_mb(),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
