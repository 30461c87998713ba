"""Target 2: the live table's poll of a large upload vs a trivial view, over
real HTTP on the production stack.

    python -m bench.live_table

Builds a submitted upload of BENCH_TABLE_VINS (100,000) entries in a mix of
statuses, starts gunicorn (`--workers 4`, DEBUG off, PostgreSQL, as in
production: bench/stack.py) and times, from this process over HTTP with a
logged-in manager's session, round after round, interleaved:

- trivial: `GET /_bench/trivial/` (bench/urls.py), login required like the table;
- changed 5: 5 of the page's 100 rows changed since the browser's last look,
  which sends the keys of the keyed elements it shows (`Live-Keys`: its 100 rows,
  the summary, head, pager and poller, as live.js does): 5 rows rendered, 95
  placeholders;
- changed 100: every row of the page changed: 100 rows rendered, none of them
  ever rendered before (their content is new);
- unchanged: the browser is at the current version: 204.

Rows are changed between timed requests by SQL (their last-change time and
message, and the upload's version, as a transition does). The upload's counts
for each new version are made before the timed request, as the first poll after
a change does once for every viewer. Prints one JSON line with median/p95 of
each and the queries one request makes.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx

from bench.data import copy_entries, vin
from bench.stack import (
    Gunicorn,
    bench_fleet,
    env_int,
    portal_env,
    setup_django,
    truncate_uploads,
)

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


KEY = re.compile(r'<tr id="(entry-\d+)" data-key="([0-9a-f]+)"')
# Every keyed element of the region (rows, summary, head, pager, poller): what
# live.js sends back as `Live-Keys`.
KEYED = re.compile(r'\bid="([^"]+)" data-key="([^"]+)"')
# A row's placeholder (the region's other parts have placeholders too).
KEPT = re.compile(r'<tr id="entry-\d+" data-key="[0-9a-f]+" data-live-keep>')


class Browser:
    """What a browser showing the table's first page holds: the session, the
    version it saw and the key of every keyed element, rows and the region's
    other parts, as live.js sends them back (`Live-Keys`)."""

    def __init__(self, url: str, session: str, upload_id: int) -> None:
        self.http = httpx.Client(base_url=url, cookies={"sessionid": session}, timeout=30)
        self.rows_url = f"/uploads/{upload_id}/rows/"
        self.keys: dict[str, str] = {}
        self.rendered = 0

    def poll(self, version: int) -> httpx.Response:
        """The request alone (what is timed): its answer is read by `read`."""
        headers = {
            "HX-Request": "true",
            "HX-Target": "live",
            "Live-Keys": " ".join(f"{k}={v}" for k, v in self.keys.items()),
        }
        return self.http.get(self.rows_url, params={"v": version}, headers=headers)

    def read(self, response: httpx.Response) -> httpx.Response:
        """Take in what a poll sent, as live.js does, outside the timing: the
        regexes over 100 rows cost this process about 2 ms, which is not the
        portal's time."""
        # Rows sent whole, not as a placeholder for one the browser has.
        self.rendered = len(KEY.findall(response.text)) - len(KEPT.findall(response.text))
        self.keys.update(KEYED.findall(response.text))
        return response

    def trivial(self) -> httpx.Response:
        return self.http.get("/_bench/trivial/")


def change_rows(upload_id: int, ids: list[int], round_no: int) -> int:
    """Change what `ids` show (as a transition would) and move the upload's
    version on; count the new version (outside the timing); return it."""
    from django.db import connection

    from connections.models import Upload
    from connections.models.summaries import entry_groups

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connections_vinentry SET status_changed_at = now(), "
            "message = %s WHERE id = ANY(%s)",
            [f"Bench change {round_no}.", ids],
        )
        cursor.execute(
            "UPDATE connections_upload SET version = version + 1 WHERE id = %s", [upload_id]
        )
    upload = Upload.objects.select_related("summary").get(pk=upload_id)
    entry_groups(upload)
    return upload.version


def session_of(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def main() -> None:
    setup_django()
    count = env_int("BENCH_TABLE_VINS", 100_000)
    rounds = env_int("BENCH_REQUESTS", 150)
    warmup = env_int("BENCH_WARMUP", 20)
    started = time.perf_counter()
    upload, user, written = build_upload(count)
    page_ids = list(upload.entries.order_by("line_number", "pk").values_list("pk", flat=True)[:100])
    setup_seconds = time.perf_counter() - started
    server = Gunicorn.start("table", portal_env())
    try:
        result = measure(server.url, session_of(user), upload.pk, page_ids, rounds, warmup)
    finally:
        server.stop()
    result.update(entries=written, setup_seconds=setup_seconds, loadavg=os.getloadavg())
    result["queries"] = queries(upload.pk, user, page_ids)
    print(json.dumps(result), flush=True)


def measure(
    url: str, session: str, upload_id: int, page_ids: list[int], rounds: int, warmup: int
) -> dict[str, Any]:
    browser = Browser(url, session, upload_id)
    version = change_rows(upload_id, [], 0)
    first = browser.read(browser.poll(version - 1))
    checks: dict[str, Any] = {"first_status": first.status_code, "first_rows": browser.rendered}
    samples: dict[str, list[float]] = {
        "trivial": [],
        "changed5": [],
        "changed100": [],
        "unchanged": [],
    }
    rendered: dict[str, list[int]] = {"changed5": [], "changed100": []}
    statuses: dict[str, set[int]] = {name: set() for name in samples}
    for number in range(warmup + rounds):
        into = samples if number >= warmup else {name: [] for name in samples}
        statuses["trivial"].add(timed(browser.trivial, into["trivial"]).status_code)
        old = version
        version = change_rows(upload_id, page_ids[(number * 5) % 95 :][:5], number)
        answer = browser.read(timed(partial(browser.poll, old), into["changed5"]))
        statuses["changed5"].add(answer.status_code)
        rendered["changed5"].append(browser.rendered)
        answer = browser.read(timed(partial(browser.poll, version), into["unchanged"]))
        statuses["unchanged"].add(answer.status_code)
        old = version
        version = change_rows(upload_id, page_ids, number)
        answer = browser.read(timed(partial(browser.poll, old), into["changed100"]))
        statuses["changed100"].add(answer.status_code)
        rendered["changed100"].append(browser.rendered)
    checks.update(
        statuses={name: sorted(codes) for name, codes in statuses.items()},
        rendered={name: sorted(set(counts)) for name, counts in rendered.items()},
    )
    return {"checks": checks, **{name: stats(values) for name, values in samples.items()}}


def queries(upload_id: int, user, page_ids: list[int]) -> dict[str, Any]:
    """The SQL of each request, through Django's test Client in this process."""
    from django.test import Client

    from connections.models import Upload

    client = Client()
    client.force_login(user)
    rows_url = f"/uploads/{upload_id}/rows/"
    htmx = {"HX-Request": "true", "HX-Target": "live"}
    version = Upload.objects.get(pk=upload_id).version
    return {
        "trivial": queries_of(lambda: client.get("/_bench/trivial/")),
        "changed100": queries_of(lambda: client.get(rows_url, {"v": version - 1}, headers=htmx)),
        "unchanged": queries_of(lambda: client.get(rows_url, {"v": version}, headers=htmx)),
    }


if __name__ == "__main__":
    main()
