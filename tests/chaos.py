"""Chaos: VINs sent through real `run_worker` processes while the sandbox
injects faults and workers are killed with SIGKILL, then compared with what
the sandbox itself holds.

A library for `tests/sending/test_chaos.py` (a small run in `make test`) and a
script for `make chaos` (thousands of VINs, several workers, repeated kills):

    .venv/bin/python tests/chaos.py    # re-runs itself under tests/pg_cluster.py

Knobs: CHAOS_VINS (3000), CHAOS_WORKERS (3), CHAOS_KILL_EVERY (seconds, 4),
CHAOS_TIMEOUT (seconds to settle, 600).

The portal, the workers and the test process share one PostgreSQL database;
the sandbox keeps its own SQLite file, from which the truth is read: the
outcome Volteras decided for each VIN the first time it saw it, and every
connect group it was sent in.
"""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from connections.vin import check_digit  # noqa: E402

PYTHON = sys.executable
START_TIMEOUT = 60.0

# Every 10 VINs: one error needing the customer, one incompatible, one waiting
# for the owner's consent, the rest connect (valid check digits, several makes).
PREFIXES = {0: "PERR0R11", 1: "1NC0MP11", 2: "C0NSENT1"}
MAKES = (("WVW", "Volkswagen"), ("WBA", "BMW"), ("VF1", "Renault"), ("TMB", "Skoda"))
_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
SANDBOX_CREDENTIALS = ("chaos-client", "chaos-secret-0123456789")
WEBHOOK_SECRET = "whsec_Y2hhb3Mtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ=="


def faults(hang_seconds: float = 4.0) -> list[dict[str, Any]]:
    """What the sandbox does wrong: 429 bursts, 5xx, hangs, POSTs applied but
    never answered (ambiguous), slow answers. Order matters: the first match fires."""
    connect = {"path_prefix": "/v1/vehicles/connect", "method": "POST"}
    return [
        {"kind": "rate_limit", "count": 6, "retry_after": 1},
        {"kind": "error", "share": 0.12},
        {"kind": "hang", **connect, "count": 2, "seconds": hang_seconds},
        {"kind": "drop", **connect, "share": 0.25},
        {"kind": "latency", "share": 0.2, "ms": 150},
    ]


def vin(serial: int) -> str:
    """A VIN per serial (below 10**8), the sandbox outcome chosen by `serial % 10`."""
    prefix = PREFIXES.get(serial % 10)
    if prefix is None:
        wmi = MAKES[serial % len(MAKES)][0]
        prefix = f"{wmi}{_ALPHABET[serial % 33]}{_ALPHABET[serial // 33 % 33]}0N0"
    body = f"{prefix}0{serial:08d}"
    return body[:8] + check_digit(body) + body[9:]


def upload_csv(count: int) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["VIN", "Make", "Country"])
    for serial in range(count):
        writer.writerow([vin(serial), MAKES[serial % len(MAKES)][1], "DE"])
    return text.getvalue().encode()


@dataclass
class Stack:
    """The portal and workers (subprocesses), aimed at one sandbox and database."""

    folder: Path
    database_url: str
    sandbox_url: str
    credentials: tuple[str, str]
    webhook_secret: str
    portal_url: str = ""
    portal: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    kills: int = 0

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fleet_portal.settings",
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(self.folder),
            "DATABASE_URL": self.database_url,
            "SANDBOX_DATABASE_URL": f"sqlite:///{self.folder / 'unused-sandbox.sqlite3'}",
            "VOLTERAS_API_URL": self.sandbox_url,
            "VOLTERAS_CLIENT_ID": self.credentials[0],
            "VOLTERAS_CLIENT_SECRET": self.credentials[1],
            "VOLTERAS_WEBHOOK_SECRET": self.webhook_secret,
            "VOLTERAS_TIMEOUT": "2",
            "WORKER_SWEEP_SECONDS": "1",
            "WORKER_LEASE_SECONDS": "6",
        }

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with (self.folder / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start_portal(self, port: int) -> None:
        self.portal_url = f"http://127.0.0.1:{port}"
        self.portal = self._spawn("portal", "runserver", f"127.0.0.1:{port}", "--noreload")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.portal.poll() is None:
            try:
                httpx.get(f"{self.portal_url}/healthz", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the portal did not start: {self.log('portal')[-3000:]}")

    def start_worker(self) -> None:
        number = len(self.workers)
        self.workers.append(
            self._spawn(f"worker-{number}", "run_worker", "--interval", "0.1",
                        "--worker-id", f"chaos-{number}")
        )  # fmt: skip

    def kill_worker(self, rng: random.Random) -> int:
        """SIGKILL one live worker (no chance to clean up), start a fresh one."""
        alive = [p for p in self.workers if p.poll() is None]
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.start_worker()
        return victim.pid

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in [*self.workers, self.portal]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.portal]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sandbox_truth(database: Path) -> dict[str, dict[str, Any]]:
    """Per VIN: the outcome the sandbox decided the first time, and the groups it was sent in."""
    truth: dict[str, dict[str, Any]] = {}
    groups: dict[str, set[str]] = defaultdict(set)
    with sqlite3.connect(database, timeout=30) as conn:
        rows = conn.execute(
            "SELECT vin, outcome, group_id FROM sandbox_vehicleinput ORDER BY pk_seq"
        ).fetchall()
    for number, outcome, group in rows:
        truth.setdefault(number, {"outcome": outcome})
        groups[number].add(group)
    for number, seen in truth.items():
        seen["groups"] = len(groups[number])
    return truth


def progress(upload_id: int) -> dict[str, int]:
    from connections.models import ConnectBatch, VinEntry, VinStatus

    entries = VinEntry.objects.filter(upload_id=upload_id)
    return {
        "unsettled": entries.exclude(status__in=VinStatus.final()).count(),
        "open_batches": ConnectBatch.objects.filter(upload_id=upload_id)
        .exclude(state__in=[ConnectBatch.State.DONE, ConnectBatch.State.FAILED])
        .count(),
    }


def wait_until_settled(
    upload_id: int, timeout: float, tick: Callable[[float], None] | None = None
) -> float | None:
    """Seconds until every VIN is final and every batch closed (None: timed out).
    `tick(elapsed)` runs about every half second meanwhile (the kills)."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < timeout:
        now = progress(upload_id)
        if not now["unsettled"] and not now["open_batches"]:
            return elapsed
        if tick is not None:
            tick(elapsed)
        time.sleep(0.5)
    return None


def compare(upload_id: int, truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The portal's final status of each VIN against the sandbox's."""
    from connections.models import VinEntry

    mismatches = []
    statuses: Counter[str] = Counter()
    for number, status in VinEntry.objects.filter(upload_id=upload_id).values_list("vin", "status"):
        statuses[status] += 1
        expected = truth.get(number, {}).get("outcome", "never reached the sandbox")
        if status != expected:
            mismatches.append((number, status, expected))
    return {
        "statuses": dict(statuses),
        "mismatches": mismatches,
        "sent_in_two_groups": sum(1 for seen in truth.values() if seen["groups"] > 1),
    }


def submit_vins(fleet, user, count: int) -> int:
    from connections.uploads.reading import read_upload
    from connections.uploads.submission import create_upload, submit

    upload = create_upload(fleet, user, read_upload(upload_csv(count), filename="chaos.csv"))
    submit(upload, user)
    return upload.pk


def sandbox_calls(sandbox_url: str) -> int:
    deliveries = httpx.get(f"{sandbox_url}/_sandbox/webhooks.json", timeout=10).json()
    return sum(len(d["attempts"]) for d in deliveries["deliveries"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temp_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="fleet-portal-chaos-"))


def start_sandbox(folder: Path, port: int) -> tuple[str, subprocess.Popen, Path]:
    """`python -m sandbox` at instant speed with its own SQLite file."""
    url = f"http://127.0.0.1:{port}"
    database = folder / "sandbox.sqlite3"
    env = {
        **os.environ,
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
        "DATA_DIR": str(folder),
        "DATABASE_URL": f"sqlite:///{folder / 'sandbox-side-portal.sqlite3'}",
        "SANDBOX_DATABASE_URL": f"sqlite:///{database}",
        "SANDBOX_SPEED": "0",
        "SANDBOX_CLIENT_ID": SANDBOX_CREDENTIALS[0],
        "SANDBOX_CLIENT_SECRET": SANDBOX_CREDENTIALS[1],
        "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SANDBOX_WEBHOOK_URL": "",
        "SANDBOX_BASE_URL": url,
        "SANDBOX_VEHICLE_LIMIT": "1000000",
    }
    with (folder / "sandbox.log").open("ab") as log:
        process = subprocess.Popen(
            [PYTHON, "-m", "sandbox", "--addr", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/_sandbox/control", timeout=2).status_code == 200:
                return url, process, database
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the sandbox did not start")


def prepare_database(stack: Stack) -> None:
    """Create the cluster's database (initdb makes only `postgres`) and migrate it."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(stack.database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=stack.env(), check=True,
    )  # fmt: skip
    os.environ.update(stack.env())
    import django

    django.setup()


def chaos_fleet():
    from django.contrib.auth.models import User

    from connections.models import Fleet, Membership

    fleet, _ = Fleet.objects.get_or_create(
        slug="chaos", defaults={"name": "Chaos", "default_country_code": "DE"}
    )
    user, _ = User.objects.get_or_create(username="chaos-manager")
    Membership.objects.get_or_create(user=user, fleet=fleet)
    return fleet, user


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def run_chaos(stack: Stack, sandbox_db: Path) -> dict[str, Any]:
    count = int(env_number("CHAOS_VINS", 3000))
    kill_every = env_number("CHAOS_KILL_EVERY", 4)
    for _ in range(int(env_number("CHAOS_WORKERS", 3))):
        stack.start_worker()
    control = {"faults": faults(), "webhook_duplicates": 0.3}
    control["webhook_url"] = f"{stack.portal_url}/webhooks/volteras/"
    httpx.post(
        f"{stack.sandbox_url}/_sandbox/control",
        json=control,
        auth=SANDBOX_CREDENTIALS,
        timeout=10,
    ).raise_for_status()
    rng = random.Random(12)
    next_kill = [kill_every]

    def kill_on_schedule(elapsed: float) -> None:
        if elapsed >= next_kill[0]:
            stack.kill_worker(rng)
            next_kill[0] += kill_every

    upload_id = submit_vins(*chaos_fleet(), count)
    settled = wait_until_settled(upload_id, env_number("CHAOS_TIMEOUT", 600), kill_on_schedule)
    httpx.post(
        f"{stack.sandbox_url}/_sandbox/control",
        json={"faults": []},
        auth=SANDBOX_CREDENTIALS,
        timeout=10,
    ).raise_for_status()
    result = compare(upload_id, sandbox_truth(sandbox_db))
    return {
        "vins": count,
        "workers": int(env_number("CHAOS_WORKERS", 3)),
        "kills": stack.kills,
        "faults": control["faults"],
        "webhook_duplicates": control["webhook_duplicates"],
        "seconds_to_settle": None if settled is None else round(settled, 1),
        **progress(upload_id),
        **result,
    }


def report(figures: dict[str, Any]) -> None:
    print("\n=== make chaos ===")
    print(f"VINs: {figures['vins']:,}   workers: {figures['workers']}   kills (SIGKILL): "
          f"{figures['kills']}")  # fmt: skip
    for fault in figures["faults"]:
        print(f"fault: {fault}")
    print(f"webhook duplicates: {figures['webhook_duplicates']:.0%} of deliveries sent twice")
    print(f"time to settle: {figures['seconds_to_settle']} s")
    print(f"final statuses: {figures['statuses']}")
    print(f"VINs sent in two connect groups (ambiguous POSTs resent): "
          f"{figures['sent_in_two_groups']}")  # fmt: skip
    print(f"not settled: {figures['unsettled']}   open batches: {figures['open_batches']}")
    print(f"mismatches with the sandbox: {len(figures['mismatches'])}")
    for mismatch in figures["mismatches"][:20]:
        print(f"  {mismatch}")


def main() -> int:
    if not os.environ.get("CHAOS_IN_CLUSTER"):
        env = {**os.environ, "CHAOS_IN_CLUSTER": "1"}
        command = [PYTHON, str(ROOT / "tests" / "pg_cluster.py"), "--", PYTHON, __file__]
        return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    folder = temp_folder()
    sandbox_url, sandbox, sandbox_db = start_sandbox(folder, free_port())
    stack = Stack(folder, os.environ["DATABASE_URL"], sandbox_url, SANDBOX_CREDENTIALS,
                  WEBHOOK_SECRET)  # fmt: skip
    try:
        prepare_database(stack)
        stack.start_portal(free_port())
        figures = run_chaos(stack, sandbox_db)
    finally:
        stack.stop()
        sandbox.terminate()
        sandbox.wait(timeout=15)
    report(figures)
    print(f"logs: {folder}")
    ok = figures["seconds_to_settle"] is not None and not figures["mismatches"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
