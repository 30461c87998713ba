"""The throwaway stack a benchmark runs on: environment, database, sandbox,
gunicorn and workers, each a subprocess this module starts and stops by pid.

Everything points at the PostgreSQL cluster `tests/pg_cluster.py` made for
this run (its DATABASE_URL), never at a database someone cares about: the
benchmarks truncate tables.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SETTINGS = "bench.settings"
SANDBOX_CLIENT_ID = "bench-client"
SANDBOX_CLIENT_SECRET = "bench-secret-0123456789"
WEBHOOK_SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ=="
START_TIMEOUT = 30.0
# The README's production command: `gunicorn fleet_portal.wsgi --workers 4`.
GUNICORN_WORKERS = 4


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def work_dir() -> Path:
    """One scratch folder per bench run (CSV files, SQLite files, logs)."""
    path = os.environ.get("BENCH_WORK_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="fleet-portal-bench-")
        os.environ["BENCH_WORK_DIR"] = path
    return Path(path)


def portal_env(**extra: str) -> dict[str, str]:
    """The environment of every portal process: production settings (DEBUG off)
    on the bench URLconf, the cluster's database, limits raised for 100k rows."""
    workdir = work_dir()
    rows = env_int("BENCH_ROWS", 100_000)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "SECURE_HTTPS": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": str(workdir),
        "UPLOAD_MAX_ROWS": str(max(rows, 50_000) + 1000),
        "UPLOAD_MAX_BYTES": str(512 * 1024 * 1024),
        "VOLTERAS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "VOLTERAS_CLIENT_ID": SANDBOX_CLIENT_ID,
        "VOLTERAS_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "SANDBOX_WEBHOOK_URL": "",
    }
    env.update(extra)
    return env


def prepare_database() -> None:
    """Create the cluster's `fleet_portal` database (initdb makes only
    `postgres`) and migrate it."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=portal_env(),
        check=True,
    )


def setup_django() -> None:
    """Configure Django in a benchmark subprocess (started with `portal_env`)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()


def bench_fleet(slug: str):
    """A fleet and its manager, created once per database."""
    from django.contrib.auth.models import User

    from connections.models import Fleet, Membership

    fleet, _ = Fleet.objects.get_or_create(
        slug=slug, defaults={"name": f"Bench {slug}", "default_country_code": "GB"}
    )
    user, _ = User.objects.get_or_create(username=f"manager-{slug}")
    Membership.objects.get_or_create(user=user, fleet=fleet)
    return fleet, user


def truncate_uploads() -> None:
    """Start a measurement from empty tables (uploads and all that hangs off
    them, webhook events, queued tasks)."""
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from connections.models import Upload, Vehicle, WebhookEvent

    tables = [m._meta.db_table for m in (Upload, Vehicle, WebhookEvent, DBTaskResult)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def wait_for_http(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(process)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise RuntimeError(f"{url} did not come up; log:\n{tail}")


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Sandbox:
    """`python -m sandbox` (its own settings) at instant speed, with its own SQLite file."""

    url: str
    log_path: Path
    database: Path
    process: subprocess.Popen = field(repr=False)

    @classmethod
    def start(cls, name: str) -> Sandbox:
        folder = work_dir() / f"sandbox-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        database = folder / "sandbox.sqlite3"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DATA_DIR": str(folder),
            "SANDBOX_DATABASE_URL": f"sqlite:///{database}",
            "SANDBOX_SPEED": "0",
            "SANDBOX_CLIENT_ID": SANDBOX_CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SANDBOX_WEBHOOK_URL": "",
            "SANDBOX_BASE_URL": url,
            "SANDBOX_VEHICLE_LIMIT": "1000000",
        }
        log_path = folder / "sandbox.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [PYTHON, "-m", "sandbox", "--addr", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        sandbox = cls(url, log_path, database, process)
        wait_for_http(f"{url}/_sandbox/control", process, log_path)
        return sandbox

    def use_in_this_process(self) -> None:
        from django.conf import settings

        settings.VOLTERAS_API_URL = self.url
        settings.VOLTERAS_CLIENT_ID = SANDBOX_CLIENT_ID
        settings.VOLTERAS_CLIENT_SECRET = SANDBOX_CLIENT_SECRET

    def requests_logged(self, method: str, path: str) -> int:
        """How many `method path` requests the sandbox's access log shows."""
        marker = f'"{method} {path} HTTP/'
        return self.log_path.read_text(errors="replace").count(marker)

    def stop(self) -> None:
        stop(self.process)


@dataclass
class Gunicorn:
    """The portal under gunicorn on a loopback port, as in production."""

    url: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @classmethod
    def start(cls, name: str, env: dict[str, str], workers: int = GUNICORN_WORKERS) -> Gunicorn:
        port = free_port()
        log_path = work_dir() / f"gunicorn-{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [PYTHON, "-m", "gunicorn", "fleet_portal.wsgi",
                 "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                 "--backlog", "2048", "--graceful-timeout", "5"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = cls(f"http://127.0.0.1:{port}", log_path, process)
        wait_for_http(f"{server.url}/_bench/trivial-post/", process, log_path)
        return server

    def stop(self) -> None:
        stop(self.process)


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen]:
    """`manage.py run_worker` processes, logging into the work folder."""
    processes = []
    for number in range(count):
        log_path = work_dir() / f"worker-{number}.log"
        command = [PYTHON, "manage.py", "run_worker", "--interval", "0.1"]
        command += ["--worker-id", f"bench-{number}"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        processes.append(process)
    return processes
