"""A fleet manager creates a consent link; the owner opens it in another
browser, completes the sandbox's consent flow and lands on the portal's
friendly page; the manager sees the link completed and the account listed."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from connections.models import ConnectedAccount, ConsentLink, LinkStatus
from tests.browser.conftest import BrowserProblems
from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    login,
    screenshot,
)

pytestmark = pytest.mark.browser


def test_create_share_and_complete_a_link(
    page: Page,
    browser: Browser,
    users,
    fleet,
    portal_on_sandbox,
    browser_problems: BrowserProblems,
):
    login(page, "manager")
    page.get_by_role("link", name="Demo Fleet").click()
    page.get_by_role("link", name="Consent links").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Consent links")
    assert_page_quality(page)
    page.get_by_role("link", name="New consent link").click()
    assert_page_quality(page)
    screenshot(page, "consent-link-new")
    page.get_by_label("Label").fill("Jane's company car")
    assert_keyboard_reachable(page, "button:has-text('Create link')")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_contain_text("Jane's company car")
    short_link = page.get_by_label("Short link").input_value()
    assert re.fullmatch(rf"{re.escape(portal_on_sandbox_url(page))}/l/[\w-]+", short_link)
    expect(page.locator("figure.qr svg")).to_be_visible()
    assert_page_quality(page)
    assert_keyboard_reachable(page, "button:has-text('Copy link')")
    screenshot(page, "consent-link")

    # The owner, in another browser with no portal session.
    owner = browser.new_context()
    try:
        tab = owner.new_page()
        browser_problems.watch(tab)
        # The sandbox stands in for the manufacturer's site, which has no favicon.
        browser_problems.allow(404, f"{portal_on_sandbox.url}/favicon.ico")
        tab.goto(short_link)
        expect(tab.get_by_role("heading", level=1)).to_have_text("Connect your vehicle")
        assert tab.url.startswith(portal_on_sandbox.url)
        tab.get_by_label("Manufacturer", exact=True).select_option(index=1)
        tab.get_by_label("Username at the manufacturer").fill("jane")
        tab.get_by_role("button", name="Continue").click()
        tab.get_by_role("button", name="Approve").click()
        expect(tab.get_by_role("heading", level=1)).to_have_text(
            "Thank you, your vehicle is connected"
        )
        assert "/consent/return/" in tab.url
        screenshot(tab, "consent-return")
    finally:
        owner.close()

    link = ConsentLink.objects.get()
    assert link.state == LinkStatus.COMPLETED and link.opens == 1
    page.get_by_role("link", name="Consent links").click()
    row = page.locator("table.data tbody tr", has_text="Jane's company car")
    expect(row.locator(".badge")).to_have_text("Completed")
    page.get_by_role("link", name="Connected accounts").click()
    expect(page.locator("table.data tbody")).to_contain_text("jane")
    assert_page_quality(page)
    assert ConnectedAccount.objects.get().username == "jane"


def portal_on_sandbox_url(page: Page) -> str:
    match = re.match(r"https?://[^/]+", page.url)
    assert match
    return match[0]
