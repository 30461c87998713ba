"""`make bench`: the performance targets, each as a ratio against a baseline
measured side by side in the same run. A report, not a test: it exits 0 even
when a target is missed, and says so plainly.

    .venv/bin/python bench/run.py

Re-runs itself under `tests/pg_cluster.py` (a throwaway PostgreSQL cluster),
then runs each target in its own subprocess (`python -m bench.<module>`).
Environment knobs, for quick runs:

    BENCH_ONLY              comma list of: upload, table, connect, webhook, fleet
    BENCH_ROWS              CSV rows for target 1 (100000)
    BENCH_UPLOAD_REPEAT     timed portal/COPY pairs for target 1 (2)
    BENCH_TRACEMALLOC       1 to add a tracemalloc run of the portal (1)
    BENCH_TABLE_VINS        entries of the upload in target 2 (100000)
    BENCH_REQUESTS          timed rounds per view in target 2 (150)
    BENCH_CONNECT_VINS      VINs submitted in target 3 (1050)
    BENCH_WEBHOOK_EVENTS    signed events in the burst of target 4 (10000)
    BENCH_WEBHOOK_VEHICLES  vehicles those events name (300)
    BENCH_WEBHOOK_WORKERS   run_worker processes for the burst (2)
    BENCH_WEBHOOK_TIMEOUT   seconds processing may take (420)
    BENCH_FLEET_VINS        entries of the fleet in target 5 (106000, ~100,000 listed)
    BENCH_FLOOR_READS       plain GET /v1/vehicles/{id} timed against the sandbox alone (2000)
    BENCH_KEEP              1 to keep the work folder (CSV, logs) afterwards
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import data  # noqa: E402
from bench.report import Row, Target, print_target, write_json  # noqa: E402
from bench.stack import PYTHON, env_int, portal_env, prepare_database, work_dir  # noqa: E402

ALL = ("upload", "table", "connect", "webhook", "fleet")


def run_module(module: str, *args: str, timeout: float = 1200) -> dict[str, Any]:
    """Run `python -m bench.<module>` and return the JSON of its last line."""
    done = subprocess.run(
        [PYTHON, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        env=portal_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench.{module} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def ratio(portal: float, baseline: float) -> float | None:
    return portal / baseline if baseline else None


def upload_target() -> Target:
    rows = env_int("BENCH_ROWS", 100_000)
    repeat = env_int("BENCH_UPLOAD_REPEAT", 2)
    target = Target(1, f"{rows:,}-row CSV validated and stored vs PostgreSQL COPY")
    path = data.write_csv(work_dir() / "upload.csv", rows)
    runs: dict[str, list[dict[str, Any]]] = {"copy": [], "portal": []}
    for _ in range(repeat):
        for mode in ("copy", "portal"):
            runs[mode].append(run_module("upload_speed", mode, str(path)))
    traced = None
    if env_int("BENCH_TRACEMALLOC", 1):
        traced = run_module("upload_speed", "portal", str(path), "--tracemalloc")
    portal_s = statistics.median(r["seconds"] for r in runs["portal"])
    copy_s = statistics.median(r["seconds"] for r in runs["copy"])
    stored = {r["rows"] for r in runs["portal"]} | {r["rows"] for r in runs["copy"]}
    time_ratio = ratio(portal_s, copy_s)
    target.rows.append(
        Row(
            "time (median wall)",
            f"{portal_s:.2f} s ({rows / portal_s:,.0f} rows/s)",
            f"{copy_s:.2f} s ({rows / copy_s:,.0f} rows/s)",
            time_ratio,
            "<= 3.00x",
            time_ratio is not None and time_ratio <= 3 and stored == {rows},
        )
    )
    peak = max(r["peak_rss_mb"] for r in runs["portal"])
    copy_peak = max(r["peak_rss_mb"] for r in runs["copy"])
    target.rows.append(
        Row(
            "peak memory (process RSS)",
            f"{peak:.0f} MB",
            f"{copy_peak:.0f} MB (COPY process)",
            ratio(peak, copy_peak),
            "< 250 MB",
            peak < 250,
        )
    )
    delta = max(r["peak_rss_delta_mb"] for r in runs["portal"])
    before = runs["portal"][0]["rss_before_mb"]
    target.notes.append(
        f"portal runs {[round(r['seconds'], 2) for r in runs['portal']]} s, COPY runs "
        f"{[round(r['seconds'], 2) for r in runs['copy']]} s (interleaved, fresh table each)"
    )
    target.notes.append(
        f"RSS growth during the upload: {delta:.1f} MB over {before:.0f} MB of interpreter"
        " + Django"
        + (
            f"; tracemalloc peak {traced['tracemalloc_peak_mb']:.1f} MB"
            f" (that run took {traced['seconds']:.1f} s under tracing)"
            if traced
            else ""
        )
    )
    target.notes.append(f"rows stored: {sorted(stored)}; statuses {runs['portal'][0]['statuses']}")
    target.raw = {"runs": runs, "tracemalloc": traced}
    return target


def table_target() -> Target:
    result = run_module("live_table")
    target = Target(
        2,
        f"live table poll of a {result['entries']:,}-VIN upload vs a trivial view "
        "(HTTP, gunicorn, PostgreSQL)",
    )
    checks = result["checks"]
    trivial = result["trivial"]["median_ms"]
    statuses, rendered = checks["statuses"], checks["rendered"]
    for name, label, goal, expected in (
        ("changed5", "5 of 100 rows changed", 2.0, rendered["changed5"] == [5]),
        ("changed100", "all 100 rows changed", 3.0, rendered["changed100"] == [100]),
        ("unchanged", "unchanged (204)", 1.2, statuses["unchanged"] == [204]),
    ):
        median = result[name]["median_ms"]
        value = ratio(median, trivial)
        target.rows.append(
            Row(
                f"{label}, median",
                f"{median:.2f} ms (p95 {result[name]['p95_ms']:.2f})",
                f"{trivial:.2f} ms (p95 {result['trivial']['p95_ms']:.2f})",
                value,
                f"<= {goal:.2f}x",
                value is not None and value <= goal and expected,
            )
        )
    queries = result["queries"]
    target.notes.append(
        f"checks: {checks}; {result['trivial']['n']} interleaved rounds after warm-up"
    )
    for name in ("trivial", "changed100", "unchanged"):
        q = queries[name]
        target.notes.append(f"{name}: {q['count']} queries, {q['total_ms']:.0f} ms")
    target.raw = result
    return target


def connect_target() -> Target:
    result = run_module("connect_calls")
    target = Target(3, f"{result['vins']:,} VINs cost ceil(N/100) connect calls (sandbox)")
    calls, expected = result["connect_calls"], result["expected_calls"]
    target.rows.append(
        Row(
            "POST /v1/vehicles/connect",
            f"{calls} calls ({result['sandbox_groups']} groups in the sandbox)",
            f"ceil({result['ready']}/100) = {expected}",
            ratio(calls, expected),
            "exactly 1.00x",
            calls == expected == result["sandbox_groups"] and result["ready"] == result["vins"],
        )
    )
    target.notes.append(
        f"batches {result['batch_states']}, largest {result['batch_sizes_max']} VINs; "
        f"final statuses {result['statuses']}; {result['tasks_run']} tasks in "
        f"{result['seconds']:.1f} s"
    )
    target.raw = result
    return target


def webhook_target() -> Target:
    result = run_module("webhook_intake")
    target = Target(
        4, f"webhook intake on gunicorn + PostgreSQL, burst of {result['events']:,} events"
    )
    trivial, webhook = result["trivial"], result["webhook"]
    value = ratio(webhook["rate"], trivial["rate"])
    all_ok = set(webhook["statuses"]) == {"200"}
    target.rows.append(
        Row(
            "request rate (higher is better)",
            f"{webhook['rate']:.0f} req/s ({webhook['sent']} in {webhook['seconds']:.1f} s)",
            f"{trivial['rate']:.0f} req/s trivial POST",
            value,
            ">= 0.50x",
            value is not None and value >= 0.5 and all_ok,
        )
    )
    check = result["check"]
    processing = result["processing"]
    sent = result["events"] + check["duplicates_sent"]
    target.rows.append(
        Row(
            "processed exactly once",
            f"{check['rows']} rows, {check['states'].get('processed', 0)} processed, "
            f"{check['claims']} claims, {check['duplicates_recorded']} dups recorded",
            f"{result['events']} ids sent (+{check['duplicates_sent']} redelivered)",
            ratio(check["states"].get("processed", 0), result["events"]),
            "exactly 1.00x",
            bool(check["exactly_once"]) and all_ok,
        )
    )
    floor = result["floor"]
    # A report, not a target: how close processing comes to the sandbox's own
    # rate for the reads it needs (one GET per event).
    target.rows.append(
        Row(
            "processing vs sandbox floor",
            f"{processing['rate']:.1f} events/s",
            f"{floor['parallel']:.1f} GET/s ({floor['threads']} threads; "
            f"{floor['sequential']:.1f} one at a time)",
            ratio(processing["rate"], floor["parallel"]),
            "report",
            True,
        )
    )
    target.notes.append(
        f"webhook answers {webhook['answers']} HTTP {webhook['statuses']} for {sent} deliveries; "
        f"trivial HTTP {trivial['statuses']}"
    )
    target.notes.append(
        "rates per slice (webhook / trivial): "
        + ", ".join(
            f"{w['rate']:.0f}/{t['rate']:.0f}"
            for w, t in zip(webhook["runs"], trivial["runs"], strict=True)
        )
        + f"; latency median {webhook['runs'][0]['latency_median_ms']:.0f} ms vs "
        f"{trivial['runs'][0]['latency_median_ms']:.0f} ms (first slice)"
    )
    target.notes.append(
        f"processing: {processing['finished']} events (incl. warm-up) in "
        f"{processing['seconds']:.1f} s = {processing['rate']:.1f} events/s with "
        f"{env_int('BENCH_WEBHOOK_WORKERS', 2)} workers; "
        f"{check['disconnected_entries']} entries of {result['disconnected_vehicles']} "
        f"disconnected vehicles -> {check['timeline_events']} timeline events "
        f"({check['timeline_distinct_svix_ids']} distinct svix ids)"
    )
    target.notes.append(
        f"lost {check['lost']}, unfinished {check['unfinished']}, failed {check['failed']}; "
        f"queue rows {check['tasks']}"
    )
    target.raw = result
    return target


def fleet_target() -> Target:
    result = run_module("fleet_list", timeout=2400)
    target = Target(5, f"fleet vehicle list of {result['entries']:,} VINs vs a trivial view")
    trivial = result["trivial"]["median_ms"]
    for name, status in result["checks"].items():
        if name == "trivial":
            continue
        median = result[name]["median_ms"]
        value = ratio(median, trivial)
        target.rows.append(
            Row(
                f"first page, {name}",
                f"{median:.2f} ms (p95 {result[name]['p95_ms']:.2f})",
                f"{trivial:.2f} ms",
                value,
                "<= 3.00x",
                value is not None and value <= 3 and status == 200,
            )
        )
    best = min(result["exports"], key=lambda e: e["portal_seconds"])
    speed = ratio(best["copy_seconds"], best["portal_seconds"])
    target.rows.append(
        Row(
            f"CSV export, {best['rows']:,} rows",
            f"{best['portal_seconds']:.2f} s ({best['rows'] / best['portal_seconds']:,.0f} rows/s)",
            f"{best['copy_seconds']:.2f} s (COPY TO STDOUT)",
            speed,
            ">= 0.30x speed",
            speed is not None and speed >= 0.3,
        )
    )
    target.rows.append(
        Row(
            "peak memory (process RSS)",
            f"{result['peak_rss_mb']:.0f} MB",
            f"{result['rss_before_export_mb']:.0f} MB before the exports",
            None,
            "< 150 MB",
            result["peak_rss_mb"] < 150,
        )
    )
    target.notes.append(f"exports: {result['exports']}")
    target.raw = result
    return target


TARGETS = {
    "upload": upload_target,
    "table": table_target,
    "connect": connect_target,
    "webhook": webhook_target,
    "fleet": fleet_target,
}
TITLES = {
    "upload": (1, "100k-row CSV vs COPY"),
    "table": (2, "live table poll vs trivial view"),
    "connect": (3, "connect calls"),
    "webhook": (4, "webhook intake"),
    "fleet": (5, "fleet vehicle list and export"),
}


def in_cluster() -> int:
    started = datetime.now(UTC)
    os.environ.update(portal_env())
    selected = [name.strip() for name in os.environ.get("BENCH_ONLY", ",".join(ALL)).split(",")]
    unknown = set(selected) - set(ALL)
    if unknown:
        print(f"BENCH_ONLY: unknown targets {sorted(unknown)}; choose from {ALL}")
        return 2
    print(f"Bench work folder: {work_dir()}; load average {os.getloadavg()}", flush=True)
    prepare_database()
    targets = []
    for name in selected:
        clock = time.perf_counter()
        print(f"\n-- running {name} ...", flush=True)
        try:
            target = TARGETS[name]()
        except Exception as exc:
            number, title = TITLES[name]
            target = Target(number, title)
            target.rows.append(Row("did not complete", str(exc)[:200], "", None, "runs", False))
            target.notes.append(str(exc)[-2000:])
        target.notes.append(f"took {time.perf_counter() - clock:.0f} s")
        print_target(target)
        targets.append(target)
    settings = {key: value for key, value in sorted(os.environ.items()) if key.startswith("BENCH_")}
    path = write_json(targets, started, settings)
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(work_dir(), ignore_errors=True)
    print("\n== Summary")
    for target in targets:
        print(f"   Target {target.number}: {'PASS' if target.passed else 'FAIL'}  {target.title}")
    print(f"\nResults: {path.relative_to(ROOT)}  (a report: the exit code is 0 either way)")
    return 0


def main() -> int:
    if os.environ.get("BENCH_IN_CLUSTER") == "1":
        return in_cluster()
    # Always a throwaway cluster: the bench truncates tables, so it must never
    # run against a DATABASE_URL someone cares about.
    env = {**os.environ, "BENCH_IN_CLUSTER": "1"}
    command = [PYTHON, str(ROOT / "tests" / "pg_cluster.py"), "--", PYTHON, __file__]
    return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
