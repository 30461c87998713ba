"""A fleet manager creates a consent link; the owner opens it in another
browser, completes the sandbox's consent flow and lands on the portal's
friendly page; the manager sees the link completed and the account listed."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from connections.models import ConnectedAccount, ConsentLink, LinkStatus
from tests.browser.conftest import BrowserProblems
from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    login,
    press_on,
    screenshot,
)

pytestmark = pytest.mark.browser


def test_create_share_and_complete_a_link(
    page: Page,
    another_browser: Callable[[], BrowserContext],
    users,
    fleet,
    portal_on_sandbox,
    browser_problems: BrowserProblems,
):
    login(page, "manager")
    # The manager's part by keyboard too: Tab to each control, Enter or type.
    press_on(page, page.get_by_role("link", name="Demo Fleet"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo Fleet")
    press_on(page, page.get_by_role("link", name="Consent links", exact=True), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Consent links")
    assert_page_quality(page)
    press_on(page, page.get_by_role("link", name="New consent link"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("New consent link")
    screenshot(page, "consent-link-new")
    assert_keyboard_reachable(page, page.get_by_label("Label"))
    page.keyboard.type("Jane's company car")
    press_on(page, page.get_by_role("button", name="Create link"), "Enter")

    expect(page.get_by_role("heading", level=1)).to_contain_text("Jane's company car")
    short_link = page.get_by_label("Short link").input_value()
    assert re.fullmatch(rf"{re.escape(portal_on_sandbox_url(page))}/l/[\w-]+", short_link)
    expect(page.locator("figure.qr svg")).to_be_visible()
    assert_page_quality(page)
    screenshot(page, "consent-link")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    press_on(page, page.get_by_role("button", name="Copy link"), "Enter")
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == short_link

    # The owner, in another browser with no portal session, by keyboard alone.
    # The sandbox stands in for the manufacturer's site, which has no favicon.
    browser_problems.allow(404, f"{portal_on_sandbox.url}/favicon.ico")
    tab = another_browser().new_page()
    tab.goto(short_link)
    # The portal's own page first: who asks, for what, until when; one button on.
    expect(tab.get_by_role("heading", level=1)).to_have_text("Connect your vehicle to Demo Fleet")
    assert_page_quality(tab)
    press_on(tab, tab.get_by_role("link", name="Continue to Volteras"), "Enter")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Connect your vehicle")
    assert tab.url.startswith(portal_on_sandbox.url)
    manufacturer = tab.get_by_label("Manufacturer", exact=True)
    press_on(tab, manufacturer, "ArrowDown")  # the first manufacturer after "Choose…"
    expect(manufacturer).not_to_have_value("")
    assert_keyboard_reachable(tab, tab.get_by_label("Username at the manufacturer"))
    tab.keyboard.type("jane")
    press_on(tab, tab.get_by_role("button", name="Continue"), "Enter")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Share your vehicles")
    vehicle = tab.get_by_role("checkbox").first
    expect(vehicle).to_be_checked()
    press_on(tab, vehicle, "Space")
    expect(vehicle).not_to_be_checked()
    tab.keyboard.press("Space")
    expect(vehicle).to_be_checked()
    press_on(tab, tab.get_by_role("button", name="Approve"), "Enter")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Thank you, your vehicle is connected")
    assert "/consent/return/" in tab.url
    screenshot(tab, "consent-return")

    link = ConsentLink.objects.get()
    assert link.state == LinkStatus.COMPLETED and link.opens == 1
    page.get_by_role("link", name="Consent links", exact=True).click()
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
