"""The quality gates themselves: each one must catch what it is there to catch,
or every journey's green would mean nothing."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import BrowserProblems
from tests.browser.gates import (
    assert_fields_labelled,
    assert_keyboard_reachable,
    assert_tables_have_headers,
)

pytestmark = pytest.mark.browser
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_page(browser: Browser) -> Iterator[Page]:
    """A page with no server behind it, for HTML written in the test."""
    context = browser.new_context()
    context.set_default_timeout(5_000)
    yield context.new_page()
    context.close()


def test_unlabelled_fields_are_caught(bare_page: Page):
    bare_page.set_content(
        """
        <label for="a">Name</label><input id="a">
        <label>Plate <input name="plate"></label>
        <input aria-label="Search">
        <span id="t">Country</span><select aria-labelledby="t"><option>GB</option></select>
        <input type="hidden" name="csrf"><input type="submit" value="Go">
        <input name="hidden-by-css" style="display: none">
        """
    )
    assert_fields_labelled(bare_page)

    bare_page.set_content('<label for="x">Name</label><input id="x"><textarea placeholder="VINs">')
    with pytest.raises(AssertionError, match="textarea"):
        assert_fields_labelled(bare_page)


def test_tables_without_headers_are_caught(bare_page: Page):
    bare_page.set_content(
        "<table><thead><tr><th>VIN</th><th><span class=sr>Actions</span></th></tr></thead>"
        "<tbody><tr><td>1</td><td>x</td></tr></tbody></table>"
    )
    assert_tables_have_headers(bare_page)

    bare_page.set_content("<table><tr><td>VIN</td></tr><tr><td>1</td></tr></table>")
    with pytest.raises(AssertionError, match="no column header"):
        assert_tables_have_headers(bare_page)

    bare_page.set_content("<table><thead><tr><th>VIN</th><th></th></tr></thead></table>")
    with pytest.raises(AssertionError, match="empty header cell"):
        assert_tables_have_headers(bare_page)


def test_keyboard_reach_counts_presses_and_catches_the_unreachable(bare_page: Page):
    bare_page.set_content(
        """
        <a href="#one">one</a> <button id="two">two</button>
        <div id="mouse-only" onclick="void 0">mouse only</div>
        <button id="skipped" tabindex="-1">skipped</button>
        """
    )
    assert assert_keyboard_reachable(bare_page, "#two") == 2
    with pytest.raises(AssertionError, match="not reached"):
        assert_keyboard_reachable(bare_page, "#mouse-only")
    with pytest.raises(AssertionError, match="not reached"):
        assert_keyboard_reachable(bare_page, "#skipped")


def test_console_errors_and_http_errors_are_recorded(bare_page: Page):
    problems = BrowserProblems()
    problems.allow(404, "/expected-missing")
    problems.watch(bare_page)
    statuses = {"/broken": 500, "/expected-missing": 404, "/fine": 200}

    def serve(route):
        path = route.request.url.removeprefix("http://portal.test")
        if path in {"/refused", "/cancelled"}:
            route.abort("connectionrefused" if path == "/refused" else "aborted")
        else:
            route.fulfill(
                status=statuses.get(path, 200), body="<p>ok</p>", content_type="text/html"
            )

    bare_page.route("http://portal.test/**", serve)
    bare_page.goto("http://portal.test/fine")
    with bare_page.expect_event("pageerror"):
        bare_page.evaluate(
            """async () => {
                console.error("boom");
                await fetch("/broken");
                await fetch("/expected-missing");
                await fetch("/refused").catch(() => null);
                await fetch("/cancelled").catch(() => null);
                setTimeout(() => { throw new Error("uncaught"); });
            }"""
        )
    seen = "\n".join(problems.new())
    assert "console error: boom" in seen
    assert "HTTP 500: GET http://portal.test/broken" in seen
    assert "page error: uncaught" in seen
    assert "request failed: GET http://portal.test/refused: net::ERR_CONNECTION_REFUSED" in seen
    assert "expected-missing" not in seen
    assert "cancelled" not in seen
    assert problems.new() == []  # each problem is reported once


@pytest.mark.parametrize(("require_all", "outcome"), [("", "1 skipped"), ("1", "1 error")])
def test_without_chromium_the_journeys_skip_loudly_or_fail_under_ci(require_all, outcome):
    """Run one browser test in a child pytest whose Chromium does not exist."""
    env = {
        **os.environ,
        "CHROMIUM_PATH": "/nonexistent/chromium",
        "CI_REQUIRE_ALL": require_all,
        "DEBUG": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/browser/test_gates.py::test_unlabelled_fields_are_caught"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "BROWSER TESTS NOT RUN: no Chromium" in result.stdout
    if require_all:
        assert "CI_REQUIRE_ALL=1 forbids skipping" in result.stdout


# Journeys as the real `page` fixture and hook see them, each with one thing
# wrong; none of them asks for a check, so only the automatic gates can fail them.
CHILD_JOURNEYS = """
import socket

import pytest

def serve(page, path, html):
    page.route(f"**{path}", lambda route: route.fulfill(body=html, content_type="text/html"))

def test_clean_pages_and_an_expected_404_pass(page, browser_problems):
    browser_problems.allow(404, "/not-there/")
    page.goto("/accounts/login/")
    assert page.goto("/not-there/").status == 404

def test_console_error(page):
    page.goto("/accounts/login/")
    page.evaluate("console.error('boom from the page')")

def test_failed_request(page):
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A page without the portal's Content-Security-Policy, which would refuse the
    # request to another origin before it failed.
    serve(page, "/no-policy/", "<main><h1>Fetch</h1></main>")
    page.goto("/no-policy/")
    with page.expect_event("requestfailed"):
        page.evaluate(f"fetch('http://127.0.0.1:{port}/unreachable').catch(() => null)")

def test_content_security_policy_violation(page):
    page.goto("/accounts/login/")
    page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>main {}</style>')")

def test_unlabelled_field(page):
    serve(page, "/unlabelled/", "<main><h1>Form</h1><input name=plate></main>")
    page.goto("/unlabelled/")

def test_table_without_header_cells(page):
    serve(page, "/bare-table/", "<table><tr><td>VIN</td></tr></table>")
    page.goto("/bare-table/")

def test_field_swapped_in_after_load(page):
    page.goto("/accounts/login/")
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<textarea>')")

# A link with no name (axe: link-name, serious), which the other gates do not see.
NAMELESS_LINK = (
    '<main><h1>Links</h1><a href="/accounts/login/"><svg width="24" height="24"></svg></a></main>'
)

def test_axe_violation_on_a_page_left_at_once(page):
    serve(page, "/nameless-left/", NAMELESS_LINK)
    page.goto("/nameless-left/")
    page.goto("/accounts/login/")  # before axe's background run: checked on leaving

def test_axe_violation_at_the_end(page):
    serve(page, "/nameless-end/", NAMELESS_LINK)
    page.goto("/nameless-end/")  # the body ends at once: checked by the final check

@pytest.fixture
def late_error(page):
    yield
    page.evaluate("console.error('late boom')")

def test_problem_after_the_body(late_error):
    pass
"""


def test_browser_problems_fail_the_journey_that_had_them(
    pytester: pytest.Pytester, browser: Browser, monkeypatch: pytest.MonkeyPatch
):
    """A child pytest runs journeys through the real page fixture and hook: each
    problem fails its test with the problem named; a clean journey passes."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("DEBUG", "true")
    # Its own SQLite file, never the parent's (PostgreSQL) test database.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SANDBOX_DATABASE_URL", raising=False)
    pytester.makeconftest('pytest_plugins = ["tests.browser.conftest"]')
    pytester.makepyfile(test_child=CHILD_JOURNEYS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--ds=fleet_portal.settings", "-rA", timeout=300
    )
    # The late problem errors the teardown of a test whose body passed.
    result.assert_outcomes(passed=2, failed=8, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "PASSED test_child.py::test_clean_pages_and_an_expected_404_pass",
            "FAILED test_child.py::test_console_error - AssertionError: problems in the br*",
            "*console error: boom from the page*",
            "FAILED test_child.py::test_failed_request - *",
            "*request failed: GET http://127.0.0.1:*/unreachable: net::ERR_CONNECTION_REFUSED",
            "FAILED test_child.py::test_content_security_policy_violation - *",
            "*console error: *inline style*violates*Content Security Policy*",
            "FAILED test_child.py::test_unlabelled_field - *",
            '*page quality: field without a label: <input name="plate">*/unlabelled/)',
            "FAILED test_child.py::test_table_without_header_cells - *",
            "*page quality: table #1 (no class) has no column header cells*/bare-table/)",
            "FAILED test_child.py::test_field_swapped_in_after_load - *",
            "*page quality: field without a label: <textarea></textarea>*/accounts/login/)",
            "FAILED test_child.py::test_axe_violation_on_a_page_left_at_once - *",
            "*page quality: axe serious link-name: *(*/nameless-left/)",
            "FAILED test_child.py::test_axe_violation_at_the_end - *",
            "*page quality: axe serious link-name: *(*/nameless-end/)",
            "ERROR test_child.py::test_problem_after_the_body - *",
            "*browser problems after the test body:*",
            "*console error: late boom*",
        ]
    )
