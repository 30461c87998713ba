"""Issue 14, as a fleet manager uses it: from the fleet page to "the 8 vehicles
that need me" without opening an upload; sort, filter, search and export that
view; then act on the vehicles in bulk, on ticked rows and on everything
matching a filter, including removing them from the fleet (a connected one is
disconnected at the sandbox)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from connections.models import ConsentLink, Source, VinEntry, VinStatus
from connections.volteras import get_client
from tests.browser.conftest import BrowserProblems
from tests.browser.fleet_data import CONNECTED, CONSENT, NEEDS_YOU, settle, settled_fleet
from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    choose_by_keyboard,
    login,
    press_on,
    screenshot,
)

pytestmark = pytest.mark.browser

ROWS = "#vehicles-table tbody tr"
# Long enough for the owner's consent to reach the portal and the list's next poll.
LIVE_MS = 30_000


def shown_vins(page: Page) -> list[str]:
    """The VINs of the list's rows, top to bottom."""
    return [v.strip() for v in page.locator(f"{ROWS} th[scope=row]").all_inner_texts()]


def expect_vins(page: Page, vins) -> None:
    """The list shows exactly these VINs (in any order)."""
    expect(page.locator(f"{ROWS} th[scope=row]")).to_have_count(len(vins))
    assert sorted(shown_vins(page)) == sorted(vins)


def row(page: Page, vin: str):
    return page.locator(ROWS).filter(has=page.locator("th", has_text=vin))


def filter_by(page: Page, **values: str) -> None:
    """Fill the filters named by label (selects by option label) and press Filter."""
    form = page.locator("#vehicle-filters")
    for label, value in values.items():
        field = form.get_by_label(label, exact=True)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    form.get_by_role("button", name="Filter").click()


def apply_bulk(page: Page, action: str, *, everything: bool = False, tags: str = "") -> None:
    """Choose a bulk action (by its label) for the ticked rows, or for every
    row matching the filters, and apply it."""
    bulk = page.locator("#bulk")
    bulk.get_by_label("With the vehicles").select_option(label=action)
    bulk.get_by_label("Act on").select_option("all" if everything else "selected")
    if tags:
        bulk.get_by_label("Tags to add or remove").fill(tags)
    bulk.get_by_role("button", name="Apply").click()


def tile_value(page: Page, label: str) -> int:
    tile = page.locator("#fleet-stats-tiles > div").filter(has_text=label)
    return int(tile.locator("dd").inner_text())


def test_from_the_fleet_page_to_the_vehicles_that_need_me(
    page: Page, manager, fleet, portal_on_sandbox, worker
):
    settled_fleet(fleet, manager)
    login(page, "manager")
    press_on(page, page.get_by_role("link", name="Demo Fleet"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo Fleet")

    # The tile says how many need the manager; it is a link to exactly them.
    needing = tile_value(page, "VINs needing action")
    assert needing == len(NEEDS_YOU) == 8
    tile = page.get_by_role("link", name=f"{needing} VINs needing action: list them")
    press_on(page, tile, "Enter")
    expect(page).to_have_url(re.compile(r"/fleets/demo-fleet/vehicles/\?group=needs$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Vehicles of Demo Fleet")
    expect(page.locator("#vehicles-summary")).to_have_text(
        re.compile(rf"^Needs you: {needing} vehicles match these filters")
    )
    expect_vins(page, NEEDS_YOU)
    for vin in NEEDS_YOU:
        expect(row(page, vin)).to_contain_text("needs you")
    # Each row says what happened, the next step and who must act.
    expect(row(page, "PERR0R11000000001")).to_contain_text("Next: Install the pending software")
    expect(row(page, "PERR0R11000000001")).to_contain_text("the vehicle's driver")
    expect(row(page, CONSENT[0])).to_contain_text("Connection required")
    assert_page_quality(page)
    screenshot(page, "fleet-vehicles")

    # Sort by VIN (a column header is a link), then the other way round.
    press_on(
        page,
        page.locator("#vehicles-table thead").get_by_role("link", name="VIN", exact=True),
        "Enter",
    )
    expect(page).to_have_url(re.compile(r"group=needs.*sort=vin|sort=vin.*group=needs"))
    expect(page.locator(f"{ROWS} th[scope=row]").first).to_have_text(sorted(NEEDS_YOU)[0])
    assert shown_vins(page) == sorted(NEEDS_YOU)
    page.locator("#vehicles-table thead").get_by_role("link", name="VIN", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-vin"))
    expect(page.locator(f"{ROWS} th[scope=row]").first).to_have_text(sorted(NEEDS_YOU)[-1])
    assert shown_vins(page) == sorted(NEEDS_YOU, reverse=True)

    # Narrow it by make, then by tag (the sort and "needs you" stay).
    filter_by(page, Make="Volkswagen")
    vw = [v for v, rest in NEEDS_YOU.items() if rest.startswith("Volkswagen,")]
    expect_vins(page, vw)
    assert shown_vins(page) == sorted(vw, reverse=True)
    filter_by(page, Make="Any make", **{"Tag (key=value)": "depot=Leeds"})
    leeds = [v for v, rest in NEEDS_YOU.items() if rest.endswith("depot=Leeds")]
    expect_vins(page, leeds)
    expect(page.locator("#vehicles-summary")).to_contain_text(f"{len(leeds)} vehicles match")

    # Export exactly this view: the file has these rows and no other.
    with page.expect_download() as download_info:
        press_on(page, page.get_by_role("link", name="Export this view as CSV"), "Enter")
    download = download_info.value
    assert download.suggested_filename.startswith("demo-fleet-vehicles-")
    assert download.suggested_filename.endswith(".csv")
    exported = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
    assert [r["vin"] for r in exported] == shown_vins(page)
    assert {r["tags"].split(";")[0].strip() for r in exported} == {"depot=Leeds"}

    # Search by VIN from every vehicle (the connected ones too).
    page.get_by_role("link", name="Clear").click()
    expect(page).to_have_url(re.compile(r"/vehicles/$"))
    expect_vins(page, {**NEEDS_YOU, **CONNECTED, "PR0C11AA500000009": ""})
    search = page.get_by_label("Search VIN, plate or tag")
    assert_keyboard_reachable(page, search)
    page.keyboard.type("C0NSENT1")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=C0NSENT1"))
    expect_vins(page, CONSENT)
    filter_by(page, **{"Search VIN, plate or tag": "WBY71AW010FM20581"})
    expect_vins(page, ["WBY71AW010FM20581"])
    expect(page.locator("#vehicles-summary")).to_contain_text("1 vehicle matches these filters")
    expect(row(page, "WBY71AW010FM20581")).to_contain_text("Connected")

    # The VIN's own page is one click away, and leads back to the list.
    press_on(page, page.get_by_role("link", name="WBY71AW010FM20581"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("WBY71AW010FM20581")
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    crumbs.get_by_role("link", name="Vehicles").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Vehicles of Demo Fleet")


def complete_consent(tab: Page, short_link: str, problems: BrowserProblems) -> None:
    """The owner, in their own browser: the portal's page, then the sandbox's
    consent flow (standing in for the manufacturer's site), approved."""
    problems.allow(404, "/favicon.ico")  # the sandbox's pages have none
    tab.goto(short_link)
    tab.get_by_role("link", name="Continue to Volteras").click()
    # A VIN's link offers the VIN's own make (after a "Choose…" when there are more).
    manufacturer = tab.get_by_label("Manufacturer", exact=True)
    manufacturer.select_option(index=manufacturer.locator("option").count() - 1)
    tab.get_by_label("Username at the manufacturer").fill("jane")
    tab.get_by_role("button", name="Continue").click()
    tab.get_by_role("button", name="Approve").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Thank you, your vehicle is connected")


def test_bulk_actions_on_ticked_rows_and_on_everything_matching(
    page: Page,
    another_browser: Callable[[], BrowserContext],
    browser_problems: BrowserProblems,
    manager,
    fleet,
    portal_on_sandbox,
    worker,
    monkeypatch,
):
    # The list asks for changes every 2 s instead of 10, to keep the journey short.
    monkeypatch.setattr("connections.fleet.views.POLL_SECONDS", 2)
    upload = settled_fleet(fleet, manager)
    login(page, "manager")
    page.get_by_role("link", name="Demo Fleet").click()
    needing = tile_value(page, "VINs needing action")
    page.get_by_role("link", name=f"{needing} VINs needing action: list them").click()
    expect_vins(page, NEEDS_YOU)

    # From the keyboard: a skip link leads past the filters to the list, where
    # one box ticks every row of the page and unticks them again.
    skip = page.get_by_role("link", name="Skip to the vehicles")
    assert assert_keyboard_reachable(page, skip) <= 6  # right after the top bar
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Select every vehicle on this page")).to_be_focused()
    page.keyboard.press("Space")
    boxes = page.locator("#vehicles-table tbody").get_by_role("checkbox")
    expect(boxes).to_have_count(len(NEEDS_YOU))
    for box in boxes.all():
        expect(box).to_be_checked()
    page.keyboard.press("Space")
    for box in boxes.all():
        expect(box).not_to_be_checked()

    # Retry two ticked rows, ticked from the keyboard.
    retried = ["PERR0R11000000001", "0FFL1NE1000000003"]
    for vin in retried:
        press_on(page, page.get_by_label(f"Select {vin}"), "Space")
        expect(page.get_by_label(f"Select {vin}")).to_be_checked()
    action = page.get_by_label("With the vehicles")
    assert_keyboard_reachable(page, action)
    choose_by_keyboard(page, action, "Retry")
    expect(action).to_have_value("retry")
    assert_page_quality(page)
    screenshot(page, "fleet-vehicles-bulk")
    press_on(page, page.get_by_role("button", name="Apply"), "Enter")
    expect(page.get_by_role("status")).to_contain_text("2 vehicles were sent again.")
    expect(page).to_have_url(re.compile(r"\?group=needs$"))
    for vin in retried:
        entry = upload.entries.get(vin=vin)
        again = entry.events.filter(
            status_from=VinStatus.ERROR, status_to=VinStatus.SUBMITTING, actor=manager
        )
        assert again.exists(), f"{vin} was not sent again"

    # Consent links for everything matching a filter: the two waiting for consent.
    filter_by(page, Status="Connection required")
    expect_vins(page, CONSENT)
    expect(page.locator("#vehicles-summary")).to_contain_text("2 vehicles match these filters")
    apply_bulk(page, "Create consent links", everything=True)
    expect(page.get_by_role("status")).to_contain_text("2 vehicles got a consent link")
    for vin in CONSENT:
        links = ConsentLink.objects.filter(vin_entry__vin=vin, fleet=fleet)
        assert links.count() == 1, f"{vin} has {links.count()} consent links"

    # One owner completes their link on their phone; the manager's list shows
    # the vehicle connected by itself, without a reload.
    page.get_by_role("link", name="show every vehicle").first.click()
    expect(row(page, CONSENT[0])).to_contain_text("Connection required")
    page.evaluate("() => { window.stillTheSamePage = true; }")
    link = ConsentLink.objects.get(vin_entry__vin=CONSENT[0], fleet=fleet)
    complete_consent(another_browser().new_page(), link.short_url, browser_problems)
    expect(row(page, CONSENT[0])).to_contain_text("Connected", timeout=LIVE_MS)
    expect(row(page, CONSENT[0])).not_to_contain_text("needs you")
    expect(row(page, CONSENT[1])).to_contain_text("Connection required")
    assert page.evaluate("() => window.stillTheSamePage === true"), "the list was reloaded"

    # Add a tag to ticked rows of every vehicle, then find them by it.
    tagged = ["REM0TE11000000007", "XP7YGCEK8PB104417"]
    for vin in tagged:
        page.get_by_label(f"Select {vin}").check()
    apply_bulk(page, "Add tags", tags="team=vans")
    expect(page.get_by_role("status")).to_contain_text("2 vehicles were tagged.")
    for vin in tagged:
        expect(row(page, vin).get_by_role("link", name="team=vans")).to_be_visible()
    row(page, tagged[0]).get_by_role("link", name="team=vans").click()
    expect(page).to_have_url(re.compile(r"tag=team%3Dvans"))
    expect_vins(page, tagged)

    # ...and take it off everything matching that filter.
    apply_bulk(page, "Remove tags", everything=True, tags="team=vans")
    expect(page.get_by_role("status")).to_contain_text("2 vehicles were untagged.")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_contain_text("No vehicle matches these filters")
    for vin in tagged:
        tags = VinEntry.objects.get(vin=vin, fleet=fleet).tags
        assert {"key": "team", "value": "vans"} not in tags

    # Remove a connected vehicle and an incompatible one: the confirmation names
    # the count and the one that will be disconnected.
    page.get_by_role("link", name="Show every vehicle").first.click()
    connected = "WVGZZZE29MP012345"
    removed = [connected, "1NC0MP11400000006"]
    vehicle_id = upload.entries.get(vin=connected).vehicle_id
    assert vehicle_id
    for vin in removed:
        page.get_by_label(f"Select {vin}").check()
    apply_bulk(page, "Remove from the fleet")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Remove 2 vehicles from Demo Fleet?")
    expect(page.locator("main")).to_contain_text(
        "1 of them is connected at Volteras and will be disconnected first"
    )
    assert_page_quality(page)
    press_on(page, page.get_by_role("button", name="Remove 2 vehicles"), "Enter")
    expect(page.get_by_role("status")).to_contain_text("2 vehicles were removed from the fleet.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vehicles of Demo Fleet")
    for vin in removed:
        expect(row(page, vin)).to_have_count(0)
        assert upload.entries.get(vin=vin).superseded
    gone = upload.entries.get(vin=connected)
    assert gone.status == VinStatus.DISCONNECTED
    assert gone.events.filter(
        source=Source.MANUAL, detail="Disconnected at Volteras and removed from the fleet"
    ).exists()
    # Disconnected at Volteras itself, not only hidden here.
    assert get_client().get_vehicle(vehicle_id).connection_status == "DISCONNECTED"

    # The fleet page's counts follow: the retried VINs failed again (the
    # sandbox gives them the same outcome); the owner's consent connected one
    # and the incompatible one is gone.
    settle(upload, pending=1)
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    crumbs.get_by_role("link", name="Demo Fleet").click()
    expect(page.locator("#tile-needs_action dd")).to_have_text(str(needing - 2))
    # One connected vehicle removed, one connected by its owner's consent.
    expect(page.locator("#tile-connected dd")).to_have_text(str(len(CONNECTED)))
