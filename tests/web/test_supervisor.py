"""`make run`'s process runner: honcho with the repository's own Procfile, in
which every line runs under `fleet_portal.respawn`. A worker killed with
SIGKILL comes back by itself, and the portal and the sandbox stay up (plain
honcho stops everything when one process exits)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures_sandbox import WEBHOOK_SECRET, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 60.0


def wait_for(what: str, probe, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f}s; honcho's log:\n{log.read_text()[-6000:]}")


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def worker_pids(database: Path) -> set[int]:
    """Workers that have beaten, from their ids (`<hostname>-<pid>`)."""
    try:
        with sqlite3.connect(database, timeout=5) as conn:
            ids = [
                row[0] for row in conn.execute("SELECT worker_id FROM connections_workerheartbeat")
            ]
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return set()
    prefix = f"{socket.gethostname()}-"
    return {int(i.removeprefix(prefix)) for i in ids if i.startswith(prefix)}


class Stack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "honcho.log"
        self.database = folder / "portal.sqlite3"
        port, sandbox_port = free_port(), free_port()
        self.portal = f"http://127.0.0.1:{port}"
        self.sandbox = f"http://127.0.0.1:{sandbox_port}"
        self.env = {
            **os.environ,
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            "DATA_DIR": str(folder),
            "DATABASE_URL": f"sqlite:///{self.database}",
            "SANDBOX_DATABASE_URL": f"sqlite:///{folder / 'sandbox.sqlite3'}",
            "PORT": str(port),
            "SANDBOX_PORT": str(sandbox_port),
            "VOLTERAS_API_URL": self.sandbox,
            "SANDBOX_BASE_URL": self.sandbox,
            "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "VOLTERAS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SANDBOX_WEBHOOK_URL": "",
            "WORKER_SWEEP_SECONDS": "0.5",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=REPO_ROOT, env=self.env, check=True,
        )  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "honcho", "start", "-f", "Procfile"],
                cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_killed_worker_comes_back_and_the_others_stay_up(stack):
    wait_for(
        "the portal answers", lambda: answers(f"{stack.portal}/healthz"), START_TIMEOUT, stack.log
    )
    wait_for(
        "the sandbox answers",
        lambda: answers(f"{stack.sandbox}/_sandbox/control"),
        START_TIMEOUT,
        stack.log,
    )
    (first,) = wait_for(
        "a worker beats", lambda: worker_pids(stack.database), START_TIMEOUT, stack.log
    )

    os.kill(first, signal.SIGKILL)

    def replaced() -> set[int]:
        assert stack.process.poll() is None, "honcho stopped: " + stack.log.read_text()[-4000:]
        assert answers(f"{stack.portal}/healthz"), "the portal went down with the worker"
        return worker_pids(stack.database) - {first}

    (second,) = wait_for("a new worker beats", replaced, 30, stack.log)
    assert second != first
    assert answers(f"{stack.sandbox}/_sandbox/control")
    assert answers(f"{stack.portal}/healthz")
    assert "starting it again" in stack.log.read_text()

    # Ctrl-C (honcho's SIGTERM to every line) still stops everything.
    stack.stop()
    assert stack.process.returncode is not None
    assert not answers(f"{stack.portal}/healthz")
