"""Live tables respect the person using them: a keyboard user keeps focus, a
half-typed search survives, and every refresh changes only what changed.

The upload is sent but no worker runs, so its VINs stay in progress and the
table polls every 2 s; the test moves VINs itself between polls."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import VinStatus
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, submit
from tests.browser.gates import assert_keyboard_reachable, login

pytestmark = pytest.mark.browser

VINS = [f"WVWZZZ1JZ{n:08d}"[:17] for n in range(30)]


def sent_upload(fleet, manager):
    upload = create_upload(fleet, manager, read_upload("\n".join(VINS)))
    submit(upload, manager)
    return upload


def next_poll(page: Page):
    """Wait for the table's next poll that brings something."""
    return page.expect_response(
        lambda r: "/rows/" in r.url and r.status in (200, 286), timeout=15_000
    )


def test_focus_and_scroll_survive_five_refreshes(page: Page, manager, fleet):
    upload = sent_upload(fleet, manager)
    entries = list(upload.entries.order_by("line_number"))
    login(page, "manager")
    page.goto(upload.get_absolute_url())
    # The skip link leads past the page's controls straight into the table.
    skip = page.get_by_role("link", name="Skip to the table")
    assert assert_keyboard_reachable(page, skip) <= 6
    page.keyboard.press("Enter")
    target = page.locator(f"#entry-{entries[24].pk} th a")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", target.element_handle()):
            break
    else:
        raise AssertionError("row 25 not reached by Tab")
    href = target.get_attribute("href")
    scroll = page.evaluate("() => window.scrollY")
    untouched = page.locator(f"#entry-{entries[10].pk}").element_handle()
    for turn in range(5):
        # Another row changes every time, and the focused row itself once.
        moved = entries[turn] if turn != 2 else entries[24]
        moved.observe(VinStatus.PROCESSING if turn % 2 == 0 else VinStatus.PENDING, "poll")
        with next_poll(page):
            pass
        expect(page.locator(f"#entry-{moved.pk}")).to_contain_text(
            re.compile("Processing|Pending"), timeout=10_000
        )
        focused = page.evaluate("() => document.activeElement.getAttribute('href')")
        assert focused == href, f"refresh {turn + 1} moved focus to {focused!r}"
        assert abs(page.evaluate("() => window.scrollY") - scroll) < 2
    # Rows that never changed are the very same elements as before.
    assert page.evaluate("(el) => document.contains(el)", untouched)
    # One polite summary, not one announcement per row.
    expect(page.locator("#live-status")).to_have_text(re.compile(r"^1 VIN changed: 1 "))


def test_typed_search_and_ticks_survive_refreshes(page: Page, manager, fleet):
    upload = sent_upload(fleet, manager)
    entries = list(upload.entries.order_by("line_number"))
    login(page, "manager")
    page.goto(upload.get_absolute_url())
    search = page.get_by_label("Search VIN or plate")
    search.click()
    page.keyboard.type("WVWZZZ1JZ0000")
    for turn in range(2):
        entries[turn].observe(VinStatus.PROCESSING, "poll")
        with next_poll(page):
            pass
        expect(page.locator(f"#entry-{entries[turn].pk}")).to_contain_text("Processing")
    expect(search).to_have_value("WVWZZZ1JZ0000")
    expect(search).to_be_focused()
    # The filter goes into the URL (shareable, survives reload and Back).
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=WVWZZZ1JZ0000"))
    page.reload()
    expect(page.get_by_label("Search VIN or plate")).to_have_value("WVWZZZ1JZ0000")
