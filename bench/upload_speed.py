"""Target 1: a CSV validated and stored by the portal vs a PostgreSQL COPY.

    python -m bench.upload_speed portal FILE [--tracemalloc]
    python -m bench.upload_speed copy FILE

Each run is its own process (so its peak memory is its own), starts from an
empty table, and prints one JSON line. The timed part is, for the portal,
`create_upload(fleet, user, read_upload(file, filename="x.csv"))`, exactly the
upload view's call; for the baseline, reading the same file with the `csv`
module and `COPY ... FROM STDIN` of its rows into the same table, with the
columns a stored entry must have, committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.data import copy_entries
from bench.stack import bench_fleet, setup_django, truncate_uploads

FLEET = "bench-upload"
# The CSV's columns (bench.data.HEADER) and the entry columns they fill.
CSV_COLUMNS = ("vin", "make", "country_code", "registration_plate", "model", "model_year")


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in kibibytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_portal(path: Path, trace: bool) -> dict[str, Any]:
    from django.db import connection
    from django.db.models import Count

    from connections.uploads.reading import read_upload
    from connections.uploads.submission import create_upload

    fleet, user = bench_fleet(FLEET)
    truncate_uploads()
    connection.ensure_connection()
    rss_before = peak_rss_mb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    with path.open("rb") as handle:
        upload = create_upload(fleet, user, read_upload(handle, filename="x.csv"))
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    rss_after = peak_rss_mb()
    counts = dict(upload.entries.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "mode": "portal",
        "tracemalloc": trace,
        "seconds": seconds,
        "rows": sum(counts.values()),
        "statuses": counts,
        "peak_rss_mb": rss_after,
        "rss_before_mb": rss_before,
        "peak_rss_delta_mb": rss_after - rss_before,
        "tracemalloc_peak_mb": traced_peak,
    }


def run_copy(path: Path) -> dict[str, Any]:
    from django.db import transaction

    from connections.models import Upload, VinEntry

    fleet, user = bench_fleet(FLEET)
    truncate_uploads()
    upload = Upload.objects.create(fleet=fleet, created_by=user, source_name="COPY baseline")
    columns = ("upload_id", "fleet_id", "line_number", *CSV_COLUMNS)

    def rows(reader):
        for line_number, (vin, make, country, plate, model, year) in enumerate(reader, 2):
            yield (upload.pk, fleet.pk, line_number, vin, make, country, plate, model,
                   int(year) if year else None)  # fmt: skip

    rss_before = peak_rss_mb()
    started = time.perf_counter()
    with transaction.atomic(), path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        written = copy_entries(columns, rows(reader))
    seconds = time.perf_counter() - started
    rss_after = peak_rss_mb()
    return {
        "mode": "copy",
        "seconds": seconds,
        "rows": VinEntry.objects.filter(upload=upload).count(),
        "written": written,
        "peak_rss_mb": rss_after,
        "rss_before_mb": rss_before,
        "peak_rss_delta_mb": rss_after - rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["portal", "copy"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    connection.ensure_connection()
    # Import everything the timed part uses before the "before" reading.
    import connections.uploads.reading
    import connections.uploads.submission  # noqa: F401

    if args.mode == "portal":
        result = run_portal(args.file, args.tracemalloc)
    else:
        result = run_copy(args.file)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
