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
