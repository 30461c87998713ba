"""Issue 14's VIN page, as a fleet manager uses it from the fleet's vehicle
list: a VIN on its way updates itself until it is connected, and every next
step the page names is a button there (retry, a consent link for the owner,
contact support), each recorded in the VIN's timeline."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import ConsentLink, LinkStatus, VinStatus
from connections.uploads import vin_views
from tests.browser.fleet_data import csv_text, send, settle
from tests.browser.gates import assert_keyboard_reachable, login, press_on, screenshot

pytestmark = pytest.mark.browser

ON_ITS_WAY = "PEND1NG1000000001"  # PENDING until the sandbox connects it
WAITING_FOR_CONSENT = "C0NSENT1000000002"
INCOMPATIBLE = "1NC0MP11400000003"  # Volteras says: contact support
FAILED = "PERR0R11000000004"  # a software update, then a retry
VINS = {
    ON_ITS_WAY: "Renault,FR,,Megane E-Tech,2023,depot=Lyon",
    WAITING_FOR_CONSENT: "Volkswagen,GB,LV21 CNS,ID.3,2021,depot=Leeds",
    INCOMPATIBLE: "Ford,US,6INC003,Mustang,2018,",
    FAILED: "Volkswagen,GB,LV21 ERR,ID.3,2021,depot=Leeds",
}
# Long enough for a webhook to arrive and the page's next poll (every 3 s).
LIVE_MS = 30_000
SUPPORT_NOTE = "The owner says the car is a 2018 Mustang with the latest software"


def open_vin(page: Page, vin: str) -> None:
    """From the fleet's vehicle list to a VIN's page, by searching for it."""
    page.goto("/fleets/demo-fleet/vehicles/")
    page.get_by_label("Search VIN, plate or tag").fill(vin)
    page.get_by_label("Search VIN, plate or tag").press("Enter")
    press_on(page, page.get_by_role("link", name=vin, exact=True), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(vin)


def mark_document(page: Page) -> None:
    """A marker that a reload would wipe: what follows happens on this document."""
    page.evaluate("() => { window.stillTheSamePage = true; }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.stillTheSamePage === true"), "the page was reloaded"


def test_vin_page_updates_itself_and_its_next_steps_are_buttons(
    page: Page, manager, fleet, portal_on_sandbox, worker, monkeypatch
):
    # A pending VIN's page (which can wait days) asks every 30 s; every 2 s
    # here until it is connected, to keep the journey short.
    intervals = vin_views.VIN_POLL_SECONDS
    monkeypatch.setattr(vin_views, "VIN_POLL_SECONDS", {**intervals, "slow": 2})
    # The pending VIN waits until the test tells the sandbox to connect it.
    portal_on_sandbox.control(pending_seconds=3600)
    upload = send(fleet, manager, csv_text(VINS))
    settle(upload, pending=1)
    assert upload.entries.get(vin=ON_ITS_WAY).status == VinStatus.PENDING
    login(page, "manager")

    # On its way: the page says it updates itself, and does, until connected.
    open_vin(page, ON_ITS_WAY)
    now = page.get_by_role("region", name="Now")
    expect(now).to_contain_text("Pending")
    expect(now).to_contain_text("this page updates itself while the VIN is on its way")
    expect(now.get_by_role("button")).to_have_count(0)  # nothing to do but wait
    mark_document(page)
    assert portal_on_sandbox.connect_pending()
    expect(now).to_contain_text("Connected", timeout=LIVE_MS)
    expect(now).not_to_contain_text("while the VIN is on its way")
    expect(page.locator("ol.timeline")).to_contain_text("Connected")
    assert_not_reloaded(page)
    monkeypatch.setattr(vin_views, "VIN_POLL_SECONDS", intervals)

    # Waiting for the owner's consent: the button makes the link.
    open_vin(page, WAITING_FOR_CONSENT)
    now = page.get_by_role("region", name="Now")
    expect(now).to_contain_text("Connection required")
    expect(now).to_contain_text("Next step: Send the owner a consent link")
    expect(page.locator("#consent-links")).to_contain_text("No consent link was made")
    create = now.get_by_role("button", name="Create a consent link for the owner")
    press_on(page, create, "Enter")
    expect(page.get_by_role("status")).to_contain_text("A consent link for the owner is ready")
    expect(page.get_by_role("heading", level=1)).to_have_text(WAITING_FOR_CONSENT)
    link = ConsentLink.objects.get(vin_entry__vin=WAITING_FOR_CONSENT)
    assert link.status == LinkStatus.ACTIVE
    links = page.locator("#consent-links")
    expect(links.get_by_role("link", name=f"Link {link.pk}")).to_be_visible()
    expect(links).to_contain_text("Active")
    expect(page.locator("ol.timeline")).to_contain_text("Consent link created for the owner")
    # A second press would replace it, and the button says so.
    expect(
        now.get_by_role("button", name="Create a new consent link for the owner")
    ).to_be_visible()
    # The link's own page is where it is shared.
    links.get_by_role("link", name=f"Link {link.pk}").click()
    expect(page.get_by_label("Short link")).to_have_value(re.compile(r"/l/[\w-]+$"))
    page.go_back()

    # Incompatible: nothing to retry, so the page offers support instead.
    open_vin(page, INCOMPATIBLE)
    now = page.get_by_role("region", name="Now")
    expect(now).to_contain_text("Incompatible")
    expect(now).to_contain_text("Who acts: Contact support")
    expect(now.get_by_role("button", name="Retry")).to_have_count(0)
    note = now.get_by_label("What should support look into? (optional)")
    assert_keyboard_reachable(page, note)
    page.keyboard.type(SUPPORT_NOTE)
    screenshot(page, "vin-page-actions")
    press_on(page, now.get_by_role("button", name="Contact support about this VIN"), "Enter")
    expect(page.get_by_role("status")).to_contain_text("Support has been asked to look into")
    expect(now).to_contain_text("escalated")
    # Asked once: the button is gone rather than asking again.
    expect(now.get_by_role("button", name="Contact support about this VIN")).to_have_count(0)
    expect(page.locator("ol.timeline")).to_contain_text(SUPPORT_NOTE)
    assert upload.entries.get(vin=INCOMPATIBLE).escalated
    # The other way forward it names: remove the vehicle from the list.
    press_on(page, now.get_by_role("button", name="Remove it from the fleet"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove 1 vehicle from Demo Fleet?")
    expect(page.locator("main")).to_contain_text("It is not connected at Volteras")
    press_on(page, page.get_by_role("button", name="Remove 1 vehicle"), "Enter")
    expect(page.get_by_role("status")).to_contain_text("1 vehicle was removed from the fleet.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vehicles of Demo Fleet")
    expect(page.get_by_role("link", name=INCOMPATIBLE)).to_have_count(0)

    # A failed VIN the driver can fix: retry from its page. The sandbox gives
    # it the same outcome again, and the page shows it without a reload
    # (already there when the page loads, or brought by a poll).
    open_vin(page, FAILED)
    now = page.get_by_role("region", name="Now")
    expect(now).to_contain_text("Vehicle needs a software update")
    press_on(page, now.get_by_role("button", name="Retry"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(FAILED)
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li").filter(has_text="Sent to Volteras again")).to_contain_text(
        "by manager"
    )
    mark_document(page)
    expect(now).to_contain_text("Error", timeout=LIVE_MS)
    expect(now.get_by_role("button", name="Retry")).to_be_visible(timeout=LIVE_MS)
    expect(timeline.locator("li").filter(has_text="Could not connect")).to_have_count(2)
    assert_not_reloaded(page)
