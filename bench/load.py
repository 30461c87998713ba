"""A bounded HTTP load on loopback, from its own process.

    python -m bench.load URL REQUESTS.jsonl [--threads 16] [--timeout 300]

Sends every request of the file (one JSON object a line: `headers`, `body`)
as a POST to URL, from a pool of threads each holding a stdlib
`http.client` connection (cheaper per request than httpx, so the server, not
the load, is what is measured). Stops early at the deadline. Prints one JSON
line: count, wall time, rate, status codes, the `status` field of JSON
answers, and latency median/p95.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("requests", type=Path)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    parts = urlsplit(args.url)
    items = [json.loads(line) for line in args.requests.read_text().splitlines() if line]
    prepared = [(item["body"].encode(), item["headers"]) for item in items]
    position = iter(range(len(prepared)))
    take = threading.Lock()
    statuses: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    record = threading.Lock()
    deadline = time.monotonic() + args.timeout

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < deadline:
            with take:
                index = next(position, None)
            if index is None:
                break
            body, headers = prepared[index]
            started = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = str(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status, data = f"error:{exc.__class__.__name__}", b""
            elapsed = (time.perf_counter() - started) * 1000
            try:
                answer = str(json.loads(data).get("status", "")) if data else ""
            except (ValueError, AttributeError):
                answer = "not-json"
            with record:
                statuses[status] += 1
                answers[answer] += 1
                latencies.append(elapsed)
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in range(args.threads):
            pool.submit(worker)
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    sent = len(ordered)
    print(
        json.dumps(
            {
                "sent": sent,
                "planned": len(prepared),
                "seconds": seconds,
                "rate": sent / seconds if seconds else 0.0,
                "statuses": dict(statuses),
                "answers": dict(answers),
                "latency_median_ms": statistics.median(ordered) if ordered else None,
                "latency_p95_ms": ordered[round(0.95 * (sent - 1))] if ordered else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
