"""Real headless Chromium (Debian's, driven by Playwright) against a live portal
server, with a worker thread doing the background work.

Every browser test gets a `page` that records JavaScript console errors, page
errors, failed requests, HTTP errors, and fields without a label or tables
without header cells on any page it shows; any of them fails the test unless the
test said it expects that answer (`browser_problems.allow(404, "/fleets/...")`).
A second browser (`another_browser()`) is watched the same way.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    sync_playwright,
)

from tests.browser.axe_gate import AXE_NOW_JS, AXE_RUN_JS, AXE_SOURCE, watch_leaving
from tests.browser.gates import QUALITY_BINDING, QUALITY_CHECK_NOW_JS, QUALITY_INIT_JS
from tests.conftest import require_all
from tests.fixtures_sandbox import point_portal_at

# Playwright's sync API runs an event loop in the test thread; Django refuses
# ORM calls from a thread with a running loop unless told this is deliberate.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
# "localhost" makes Chromium try ::1 first; the loopback address halves page times.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
# Generous for a page load, short enough that a broken journey fails quickly.
TIMEOUT_MS = 10_000

_db_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Put the SQLite test database in a file when the browser tests are part of
    the run. The default in-memory test database is one connection that the live
    server borrows; the worker thread and the server's request threads each need
    their own connection to the same data, with real locking between them.

    Done here, before any test runs, rather than in a django_db_modify_db_settings
    override: that session fixture would only apply when a browser test happened
    to be the first test of the session to touch the database."""
    global _db_dir
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        return  # PostgreSQL: one shared test database already
    _db_dir = tempfile.mkdtemp(prefix="fleet-portal-browser-")
    db.setdefault("TEST", {})["NAME"] = str(Path(_db_dir) / "test-portal.sqlite3")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _db_dir:
        shutil.rmtree(_db_dir, ignore_errors=True)


def chromium_path() -> str | None:
    """Debian's Chromium, or the binary CHROMIUM_PATH names (None when it is missing)."""
    chosen = os.environ.get("CHROMIUM_PATH")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        reason = (
            "BROWSER TESTS NOT RUN: no Chromium at /usr/bin/chromium, on PATH or at "
            "CHROMIUM_PATH (apt-get install chromium)"
        )
        if require_all():
            pytest.fail(reason + " and CI_REQUIRE_ALL=1 forbids skipping")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class BrowserProblems:
    """Everything that went wrong in the browser during one test."""

    allowed: list[tuple[int, str]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    reported: int = 0
    closed: bool = False
    pages: list[Page] = field(default_factory=list)

    def allow(self, status: int, url_part: str) -> None:
        """The test expects this HTTP error (say, an outsider's 404)."""
        self.allowed.append((status, url_part))

    def is_allowed(self, status: int, url: str) -> bool:
        return any(status == code and part in url for code, part in self.allowed)

    def add(self, problem: str) -> None:
        if not self.closed and problem not in self.seen:
            self.seen.append(problem)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        # Chromium also logs every HTTP error response; expected ones are not problems.
        if message.text.startswith("Failed to load resource") and any(
            part in url for _, part in self.allowed
        ):
            return
        self.add(f"console error: {message.text} ({url})")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not self.is_allowed(response.status, response.url):
            self.add(f"HTTP {response.status}: {response.request.method} {response.url}")

    def on_request_failed(self, request: Request) -> None:
        # ERR_ABORTED is the browser cancelling a request itself (navigating away
        # while the favicon loads, a navigation that became a download); a server
        # that fails shows up as an HTTP status or another net:: error.
        if request.failure != "net::ERR_ABORTED":
            self.add(f"request failed: {request.method} {request.url}: {request.failure}")

    def on_page_quality(self, url: str, problems: list[str]) -> None:
        for problem in problems:
            self.add(f"page quality: {problem} ({url})")

    def watch(self, page: Page) -> None:
        """Record this page's console, page and request problems."""
        self.pages.append(page)
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.add(f"page error: {error}"))
        page.on("response", self.on_response)
        page.on("requestfailed", self.on_request_failed)

    def watch_context(self, context: BrowserContext) -> None:
        """Record the problems of every page this context opens, the quality
        gates included (they run inside each document; see QUALITY_INIT_JS)."""
        context.expose_binding(
            QUALITY_BINDING, lambda _source, url, problems: self.on_page_quality(url, problems)
        )
        context.add_init_script(QUALITY_INIT_JS)
        context.add_init_script(AXE_SOURCE)
        context.add_init_script(AXE_RUN_JS)
        watch_leaving(context)
        context.on("page", self.watch)

    def check_pages_now(self) -> None:
        """Run the quality gates, axe included, once more on every open page
        and wait for them: a problem that appeared just before the test body
        ended is reported with the test."""
        for page in self.pages:
            if page.is_closed():
                continue
            try:
                problems = page.evaluate(QUALITY_CHECK_NOW_JS)
                problems += page.evaluate(AXE_NOW_JS)
            except Error:
                continue  # mid-navigation: the next document is checked as it loads
            self.on_page_quality(page.url, problems)

    def new(self) -> list[str]:
        """Problems not reported yet (each is reported once)."""
        fresh = self.seen[self.reported :]
        self.reported = len(self.seen)
        return fresh


@pytest.fixture
def browser_problems() -> BrowserProblems:
    return BrowserProblems()


@pytest.fixture
def page(
    browser: Browser, live_server, transactional_db, browser_problems: BrowserProblems
) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server, watched for problems."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    browser_problems.watch_context(context)
    tab = context.new_page()
    yield tab
    late = browser_problems.new()
    # Closing aborts in-flight requests (an htmx poll, say); those are not the page's fault.
    browser_problems.closed = True
    context.close()
    if late:
        pytest.fail("browser problems after the test body:\n" + "\n".join(late))


@pytest.fixture
def another_browser(
    browser: Browser, browser_problems: BrowserProblems
) -> Iterator[Callable[[], BrowserContext]]:
    """Opens another browser with no portal session (a vehicle owner's phone),
    watched like `page`; whatever is still open is closed after the test."""
    opened: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        browser_problems.watch_context(context)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail the test itself (not its teardown) for problems seen while it ran."""
    result = yield
    problems = item.funcargs.get("browser_problems")
    if isinstance(problems, BrowserProblems):
        problems.check_pages_now()
        fresh = problems.new()
        if fresh:
            raise AssertionError("problems in the browser:\n" + "\n".join(fresh))
    return result


class WorkerThread:
    """The portal's worker (django-tasks-db's loop plus the heartbeat and sweep of
    `manage.py run_worker`) in threads of the test process, on the test database."""

    def __init__(self, interval: float = 0.1, sweep_interval: float = 0.5) -> None:
        from django_tasks_db.management.commands.db_worker import Worker

        self.worker_id = f"browser-tests-{socket.gethostname()}-{os.getpid()}"
        self.stop_sweeping = threading.Event()
        self.errors: list[BaseException] = []
        self.worker = Worker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=self.worker_id,
            excluded_queue_names=[],
        )
        self.threads = [
            threading.Thread(target=self._run_worker, name="worker", daemon=True),
            threading.Thread(
                target=self._run_sweep, args=(sweep_interval,), name="sweep", daemon=True
            ),
        ]

    def _run_worker(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connections.close_all()

    def _run_sweep(self, interval: float) -> None:
        from connections.management.commands.run_worker import sweep_forever

        try:
            sweep_forever(self.worker_id, self.stop_sweeping, interval)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connections.close_all()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.worker.running = False
        self.stop_sweeping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        assert not alive, f"worker threads did not stop: {alive}"


@pytest.fixture
def worker(transactional_db) -> Iterator[WorkerThread]:
    """Runs queued background work while the test drives the browser."""
    assert not (connection.vendor == "sqlite" and connection.is_in_memory_db()), (
        "the worker thread needs a file or server test database (see pytest_configure)"
    )
    running = WorkerThread()
    running.start()
    yield running
    running.stop()
    assert not running.errors, f"the worker crashed: {running.errors!r}"


@pytest.fixture
def portal_on_sandbox(settings, sandbox, live_server):
    """The live portal talks to the sandbox subprocess (reset for this test), and
    the sandbox delivers its webhooks to the live portal."""
    point_portal_at(settings, sandbox)
    settings.PORTAL_BASE_URL = live_server.url
    sandbox.control(webhook_url=f"{live_server.url}/webhooks/volteras/")
    return sandbox
