"""The fleet vehicles page refreshes itself: a VIN whose state changes (here by
the model's own move, as a webhook or poll would) changes on the page by
itself, while ticked boxes, keyboard focus and a half-typed search survive."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import Source, VinEntry, VinStatus
from tests.browser.gates import login
from tests.fleet.test_fleet_vehicles import STATUSES, add_entries

pytestmark = pytest.mark.browser


def next_poll(page: Page):
    """Wait for the list's next poll that brings something."""
    return page.expect_response(
        lambda r: "/vehicles/?" in r.url and "v=" in r.url and r.status == 200, timeout=15_000
    )


def test_a_row_changes_by_itself_and_ticks_focus_and_search_survive(
    page: Page, manager, fleet, monkeypatch
):
    monkeypatch.setattr("connections.fleet.views.POLL_SECONDS", 1)
    add_entries(fleet, STATUSES, user=manager)
    entry = {e.vin: e for e in VinEntry.objects.filter(fleet=fleet)}
    pending, error = entry["WVWZZZ1JZ3W000002"], entry["WVWZZZ1JZ3W000003"]
    connected = entry["WVWZZZ1JZ3W000001"]
    login(page, "manager")
    page.goto(f"/fleets/{fleet.slug}/vehicles/")
    # Tick the row that will change and another; put keyboard focus on a third.
    page.locator(f"#pick-e{pending.pk}").check()
    page.locator(f"#pick-e{connected.pk}").check()
    page.locator(f"#row-e{error.pk} th a").focus()
    untouched = page.locator(f"#row-e{connected.pk}").element_handle()

    pending.observe(VinStatus.CONNECTED, Source.WEBHOOK, vehicle_id="veh-2")
    with next_poll(page):
        pass
    row = page.locator(f"#row-e{pending.pk}")
    expect(row).to_contain_text("Connected", timeout=10_000)
    expect(row).to_have_attribute("data-live-state", "Connected")
    expect(page.locator(f"#pick-e{pending.pk}")).to_be_checked()
    expect(page.locator(f"#pick-e{connected.pk}")).to_be_checked()
    expect(page.locator(f"#row-e{error.pk} th a")).to_be_focused()
    # A row that did not change is the very same element as before.
    assert page.evaluate("(el) => document.contains(el)", untouched)
    expect(page.locator("#live-status")).to_have_text(re.compile(r"^1 vehicle changed: 1 "))

    # A half-typed search is outside the region: the next refresh leaves it be.
    search = page.get_by_label("Search VIN, plate or tag")
    search.click()
    page.keyboard.type("WVWZZZ1JZ3W00000")
    error.observe(VinStatus.CONNECTION_REQUIRED, Source.WEBHOOK)
    with next_poll(page):
        pass
    expect(page.locator(f"#row-e{error.pk}")).to_contain_text("Connection required")
    expect(search).to_have_value("WVWZZZ1JZ3W00000")
    expect(search).to_be_focused()
    # Filtering puts the filters in the URL; the region shows the matching rows.
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=WVWZZZ1JZ3W000003"))
    expect(page.locator(f"#row-e{pending.pk}")).to_have_count(0)
    expect(page.locator(f"#row-e{error.pk}")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Search VIN, plate or tag")).to_have_value("WVWZZZ1JZ3W000003")
