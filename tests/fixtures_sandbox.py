"""Pytest plugin: the offline Volteras sandbox as a real subprocess.

`sandbox_server` (session) starts `python -m sandbox` (its own settings,
`sandbox.settings`) on a free loopback port with its own temporary database,
SANDBOX_SPEED=0 and known credentials;
`sandbox` (function) resets its data and faults before each test.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from connections.volteras import get_client
from tests.contract import response_hook
from tests.flows import PORTAL

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-0123456789"
WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1mb3Itc2FuZGJveA=="
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SandboxServer:
    url: str
    client_id: str
    client_secret: str
    webhook_secret: str
    log_path: Path
    process: subprocess.Popen

    def _post(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        # Every change to the sandbox needs its client credentials.
        response = httpx.post(
            f"{self.url}{path}", json=payload or {}, auth=self.credentials, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    @property
    def credentials(self) -> tuple[str, str]:
        """HTTP Basic credentials for `/_sandbox/` changes (and the token endpoint)."""
        return (self.client_id, self.client_secret)

    def control(self, **options: Any) -> dict[str, Any]:
        """Change runtime knobs (webhook_url, speed, vehicle_limit, token_ttl, faults, ...)."""
        return self._post("/_sandbox/control", options)

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox/control", timeout=10).json()

    def reset(self) -> dict[str, Any]:
        """Wipe all sandbox data and put every knob back to its start value."""
        return self._post("/_sandbox/reset")

    def connect_pending(self) -> list[str]:
        """Connect every PENDING vehicle now (not the PR0C11 ones); returns their ids."""
        return self._post("/_sandbox/connect-pending")["connected"]

    def expire_links(self) -> int:
        """Make every unused consent link expire now; returns how many."""
        return self._post("/_sandbox/expire-links")["expired"]

    def deliveries(self) -> list[dict[str, Any]]:
        """The webhook log: one entry per message with its attempts, oldest first."""
        response = httpx.get(f"{self.url}/_sandbox/webhooks.json", timeout=10)
        return response.json()["deliveries"]

    def token(self) -> str:
        response = httpx.post(
            f"{self.url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_until_up(server: SandboxServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.url}/_sandbox/control", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.process.kill()
    raise RuntimeError(f"the sandbox did not start; its log:\n{server.log()}")


@pytest.fixture(scope="session")
def sandbox_server(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DATA_DIR": str(workdir),
        "SANDBOX_DATABASE_URL": f"sqlite:///{workdir / 'sandbox.sqlite3'}",
        "SANDBOX_SPEED": "0",
        "SANDBOX_CLIENT_ID": CLIENT_ID,
        "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
        "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SANDBOX_WEBHOOK_URL": "",
        "SANDBOX_BASE_URL": url,
    }
    log_path = workdir / "sandbox.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--addr", f"127.0.0.1:{port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = SandboxServer(url, CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, log_path, process)
    _wait_until_up(server)
    yield server
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if request.session.testsfailed:
        sys.stderr.write(f"\n----- sandbox log ({log_path}) -----\n{server.log()[-20000:]}\n")


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def sandbox_api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An authenticated client whose every /v1/ exchange is checked against the contract."""
    with httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.token()}"},
        event_hooks={"response": [response_hook]},
        timeout=10,
    ) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    """The `error` field of an error envelope (for readable asserts)."""
    return json.loads(response.content)["error"]


def point_portal_at(settings, sandbox: SandboxServer) -> None:
    """The portal's Volteras settings aimed at this sandbox: its URL, its
    credentials and the secret its webhooks are signed with."""
    settings.VOLTERAS_API_URL = sandbox.url
    settings.VOLTERAS_CLIENT_ID = sandbox.client_id
    settings.VOLTERAS_CLIENT_SECRET = sandbox.client_secret
    settings.VOLTERAS_WEBHOOK_SECRET = sandbox.webhook_secret


@pytest.fixture
def volteras(settings, sandbox: SandboxServer) -> SandboxServer:
    """The sandbox, with the portal pointed at it (`volteras_no_retries` and
    `api` for no retries)."""
    point_portal_at(settings, sandbox)
    return sandbox


@pytest.fixture
def volteras_no_retries(settings, sandbox: SandboxServer) -> SandboxServer:
    """The sandbox, the portal pointed at it without retries (a fault answers
    at once), and links it hands out on the test client's host."""
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_MAX_RETRIES = 0
    settings.PORTAL_BASE_URL = PORTAL
    return sandbox


@pytest.fixture
def api(settings, sandbox: SandboxServer):
    """The portal's own Volteras client, at the sandbox, without retries."""
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_MAX_RETRIES = 0
    return get_client()


# A local webhook endpoint the sandbox delivers to.
WAIT_SECONDS = 10


class Receiver:
    """A tiny local webhook endpoint that answers the queued status codes, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"got {len(self.received)} of {count} webhooks"
        return self.received

    def events(self, sandbox) -> list[tuple[str, str]]:
        """(type, vehicle id) of each delivery received: the body carries no
        type (as Svix sends it), so it comes from the sandbox's own log."""
        types = {d["msgId"]: d["type"] for d in sandbox.deliveries()}
        return [(types[h["svix-id"]], json.loads(b)["id"]) for h, b in self.received]


@pytest.fixture
def receiver(sandbox) -> Iterator[Receiver]:
    hook = Receiver()
    sandbox.control(webhook_url=hook.url)
    yield hook
    hook.server.shutdown()


def connect_vins(api, *vins: str) -> list[str]:
    vehicles = [{"vin": v, "make": "FORD", "countryCode": "GB"} for v in vins]
    group = api.post("/v1/vehicles/connect", json={"vehicles": vehicles}).json()
    found = api.get(f"/v1/vehicles/connect/{group['id']}/results").json()["results"]
    return [r["vehicleId"] for r in found]
